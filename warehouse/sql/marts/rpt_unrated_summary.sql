-- Usage that could not be rated, by reason, model and region: it is held in
-- rating.unrated_usage (never rated at zero) until the books cover it, then re-rated.
with unrated as (
    select * from rating.unrated_usage
),

events as (
    select * from staging.stg_token_usage_events
),

final as (
    select
        unrated.reason,
        events.model,
        events.region,
        count(*) as events,
        count(distinct events.tenant_id) as tenants,
        cast(sum(events.input_tokens + events.output_tokens) as bigint) as total_tokens,
        min(events.occurred_at) as first_occurred_at,
        max(events.occurred_at) as last_occurred_at
    from unrated
    inner join events on unrated.event_id = events.event_id
    group by unrated.reason, events.model, events.region
)

select * from final
