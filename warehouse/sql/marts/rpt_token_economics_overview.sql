-- The three variables the group tracks, by month and segment:
--   investment  - capacity: accelerator-hours and the chip + cloud direct cost of them;
--   application - token consumption: requests and tokens (agents and humans);
--   returns     - revenue (external and inter-segment) and margin.
-- Every segment serves the same tokens, so token columns are per segment and do not add
-- across segments; money columns add up to the 'consolidated' row once the inter-segment
-- columns are eliminated (see rpt_segment_pnl).
with layer_margin as (
    select * from marts.fct_layer_margin
),

requests as (
    select * from marts.fct_request_economics
),

segment_money as (
    select
        date_trunc('month', event_date)::date as month_start,
        segment,
        reporting_currency,
        sum(direct_cost) filter (where layer in ('chip', 'cloud')) as capacity_cost,
        sum(direct_cost) as direct_cost,
        sum(external_revenue) as external_revenue,
        sum(inter_segment_revenue) as inter_segment_revenue,
        sum(inter_segment_cost) as inter_segment_cost,
        sum(margin) as margin
    from layer_margin
    group by all
),

segment_usage as (
    select
        date_trunc('month', event_date)::date as month_start,
        segment,
        reporting_currency,
        count(distinct event_id) as requests,
        count(distinct event_id) filter (where actor_type = 'agent') as agent_requests
    from layer_margin
    group by all
),

segment_tokens as (
    -- tokens and accelerator-hours once per request and segment (a request has several
    -- layers in one segment)
    select
        month_start,
        segment,
        reporting_currency,
        sum(total_tokens) as total_tokens,
        sum(total_tokens) filter (where actor_type = 'agent') as agent_tokens,
        sum(accelerator_hours) as accelerator_hours
    from (
        select distinct
            date_trunc('month', layer_margin.event_date)::date as month_start,
            layer_margin.segment,
            layer_margin.reporting_currency,
            requests.event_id,
            requests.actor_type,
            requests.total_tokens,
            requests.accelerator_hours
        from layer_margin
        inner join requests using (event_id)
    )
    group by all
),

segments as (
    select
        segment_money.month_start,
        segment_money.segment,
        segment_money.reporting_currency,
        segment_tokens.accelerator_hours,
        coalesce(segment_money.capacity_cost, 0) as capacity_cost,
        segment_money.direct_cost,
        segment_money.inter_segment_cost,
        segment_usage.requests,
        segment_usage.agent_requests,
        segment_tokens.total_tokens,
        coalesce(segment_tokens.agent_tokens, 0) as agent_tokens,
        segment_money.external_revenue,
        segment_money.inter_segment_revenue,
        segment_money.margin
    from segment_money
    inner join segment_usage using (month_start, segment, reporting_currency)
    inner join segment_tokens using (month_start, segment, reporting_currency)
),

consolidated as (
    select
        date_trunc('month', event_date)::date as month_start,
        'consolidated' as segment,
        reporting_currency,
        sum(accelerator_hours) as accelerator_hours,
        sum(chip_direct_cost + cloud_direct_cost) as capacity_cost,
        sum(total_direct_cost) as direct_cost,
        0::decimal(38, 12) as inter_segment_cost,
        count(*) as requests,
        count(*) filter (where actor_type = 'agent') as agent_requests,
        sum(total_tokens) as total_tokens,
        coalesce(sum(total_tokens) filter (where actor_type = 'agent'), 0) as agent_tokens,
        sum(external_revenue) as external_revenue,
        0::decimal(38, 12) as inter_segment_revenue,
        sum(consolidated_margin) as margin
    from requests
    group by all
),

final as (
    select * from segments
    union all by name
    select * from consolidated
)

select * from final
