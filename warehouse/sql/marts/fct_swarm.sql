-- One row per swarm: tasks, agents involved, requests, tokens by type, duration, revenue,
-- direct cost and margin (rolled up from fct_swarm_task, plus distinct agents).
with tasks as (
    select * from marts.fct_swarm_task
    where swarm_id is not null
),

requests as (
    select * from marts.fct_request_economics
    where swarm_id is not null and task_id is not null
),

agents as (
    select tenant_id, swarm_id, count(distinct actor_id) as agents_involved
    from requests
    group by all
),

totals as (
    select
        tenant_id,
        swarm_id,
        min(product) as product,
        reporting_currency,
        count(*) as tasks,
        min(started_at) as started_at,
        max(ended_at) as ended_at,
        epoch_ms(max(ended_at)) - epoch_ms(min(started_at)) as duration_ms,
        sum(requests) as requests,
        sum(input_tokens) as input_tokens,
        sum(cached_input_tokens) as cached_input_tokens,
        sum(fresh_input_tokens) as fresh_input_tokens,
        sum(output_tokens) as output_tokens,
        sum(thinking_tokens) as thinking_tokens,
        sum(total_tokens) as total_tokens,
        sum(accelerator_hours) as accelerator_hours,
        sum(revenue) as revenue,
        sum(direct_cost) as direct_cost,
        sum(margin) as margin
    from tasks
    group by tenant_id, swarm_id, reporting_currency
),

final as (
    select totals.*, agents.agents_involved
    from totals
    left join agents using (tenant_id, swarm_id)
)

select * from final
