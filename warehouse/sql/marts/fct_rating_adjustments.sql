-- The audit trail of re-rating: one row per event whose rating changed in a rating run (a
-- price book version added with a past effective date, a price corrected, the free quota
-- re-allocated by a late event, an FX change), with the old and new amount and book version,
-- the adjustment, when and why. A report as it stood at time T is the current figure minus
-- the adjustments made after T.
with adjustments as (
    select * from rating.rating_adjustments
),

events as (
    select * from staging.stg_token_usage_events
),

final as (
    select
        adjustments.rating_run_id,
        adjustments.rerated_at,
        adjustments.event_id,
        adjustments.event_date,
        events.occurred_at,
        events.tenant_id,
        events.workspace_id,
        events.api_key_id,
        events.product,
        events.channel,
        events.model,
        events.region,
        adjustments.reason,
        adjustments.old_price_book_version,
        adjustments.new_price_book_version,
        adjustments.old_currency,
        adjustments.new_currency,
        adjustments.old_amount,
        adjustments.new_amount,
        adjustments.adjustment,
        adjustments.reporting_currency,
        adjustments.old_amount_reporting,
        adjustments.new_amount_reporting,
        adjustments.adjustment_reporting,
        adjustments.old_unrated_reason,
        adjustments.new_unrated_reason
    from adjustments
    inner join events on adjustments.event_id = events.event_id
)

select * from final
