-- Rated requests that could not be costed, by reason and day: a missing cost rate,
-- transfer price or segment in force at the event's time (never costed at zero). Empty
-- when the books cover every request; warehouse.economics.check_costing reads it.
with costing as (
    select * from marts.fct_request_costing
    where not is_costed
),

reasons as (
    select
        unnest(missing_costs) as reason,
        *
    from costing
),

final as (
    select
        reason,
        event_date,
        product,
        model,
        region,
        chip_family,
        reporting_currency,
        count(*) as requests,
        sum(total_tokens) as total_tokens,
        sum(amount_reporting) as external_revenue,
        min(event_id) as example_event_id
    from reasons
    group by all
)

select * from final
