-- Segment P&L per day and per month, as segment reporting shows it: one row per segment
-- (row_type 'segment'), one 'elimination' row that removes inter-segment revenue and cost,
-- and the 'consolidated' row. Segment rows + the elimination row = the consolidated row,
-- exactly, in every column. Transfers between layers of the same segment are internal to
-- it and do not appear (they cancel inside the segment's margin).
with layer_margin as (
    select * from marts.fct_layer_margin
),

periods as (
    select 'day' as period_grain, event_date as period_start, * from layer_margin
    union all
    select 'month' as period_grain, date_trunc('month', event_date)::date, * from layer_margin
),

segment_rows as (
    select
        period_grain,
        period_start,
        'segment' as row_type,
        segment,
        reporting_currency,
        sum(external_revenue) as external_revenue,
        sum(inter_segment_revenue) as inter_segment_revenue,
        sum(inter_segment_cost) as inter_segment_cost,
        sum(direct_cost) as direct_cost
    from periods
    group by all
),

elimination_rows as (
    select
        period_grain,
        period_start,
        'elimination' as row_type,
        'eliminations' as segment,
        reporting_currency,
        0::decimal(38, 12) as external_revenue,
        -sum(inter_segment_revenue) as inter_segment_revenue,
        -sum(inter_segment_cost) as inter_segment_cost,
        0::decimal(38, 12) as direct_cost
    from segment_rows
    group by all
),

consolidated_rows as (
    select
        period_grain,
        period_start,
        'consolidated' as row_type,
        'consolidated' as segment,
        reporting_currency,
        sum(external_revenue) as external_revenue,
        0::decimal(38, 12) as inter_segment_revenue,
        0::decimal(38, 12) as inter_segment_cost,
        sum(direct_cost) as direct_cost
    from segment_rows
    group by all
),

unioned as (
    select * from segment_rows
    union all
    select * from elimination_rows
    union all
    select * from consolidated_rows
),

final as (
    select
        period_grain,
        period_start,
        row_type,
        segment,
        reporting_currency,
        external_revenue,
        inter_segment_revenue,
        external_revenue + inter_segment_revenue as total_revenue,
        inter_segment_cost,
        direct_cost,
        inter_segment_cost + direct_cost as total_cost,
        external_revenue + inter_segment_revenue - inter_segment_cost - direct_cost as margin
    from unioned
)

select * from final
