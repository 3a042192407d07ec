-- One row per costed request and layer it went through (long form of
-- fct_request_economics): what the layer is paid (by the customer or by the layer above),
-- what it pays the layer below, its own direct cost and its margin, in the reporting
-- currency, with its segment and whether each transfer crosses a segment boundary.
--
--   chip --(chip->cloud)--> cloud --(cloud->model)--> model --(model->app)--> application
--                                                       \--> customer (product 'api')
--
-- Imported GPUs have no chip row; direct API calls have no application row. For every
-- request and every group of rows: sum(margin) = sum(external_revenue) - sum(direct_cost).
with requests as (
    select * from marts.fct_request_economics
),

layers as (
    select
        *,
        'chip' as layer,
        1 as layer_order,
        chip_segment as segment,
        cloud_segment as sells_to_segment,
        null::varchar as buys_from_segment,
        0::decimal(38, 12) as layer_external_revenue,
        transfer_chip_to_cloud as transfer_revenue,
        0::decimal(38, 12) as transfer_cost,
        chip_direct_cost as direct_cost,
        chip_margin as margin
    from requests
    where has_chip_layer

    union all

    select
        *,
        'cloud' as layer,
        2 as layer_order,
        cloud_segment as segment,
        model_segment as sells_to_segment,
        case when has_chip_layer then chip_segment end as buys_from_segment,
        0::decimal(38, 12) as layer_external_revenue,
        transfer_cloud_to_model as transfer_revenue,
        transfer_chip_to_cloud as transfer_cost,
        cloud_direct_cost as direct_cost,
        cloud_margin as margin
    from requests

    union all

    select
        *,
        'model' as layer,
        3 as layer_order,
        model_segment as segment,
        case when has_application_layer then application_segment end as sells_to_segment,
        cloud_segment as buys_from_segment,
        case
            when has_application_layer then 0::decimal(38, 12) else external_revenue
        end as layer_external_revenue,
        transfer_model_to_application as transfer_revenue,
        transfer_cloud_to_model as transfer_cost,
        model_direct_cost as direct_cost,
        model_margin as margin
    from requests

    union all

    select
        *,
        'application' as layer,
        4 as layer_order,
        application_segment as segment,
        null::varchar as sells_to_segment,
        model_segment as buys_from_segment,
        external_revenue as layer_external_revenue,
        0::decimal(38, 12) as transfer_revenue,
        transfer_model_to_application as transfer_cost,
        application_direct_cost as direct_cost,
        application_margin as margin
    from requests
    where has_application_layer
),

final as (
    select
        event_id,
        occurred_at,
        event_date,
        tenant_id,
        workspace_id,
        product,
        channel,
        actor_type,
        actor_id,
        swarm_id,
        task_id,
        session_id,
        model,
        region,
        chip_family,
        mode,
        layer,
        layer_order,
        segment,
        reporting_currency,
        layer_external_revenue as external_revenue,
        transfer_revenue,
        layer_external_revenue + transfer_revenue as revenue,
        transfer_cost,
        direct_cost,
        margin,
        case
            when sells_to_segment is distinct from segment and sells_to_segment is not null
                then transfer_revenue
            else 0::decimal(38, 12)
        end as inter_segment_revenue,
        case
            when buys_from_segment is distinct from segment and buys_from_segment is not null
                then transfer_cost
            else 0::decimal(38, 12)
        end as inter_segment_cost
    from layers
)

select * from final
