-- Distribution of what an agent task costs, per product and month: percentiles of the
-- customer's bill per task (revenue) and of the group's direct cost per task. Percentiles
-- are actual task values (quantile_disc), so they stay exact decimals.
with tasks as (
    select * from marts.fct_swarm_task
),

final as (
    select
        product,
        date_trunc('month', started_at)::date as month_start,
        reporting_currency,
        count(*) as tasks,
        sum(requests) as requests,
        sum(total_tokens) as total_tokens,
        sum(revenue) as revenue,
        sum(direct_cost) as direct_cost,
        sum(margin) as margin,
        min(revenue) as revenue_per_task_min,
        quantile_disc(revenue, 0.5) as revenue_per_task_p50,
        quantile_disc(revenue, 0.9) as revenue_per_task_p90,
        quantile_disc(revenue, 0.99) as revenue_per_task_p99,
        max(revenue) as revenue_per_task_max,
        min(direct_cost) as direct_cost_per_task_min,
        quantile_disc(direct_cost, 0.5) as direct_cost_per_task_p50,
        quantile_disc(direct_cost, 0.9) as direct_cost_per_task_p90,
        quantile_disc(direct_cost, 0.99) as direct_cost_per_task_p99,
        max(direct_cost) as direct_cost_per_task_max,
        quantile_disc(total_tokens, 0.5) as tokens_per_task_p50,
        quantile_disc(agents_involved, 0.5) as agents_per_task_p50
    from tasks
    group by all
)

select * from final
