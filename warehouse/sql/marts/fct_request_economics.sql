-- One row per costed rated request (wide): external revenue, the three internal transfers,
-- the direct cost and the margin of each layer, in the reporting currency.
--
--   chip margin        = chip->cloud transfer - chip direct cost
--   cloud margin       = cloud->model transfer - chip->cloud transfer - cloud direct cost
--   model margin       = (external revenue for direct API calls, else model->application
--                         transfer) - cloud->model transfer - model direct cost
--   application margin = external revenue - model->application transfer - its direct cost
--
-- Each transfer is one rounded amount used on both sides, so the layer margins add up to
-- external revenue - total direct cost exactly (DECIMAL), on every row and every sum.
-- Amounts are DECIMAL(38, 12): accelerator-hour amounts are ms * rate / 3,600,000 rounded
-- half up to 12 places with integer arithmetic, because DuckDB divides decimals as doubles.
-- Layers a request does not go through carry zeros (has_chip_layer, has_application_layer
-- say which); missing costs never do: uncosted requests are left out (fct_request_costing).
with costing as (
    select * from marts.fct_request_costing
    where is_costed
),

amounts as (
    select
        *,
        ((accelerator_ms::hugeint * 2000000000000 + 3600000) // 7200000)::decimal(38, 0)
        * 0.000000000001 as accelerator_hours,
        case
            when has_chip_layer
                then (
                    (
                        accelerator_ms::hugeint
                        * (chip_cost_per_hour * 1000000000000)::hugeint * 2 + 3600000
                    ) // 7200000
                )::decimal(38, 0) * 0.000000000001
            else 0::decimal(38, 12)
        end as chip_direct_cost,
        case
            when has_chip_layer
                then (
                    (
                        accelerator_ms::hugeint
                        * (chip_to_cloud_per_hour * 1000000000000)::hugeint * 2 + 3600000
                    ) // 7200000
                )::decimal(38, 0) * 0.000000000001
            else 0::decimal(38, 12)
        end as transfer_chip_to_cloud,
        (
            (
                accelerator_ms::hugeint
                * (cloud_cost_per_hour * 1000000000000)::hugeint * 2 + 3600000
            ) // 7200000
        )::decimal(38, 0) * 0.000000000001 as cloud_direct_cost,
        (
            (
                accelerator_ms::hugeint
                * (cloud_to_model_per_hour * 1000000000000)::hugeint * 2 + 3600000
            ) // 7200000
        )::decimal(38, 0) * 0.000000000001 as transfer_cloud_to_model,
        cast(total_tokens * model_cost_per_million_tokens * 0.000001 as decimal(38, 12))
            as model_direct_cost,
        case
            when has_application_layer
                then cast(
                    cast(
                        cast(amount_input * input_share_of_list_price as decimal(38, 12))
                        + cast(
                            amount_cached_input * cached_input_share_of_list_price
                            as decimal(38, 12)
                        )
                        + cast(amount_output * output_share_of_list_price as decimal(38, 12))
                        + cast(
                            amount_thinking * thinking_share_of_list_price as decimal(38, 12)
                        )
                        as decimal(38, 12)
                    ) * fx_rate as decimal(38, 12)
                )
                + cast(
                    (
                        fresh_input_tokens * input_transfer_per_million_tokens
                        + cached_input_tokens * cached_input_transfer_per_million_tokens
                        + non_thinking_output_tokens * output_transfer_per_million_tokens
                        + thinking_tokens * thinking_transfer_per_million_tokens
                    ) * 0.000001 as decimal(38, 12)
                )
            else 0::decimal(38, 12)
        end as transfer_model_to_application,
        case
            when has_application_layer
                then cast(
                    application_cost_per_request
                    + total_tokens * application_cost_per_million_tokens * 0.000001
                    as decimal(38, 12)
                )
            else 0::decimal(38, 12)
        end as application_direct_cost,
        cast(amount_reporting as decimal(38, 12)) as external_revenue
    from costing
),

margins as (
    select
        *,
        transfer_chip_to_cloud - chip_direct_cost as chip_margin,
        transfer_cloud_to_model - transfer_chip_to_cloud - cloud_direct_cost as cloud_margin,
        case
            when has_application_layer then transfer_model_to_application
            else external_revenue
        end - transfer_cloud_to_model - model_direct_cost as model_margin,
        case
            when has_application_layer
                then external_revenue - transfer_model_to_application - application_direct_cost
            else 0::decimal(38, 12)
        end as application_margin,
        chip_direct_cost + cloud_direct_cost + model_direct_cost + application_direct_cost
            as total_direct_cost
    from amounts
),

final as (
    select
        event_id,
        occurred_at,
        event_date,
        tenant_id,
        workspace_id,
        api_key_id,
        product,
        channel,
        actor_type,
        actor_id,
        swarm_id,
        task_id,
        session_id,
        request_id,
        model,
        region,
        chip_family,
        mode,
        is_batch,
        input_tokens,
        cached_input_tokens,
        fresh_input_tokens,
        output_tokens,
        thinking_tokens,
        non_thinking_output_tokens,
        total_tokens,
        accelerator_ms,
        accelerator_hours,
        has_chip_layer,
        has_application_layer,
        chip_segment,
        cloud_segment,
        model_segment,
        application_segment,
        reporting_currency,
        external_revenue,
        transfer_chip_to_cloud,
        transfer_cloud_to_model,
        transfer_model_to_application,
        chip_direct_cost,
        cloud_direct_cost,
        model_direct_cost,
        application_direct_cost,
        total_direct_cost,
        chip_margin,
        cloud_margin,
        model_margin,
        application_margin,
        external_revenue - total_direct_cost as consolidated_margin
    from margins
)

select * from final
