-- One row per rated event: the event, its tokens by type, and its current rating (the price
-- book version in force at occurred_at, amounts by token type, free quota, the amount the
-- customer owes in its own currency, and the same amount in the reporting currency).
-- Amounts are DECIMAL(38, 12) and not rounded: rounding happens only where a bill is issued.
-- Re-rated events show their current figure; the history is in fct_rating_adjustments.
with events as (
    select * from staging.stg_token_usage_events
),

ratings as (
    select * from rating.rated_usage
),

final as (
    select
        events.event_id,
        events.occurred_at,
        events.event_date,
        events.tenant_id,
        events.workspace_id,
        events.api_key_id,
        events.product,
        events.channel,
        events.actor_type,
        events.actor_id,
        events.swarm_id,
        events.task_id,
        events.session_id,
        events.request_id,
        events.model,
        events.region,
        events.chip_family,
        events.mode,
        events.is_batch,
        events.input_tokens,
        events.cached_input_tokens,
        events.input_tokens - events.cached_input_tokens as fresh_input_tokens,
        events.output_tokens,
        events.thinking_tokens,
        events.output_tokens - events.thinking_tokens as non_thinking_output_tokens,
        events.input_tokens + events.output_tokens as total_tokens,
        events.accelerator_ms,
        ratings.tier,
        ratings.price_book_version,
        ratings.currency,
        ratings.amount_input,
        ratings.amount_cached_input,
        ratings.amount_output,
        ratings.amount_thinking,
        ratings.amount_gross,
        ratings.free_quota_tokens,
        ratings.free_quota_discount,
        ratings.amount,
        ratings.reporting_currency,
        ratings.fx_rate,
        ratings.amount_reporting,
        ratings.price_book,
        ratings.price_effective_from,
        ratings.unit_price_input,
        ratings.unit_price_cached_input,
        ratings.unit_price_output,
        ratings.unit_price_thinking,
        ratings.rating_run_id,
        ratings.rated_at
    from events
    inner join ratings on events.event_id = ratings.event_id
)

select * from final
