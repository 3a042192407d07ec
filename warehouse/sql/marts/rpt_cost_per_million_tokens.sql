-- Unit economics by day, model, chip family and region: the cost of serving a million
-- tokens beside the price customers paid per million and the margin per million. This is
-- the data that tests the cost-leadership claim (domestic chips, cheaper mainland energy).
-- capacity cost = chip + cloud direct cost (the accelerator-hours); serving cost = model +
-- application direct cost. Per-million figures are rounded half up to 12 places with
-- integer arithmetic (DuckDB would divide decimals as doubles).
with requests as (
    select * from marts.fct_request_economics
),

totals as (
    select
        event_date,
        model,
        chip_family,
        region,
        reporting_currency,
        count(*) as requests,
        sum(total_tokens)::hugeint as total_tokens,
        sum(accelerator_hours) as accelerator_hours,
        sum(external_revenue) as external_revenue,
        sum(chip_direct_cost + cloud_direct_cost) as capacity_cost,
        sum(model_direct_cost + application_direct_cost) as serving_cost,
        sum(total_direct_cost) as total_direct_cost,
        sum(consolidated_margin) as margin
    from requests
    group by all
),

per_million as (
    -- amount * 1e6 / tokens at 12 places: scaled to integer units of 1e-12, then rounded
    -- half away from zero.
    select
        *,
        case when total_tokens > 0 then
            ((abs(capacity_cost) * 1000000000000)::hugeint * 2000000 + total_tokens)
            // (2 * total_tokens) * sign(capacity_cost)
        end as capacity_cost_units,
        case when total_tokens > 0 then
            ((abs(total_direct_cost) * 1000000000000)::hugeint * 2000000 + total_tokens)
            // (2 * total_tokens) * sign(total_direct_cost)
        end as cost_units,
        case when total_tokens > 0 then
            ((abs(external_revenue) * 1000000000000)::hugeint * 2000000 + total_tokens)
            // (2 * total_tokens) * sign(external_revenue)
        end as price_units,
        case when total_tokens > 0 then
            ((abs(margin) * 1000000000000)::hugeint * 2000000 + total_tokens)
            // (2 * total_tokens) * sign(margin)
        end as margin_units
    from totals
),

final as (
    select
        event_date,
        model,
        chip_family,
        region,
        reporting_currency,
        requests,
        total_tokens::bigint as total_tokens,
        accelerator_hours,
        external_revenue,
        capacity_cost,
        serving_cost,
        total_direct_cost,
        margin,
        capacity_cost_units::decimal(38, 0) * 0.000000000001
            as capacity_cost_per_million_tokens,
        cost_units::decimal(38, 0) * 0.000000000001 as cost_per_million_tokens,
        price_units::decimal(38, 0) * 0.000000000001 as price_per_million_tokens,
        margin_units::decimal(38, 0) * 0.000000000001 as margin_per_million_tokens
    from per_million
)

select * from final
