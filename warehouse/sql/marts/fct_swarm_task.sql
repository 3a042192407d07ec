-- One row per agent task (swarm_id, task_id): the agents involved, requests, tokens by
-- type, duration (first to last request), what the customer paid (revenue), the group's
-- direct cost and margin. Requests without a task_id are not task work and are left out.
with requests as (
    select * from marts.fct_request_economics
    where task_id is not null
),

final as (
    select
        tenant_id,
        swarm_id,
        task_id,
        min(product) as product,
        count(distinct product) as products,
        reporting_currency,
        min(occurred_at) as started_at,
        max(occurred_at) as ended_at,
        epoch_ms(max(occurred_at)) - epoch_ms(min(occurred_at)) as duration_ms,
        count(distinct actor_id) as agents_involved,
        count(*) as requests,
        sum(input_tokens) as input_tokens,
        sum(cached_input_tokens) as cached_input_tokens,
        sum(fresh_input_tokens) as fresh_input_tokens,
        sum(output_tokens) as output_tokens,
        sum(thinking_tokens) as thinking_tokens,
        sum(total_tokens) as total_tokens,
        sum(accelerator_hours) as accelerator_hours,
        sum(external_revenue) as revenue,
        sum(total_direct_cost) as direct_cost,
        sum(consolidated_margin) as margin
    from requests
    group by tenant_id, swarm_id, task_id, reporting_currency
)

select * from final
