-- List-price rating of the events in `rating_input` (a table or view the caller provides with
-- the contract columns event_id, occurred_at, tenant_id, model, region, mode and the four token
-- counts). The one rating implementation: the warehouse (warehouse/pricing/rating.py) and the
-- live worker (BatchRater) both run this file, so their amounts cannot drift apart.
--
-- Rules (README "Rating rules"): the version of the event's model and region in force at
-- occurred_at; the tier that holds the request's input_tokens (cached included); fresh input at
-- the input price, cached input at the cached price, non-thinking output at the output price,
-- thinking at the thinking price. Batch: batch_price_ratio of each real-time price, cached
-- input at the (batch) input price. One row per event: amounts, or an unrated_reason (never a
-- zero amount). Free quota and FX come later (warehouse only).
with events as (
    select
        event_id,
        occurred_at,
        tenant_id,
        model,
        region,
        mode,
        mode = 'batch' as is_batch,
        cast(input_tokens as bigint) as input_tokens,
        cast(cached_input_tokens as bigint) as cached_input_tokens,
        cast(input_tokens - cached_input_tokens as bigint) as fresh_input_tokens,
        cast(output_tokens as bigint) as output_tokens,
        cast(thinking_tokens as bigint) as thinking_tokens,
        cast(output_tokens - thinking_tokens as bigint) as non_thinking_output_tokens,
        cast(input_tokens + output_tokens as bigint) as total_tokens
    from rating_input
),

price_book as (
    select * from staging.stg_price_book
),

batch_pricing as (
    select * from staging.stg_batch_pricing
),

-- The batch price of every price book row, for each batch ratio in force during its version
-- (a few hundred rows: the multiplications happen here, not once per event).
batch_card as (
    select
        price_book.model,
        price_book.region,
        price_book.effective_from,
        price_book.tier_min_input_tokens,
        batch_pricing.effective_from as batch_effective_from,
        batch_pricing.effective_to as batch_effective_to,
        cast(price_book.input_price_per_token * batch_pricing.batch_price_ratio
            as decimal(38, 12)) as unit_price_input,
        -- Batch calls get no cache discount: cached input pays the (batch) input price.
        cast(price_book.input_price_per_token * batch_pricing.batch_price_ratio
            as decimal(38, 12)) as unit_price_cached_input,
        cast(price_book.output_price_per_token * batch_pricing.batch_price_ratio
            as decimal(38, 12)) as unit_price_output,
        cast(price_book.thinking_output_price_per_token * batch_pricing.batch_price_ratio
            as decimal(38, 12)) as unit_price_thinking
    from price_book
    inner join batch_pricing
        on batch_pricing.effective_from < price_book.effective_to
        and batch_pricing.effective_to > price_book.effective_from
),

versions as (
    select distinct
        model,
        region,
        effective_from,
        effective_to
    from price_book
),

offered as (
    select distinct
        model,
        region
    from price_book
),

known_models as (
    select distinct model from price_book
),

known_regions as (
    select distinct region from price_book
),

priced as (
    select
        events.*,
        price_book.book as price_book,
        price_book.book_version as price_book_version,
        price_book.effective_from as price_effective_from,
        price_book.currency,
        price_book.tier,
        price_book.tier_min_input_tokens,
        price_book.input_price_per_token,
        price_book.cached_input_price_per_token,
        price_book.output_price_per_token,
        price_book.thinking_output_price_per_token,
        versions.effective_from is not null as has_version_in_force,
        offered.model is not null as is_offered
    from events
    left join price_book
        on events.model = price_book.model
        and events.region = price_book.region
        and events.occurred_at >= price_book.effective_from
        and events.occurred_at < price_book.effective_to
        and (
            events.input_tokens > price_book.tier_min_input_tokens
            or (price_book.tier_min_input_tokens = 0 and events.input_tokens = 0)
        )
        and events.input_tokens <= price_book.tier_max_input_tokens
    left join versions
        on events.model = versions.model
        and events.region = versions.region
        and events.occurred_at >= versions.effective_from
        and events.occurred_at < versions.effective_to
    left join offered
        on events.model = offered.model
        and events.region = offered.region
),

unit_prices as (
    select
        priced.*,
        case
            when priced.price_book_version is not null
                and (not priced.is_batch or batch_card.model is not null)
                then null
            when priced.price_book_version is not null then 'no_batch_price_in_force'
            when priced.is_offered and priced.has_version_in_force
                then 'input_over_largest_tier'
            when priced.is_offered then 'no_price_in_force'
            when priced.model not in (select model from known_models) then 'unknown_model'
            when priced.region not in (select region from known_regions) then 'unknown_region'
            else 'model_not_offered_in_region'
        end as unrated_reason,
        case
            when priced.is_batch then batch_card.unit_price_input
            else priced.input_price_per_token
        end as unit_price_input,
        case
            when priced.is_batch then batch_card.unit_price_cached_input
            else priced.cached_input_price_per_token
        end as unit_price_cached_input,
        case
            when priced.is_batch then batch_card.unit_price_output
            else priced.output_price_per_token
        end as unit_price_output,
        case
            when priced.is_batch then batch_card.unit_price_thinking
            else priced.thinking_output_price_per_token
        end as unit_price_thinking
    from priced
    left join batch_card
        on priced.is_batch
        and priced.model = batch_card.model
        and priced.region = batch_card.region
        and priced.price_effective_from = batch_card.effective_from
        and priced.tier_min_input_tokens = batch_card.tier_min_input_tokens
        and priced.occurred_at >= batch_card.batch_effective_from
        and priced.occurred_at < batch_card.batch_effective_to
),

amounts as (
    select
        *,
        cast(fresh_input_tokens * unit_price_input as decimal(38, 12)) as amount_input,
        cast(cached_input_tokens * unit_price_cached_input as decimal(38, 12))
            as amount_cached_input,
        cast(non_thinking_output_tokens * unit_price_output as decimal(38, 12))
            as amount_output,
        cast(thinking_tokens * unit_price_thinking as decimal(38, 12)) as amount_thinking
    from unit_prices
),

final as (
    select
        event_id,
        occurred_at,
        tenant_id,
        model,
        region,
        mode,
        is_batch,
        input_tokens,
        cached_input_tokens,
        fresh_input_tokens,
        output_tokens,
        thinking_tokens,
        non_thinking_output_tokens,
        total_tokens,
        unrated_reason,
        case when unrated_reason is null then tier end as tier,
        case when unrated_reason is null then price_book end as price_book,
        case when unrated_reason is null then price_book_version end as price_book_version,
        case when unrated_reason is null then price_effective_from end as price_effective_from,
        case when unrated_reason is null then currency end as currency,
        case when unrated_reason is null then unit_price_input end as unit_price_input,
        case when unrated_reason is null then unit_price_cached_input end
            as unit_price_cached_input,
        case when unrated_reason is null then unit_price_output end as unit_price_output,
        case when unrated_reason is null then unit_price_thinking end as unit_price_thinking,
        case when unrated_reason is null then amount_input end as amount_input,
        case when unrated_reason is null then amount_cached_input end as amount_cached_input,
        case when unrated_reason is null then amount_output end as amount_output,
        case when unrated_reason is null then amount_thinking end as amount_thinking,
        case
            when unrated_reason is null
                then cast(
                    amount_input + amount_cached_input + amount_output + amount_thinking
                    as decimal(38, 12)
                )
        end as amount_gross
    from amounts
)

select * from final
