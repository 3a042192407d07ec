-- Run-rate revenue (the ARR figure investors watch): revenue of the trailing 7 and 30 days up
-- to the latest event date, annualised (x 365 / 7 and x 365 / 30), in the reporting currency.
-- One row per tenant, per product and one total row (scope, scope_id); arr is the
-- headline figure (the 30-day run-rate).
-- The division by 7 or 30 is done on integers of 10^-12 units (truncated at 12 decimal
-- places) so the figure stays exact DECIMAL, never a float.
with daily as (
    select * from marts.fct_revenue_daily
),

as_of as (
    select max(event_date) as as_of_date from daily
),

trailing_30_days as (
    select
        daily.tenant_id,
        daily.product,
        daily.reporting_currency,
        as_of.as_of_date,
        daily.requests,
        daily.total_tokens,
        daily.amount_reporting,
        daily.event_date > as_of.as_of_date - 7 as is_in_7_days
    from daily
    cross join as_of
    where daily.event_date > as_of.as_of_date - 30
),

grouped as (
    select
        case
            when grouping(tenant_id) = 0 then 'tenant'
            when grouping(product) = 0 then 'product'
            else 'total'
        end as scope,
        coalesce(tenant_id, product, 'total') as scope_id,
        any_value(as_of_date) as as_of_date,
        any_value(reporting_currency) as reporting_currency,
        cast(coalesce(sum(requests) filter (where is_in_7_days), 0) as bigint) as requests_7d,
        cast(coalesce(sum(total_tokens) filter (where is_in_7_days), 0) as bigint) as tokens_7d,
        cast(coalesce(sum(amount_reporting) filter (where is_in_7_days), 0)
            as decimal(38, 12)) as revenue_7d,
        cast(sum(requests) as bigint) as requests_30d,
        cast(sum(total_tokens) as bigint) as tokens_30d,
        cast(sum(amount_reporting) as decimal(38, 12)) as revenue_30d
    from trailing_30_days
    group by grouping sets ((tenant_id), (product), ())
),

annualised as (
    select
        scope,
        scope_id,
        as_of_date,
        reporting_currency,
        requests_7d,
        tokens_7d,
        revenue_7d,
        cast(
            cast(cast(revenue_7d * 365 * 1000000000000 as decimal(38, 0)) as hugeint) // 7
            as decimal(38, 0)
        ) * 0.000000000001 as run_rate_7d,
        requests_30d,
        tokens_30d,
        revenue_30d,
        cast(
            cast(cast(revenue_30d * 365 * 1000000000000 as decimal(38, 0)) as hugeint) // 30
            as decimal(38, 0)
        ) * 0.000000000001 as run_rate_30d
    from grouped
),

final as (
    select
        *,
        -- The headline annual run-rate (ARR): the 30-day figure, steadier than the 7-day one.
        run_rate_30d as arr
    from annualised
)

select * from final
