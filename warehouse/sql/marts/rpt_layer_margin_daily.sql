-- Layer margins rolled up by day, tenant, product, model, region, chip family, actor type
-- and layer: sum any subset of these columns for coarser roll-ups (all amounts add up).
-- The identity margin = external_revenue - direct_cost holds on every row once summed over
-- the layers of a group, and exactly on every row of the consolidated grain.
with layer_margin as (
    select * from marts.fct_layer_margin
),

final as (
    select
        event_date,
        tenant_id,
        product,
        model,
        region,
        chip_family,
        actor_type,
        layer,
        layer_order,
        segment,
        reporting_currency,
        count(*) as requests,
        sum(external_revenue) as external_revenue,
        sum(transfer_revenue) as transfer_revenue,
        sum(revenue) as revenue,
        sum(transfer_cost) as transfer_cost,
        sum(direct_cost) as direct_cost,
        sum(margin) as margin,
        sum(inter_segment_revenue) as inter_segment_revenue,
        sum(inter_segment_cost) as inter_segment_cost
    from layer_margin
    group by all
)

select * from final
