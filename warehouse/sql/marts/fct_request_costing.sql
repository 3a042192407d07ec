-- One row per rated request: the cost rates and transfer prices in force at occurred_at for
-- every layer the request went through, the segment of each layer, and what is missing.
-- A request with anything missing is uncosted (is_costed = false, reasons in
-- missing_costs): it never gets a zero cost; fct_request_economics leaves it out and
-- rpt_uncosted_usage and warehouse.economics.check_costing report it.
--
-- Layers: a chip family has an internal chip layer when the books give it a chip-layer cost
-- or a chip -> cloud transfer price (domestic chips); imported GPUs have neither, the cloud
-- layer amortises their purchase as its own direct cost. Direct API calls (product 'api')
-- have no application layer: the model layer sells to the customer.
with usage as (
    select * from marts.fct_usage_rated
),

cost_book as (
    select * from staging.stg_cost_book
),

transfer_prices as (
    select * from staging.stg_transfer_prices
),

segments as (
    select * from staging.stg_segments
),

chip_cost as (
    select
        usage.event_id,
        sum(cost_book.amount) as chip_cost_per_hour,
        bool_and(cost_book.currency = usage.reporting_currency) as is_in_reporting_currency
    from usage
    inner join cost_book
        on cost_book.layer = 'chip'
        and cost_book.chip_family = usage.chip_family
        and usage.occurred_at >= cost_book.effective_from
        and usage.occurred_at < cost_book.effective_to
    group by usage.event_id
),

cloud_cost as (
    select
        usage.event_id,
        sum(cost_book.amount) as cloud_cost_per_hour,
        bool_and(cost_book.currency = usage.reporting_currency) as is_in_reporting_currency
    from usage
    inner join cost_book
        on cost_book.layer = 'cloud'
        and cost_book.region = usage.region
        and cost_book.chip_family = usage.chip_family
        and usage.occurred_at >= cost_book.effective_from
        and usage.occurred_at < cost_book.effective_to
    group by usage.event_id
),

model_cost as (
    select
        usage.event_id,
        sum(cost_book.amount) as model_cost_per_million_tokens,
        bool_and(cost_book.currency = usage.reporting_currency) as is_in_reporting_currency
    from usage
    inner join cost_book
        on cost_book.layer = 'model'
        and cost_book.model = usage.model
        and usage.occurred_at >= cost_book.effective_from
        and usage.occurred_at < cost_book.effective_to
    group by usage.event_id
),

application_cost as (
    select
        usage.event_id,
        coalesce(sum(cost_book.amount) filter (where cost_book.unit = 'request'), 0)
            as application_cost_per_request,
        coalesce(sum(cost_book.amount) filter (where cost_book.unit = 'million_tokens'), 0)
            as application_cost_per_million_tokens,
        bool_and(cost_book.currency = usage.reporting_currency) as is_in_reporting_currency
    from usage
    inner join cost_book
        on cost_book.layer = 'application'
        and cost_book.product = usage.product
        and usage.occurred_at >= cost_book.effective_from
        and usage.occurred_at < cost_book.effective_to
    where usage.product != 'api'
    group by usage.event_id
),

chip_to_cloud as (
    select
        usage.event_id,
        sum(transfer_prices.amount) as chip_to_cloud_per_hour,
        bool_and(transfer_prices.currency = usage.reporting_currency) as is_in_reporting_currency
    from usage
    inner join transfer_prices
        on transfer_prices.from_layer = 'chip'
        and transfer_prices.to_layer = 'cloud'
        and transfer_prices.chip_family = usage.chip_family
        and usage.occurred_at >= transfer_prices.effective_from
        and usage.occurred_at < transfer_prices.effective_to
    group by usage.event_id
),

cloud_to_model as (
    select
        usage.event_id,
        sum(transfer_prices.amount) as cloud_to_model_per_hour,
        bool_and(transfer_prices.currency = usage.reporting_currency) as is_in_reporting_currency
    from usage
    inner join transfer_prices
        on transfer_prices.from_layer = 'cloud'
        and transfer_prices.to_layer = 'model'
        and transfer_prices.region = usage.region
        and transfer_prices.chip_family = usage.chip_family
        and usage.occurred_at >= transfer_prices.effective_from
        and usage.occurred_at < transfer_prices.effective_to
    group by usage.event_id
),

model_to_application as (
    -- Per token type either a share of the rated list price or a price per million tokens
    -- (the other one is zero, not missing); all four token types must have a price.
    select
        usage.event_id,
        count(distinct transfer_prices.token_type) as token_types_priced,
        bool_and(
            transfer_prices.currency is null
            or transfer_prices.currency = usage.reporting_currency
        ) as is_in_reporting_currency,
        coalesce(
            sum(transfer_prices.amount) filter (
                where transfer_prices.token_type = 'input'
                and transfer_prices.unit = 'share_of_list_price'
            ),
            0
        ) as input_share_of_list_price,
        coalesce(
            sum(transfer_prices.amount) filter (
                where transfer_prices.token_type = 'input' and transfer_prices.unit = 'million_tokens'
            ),
            0
        ) as input_transfer_per_million_tokens,
        coalesce(
            sum(transfer_prices.amount) filter (
                where transfer_prices.token_type = 'cached_input'
                and transfer_prices.unit = 'share_of_list_price'
            ),
            0
        ) as cached_input_share_of_list_price,
        coalesce(
            sum(transfer_prices.amount) filter (
                where transfer_prices.token_type = 'cached_input' and transfer_prices.unit = 'million_tokens'
            ),
            0
        ) as cached_input_transfer_per_million_tokens,
        coalesce(
            sum(transfer_prices.amount) filter (
                where transfer_prices.token_type = 'output'
                and transfer_prices.unit = 'share_of_list_price'
            ),
            0
        ) as output_share_of_list_price,
        coalesce(
            sum(transfer_prices.amount) filter (
                where transfer_prices.token_type = 'output' and transfer_prices.unit = 'million_tokens'
            ),
            0
        ) as output_transfer_per_million_tokens,
        coalesce(
            sum(transfer_prices.amount) filter (
                where transfer_prices.token_type = 'thinking'
                and transfer_prices.unit = 'share_of_list_price'
            ),
            0
        ) as thinking_share_of_list_price,
        coalesce(
            sum(transfer_prices.amount) filter (
                where transfer_prices.token_type = 'thinking' and transfer_prices.unit = 'million_tokens'
            ),
            0
        ) as thinking_transfer_per_million_tokens
    from usage
    inner join transfer_prices
        on transfer_prices.from_layer = 'model'
        and transfer_prices.to_layer = 'application'
        and transfer_prices.model = usage.model
        and usage.occurred_at >= transfer_prices.effective_from
        and usage.occurred_at < transfer_prices.effective_to
    where usage.product != 'api'
    group by usage.event_id
),

layer_segments as (
    select
        usage.event_id,
        max(segments.segment) filter (where segments.layer = 'chip') as chip_segment,
        max(segments.segment) filter (where segments.layer = 'cloud') as cloud_segment,
        max(segments.segment) filter (where segments.layer = 'model') as model_segment,
        max(segments.segment) filter (where segments.layer = 'application')
            as application_segment
    from usage
    inner join segments
        on usage.occurred_at >= segments.effective_from
        and usage.occurred_at < segments.effective_to
    group by usage.event_id
),

joined as (
    select
        usage.*,
        chip_cost.event_id is not null or chip_to_cloud.event_id is not null as has_chip_layer,
        usage.product != 'api' as has_application_layer,
        chip_cost.chip_cost_per_hour,
        chip_to_cloud.chip_to_cloud_per_hour,
        cloud_cost.cloud_cost_per_hour,
        cloud_to_model.cloud_to_model_per_hour,
        model_cost.model_cost_per_million_tokens,
        model_to_application.* exclude (event_id, token_types_priced, is_in_reporting_currency),
        model_to_application.token_types_priced,
        application_cost.application_cost_per_request,
        application_cost.application_cost_per_million_tokens,
        layer_segments.* exclude (event_id),
        coalesce(chip_cost.is_in_reporting_currency, true)
        and coalesce(chip_to_cloud.is_in_reporting_currency, true)
        and coalesce(cloud_cost.is_in_reporting_currency, true)
        and coalesce(cloud_to_model.is_in_reporting_currency, true)
        and coalesce(model_cost.is_in_reporting_currency, true)
        and coalesce(model_to_application.is_in_reporting_currency, true)
        and coalesce(application_cost.is_in_reporting_currency, true)
            as is_in_reporting_currency
    from usage
    left join chip_cost using (event_id)
    left join chip_to_cloud using (event_id)
    left join cloud_cost using (event_id)
    left join cloud_to_model using (event_id)
    left join model_cost using (event_id)
    left join model_to_application using (event_id)
    left join application_cost using (event_id)
    left join layer_segments using (event_id)
),

checked as (
    select
        *,
        list_filter(
            [
                case when has_chip_layer and chip_cost_per_hour is null then 'no_chip_cost' end,
                case
                    when has_chip_layer and chip_to_cloud_per_hour is null
                        then 'no_transfer_price_chip_to_cloud'
                end,
                case when cloud_cost_per_hour is null then 'no_cloud_cost' end,
                case
                    when cloud_to_model_per_hour is null then 'no_transfer_price_cloud_to_model'
                end,
                case when model_cost_per_million_tokens is null then 'no_model_cost' end,
                case
                    when has_application_layer and coalesce(token_types_priced, 0) < 4
                        then 'no_transfer_price_model_to_application'
                end,
                case
                    when has_application_layer and application_cost_per_request is null
                        then 'no_application_cost'
                end,
                case
                    when (has_chip_layer and chip_segment is null)
                        or cloud_segment is null
                        or model_segment is null
                        or (has_application_layer and application_segment is null)
                        then 'no_segment'
                end,
                case
                    when not is_in_reporting_currency
                        then 'cost_currency_not_reporting_currency'
                end
            ],
            lambda reason: reason is not null
        ) as missing_costs
    from joined
),

final as (
    select
        * exclude (is_in_reporting_currency),
        len(missing_costs) = 0 as is_costed
    from checked
)

select * from final
