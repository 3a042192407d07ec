-- Agents vs humans by day, product and tenant: requests, tokens, tokens per request,
-- revenue and margin of each actor type, and the agent-to-human multiplier (agent tokens
-- per request / human tokens per request; null without both). Ratios are rounded half up
-- to 6 places with integer arithmetic (DuckDB would divide as doubles).
with requests as (
    select * from marts.fct_request_economics
),

totals as (
    select
        event_date,
        product,
        tenant_id,
        reporting_currency,
        count(*) filter (where actor_type = 'agent') as agent_requests,
        count(*) filter (where actor_type = 'human') as human_requests,
        coalesce(sum(total_tokens) filter (where actor_type = 'agent'), 0)::hugeint
            as agent_tokens,
        coalesce(sum(total_tokens) filter (where actor_type = 'human'), 0)::hugeint
            as human_tokens,
        coalesce(sum(external_revenue) filter (where actor_type = 'agent'), 0)
            as agent_revenue,
        coalesce(sum(external_revenue) filter (where actor_type = 'human'), 0)
            as human_revenue,
        coalesce(sum(consolidated_margin) filter (where actor_type = 'agent'), 0)
            as agent_margin,
        coalesce(sum(consolidated_margin) filter (where actor_type = 'human'), 0)
            as human_margin,
        count(*) as requests,
        sum(total_tokens)::hugeint as total_tokens,
        sum(external_revenue) as external_revenue,
        sum(consolidated_margin) as margin
    from requests
    group by all
),

final as (
    select
        event_date,
        product,
        tenant_id,
        reporting_currency,
        requests,
        total_tokens::bigint as total_tokens,
        external_revenue,
        margin,
        agent_requests,
        agent_tokens::bigint as agent_tokens,
        case when agent_requests > 0 then
            ((agent_tokens * 2000000 + agent_requests) // (2 * agent_requests))::decimal(38, 0)
            * 0.000001
        end as agent_tokens_per_request,
        agent_revenue,
        agent_margin,
        human_requests,
        human_tokens::bigint as human_tokens,
        case when human_requests > 0 then
            ((human_tokens * 2000000 + human_requests) // (2 * human_requests))::decimal(38, 0)
            * 0.000001
        end as human_tokens_per_request,
        human_revenue,
        human_margin,
        case when agent_requests > 0 and human_tokens > 0 then
            (
                (agent_tokens * human_requests * 2000000 + agent_requests * human_tokens)
                // (2 * agent_requests * human_tokens)
            )::decimal(38, 0) * 0.000001
        end as agent_to_human_multiplier
    from totals
)

select * from final
