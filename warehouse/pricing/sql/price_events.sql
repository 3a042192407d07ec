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

priced as (
    select
        events.*,
        price_book.book as price_book,
        price_book.book_version as price_book_version,
        price_book.effective_from as price_effective_from,
        price_book.currency,
        price_book.tier,
        price_book.input_price_per_token,
        price_book.cached_input_price_per_token,
        price_book.output_price_per_token,
        price_book.thinking_output_price_per_token
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
),

with_batch_ratio as (
    select
        priced.*,
        case when priced.is_batch then batch_pricing.batch_price_ratio else 1 end
            as price_ratio
    from priced
    left join batch_pricing
        on priced.is_batch
        and priced.occurred_at >= batch_pricing.effective_from
        and priced.occurred_at < batch_pricing.effective_to
),

-- Why an event found no price: only the (few) unpriced events are examined.
unpriced as (
    select
        event_id,
        model,
        region,
        occurred_at
    from priced
    where price_book_version is null
),

known_models as (
    select distinct model from price_book
),

known_regions as (
    select distinct region from price_book
),

offered as (
    select distinct
        model,
        region
    from price_book
),

version_in_force as (
    select distinct unpriced.event_id
    from unpriced
    inner join price_book
        on unpriced.model = price_book.model
        and unpriced.region = price_book.region
        and unpriced.occurred_at >= price_book.effective_from
        and unpriced.occurred_at < price_book.effective_to
),

unpriced_reasons as (
    select
        unpriced.event_id,
        case
            when known_models.model is null then 'unknown_model'
            when known_regions.region is null then 'unknown_region'
            when offered.model is null then 'model_not_offered_in_region'
            when version_in_force.event_id is null then 'no_price_in_force'
            else 'input_over_largest_tier'
        end as unrated_reason
    from unpriced
    left join known_models on unpriced.model = known_models.model
    left join known_regions on unpriced.region = known_regions.region
    left join offered
        on unpriced.model = offered.model
        and unpriced.region = offered.region
    left join version_in_force on unpriced.event_id = version_in_force.event_id
),

unit_prices as (
    select
        with_batch_ratio.*,
        case
            when with_batch_ratio.price_book_version is null then unpriced_reasons.unrated_reason
            when with_batch_ratio.price_ratio is null then 'no_batch_price_in_force'
        end as unrated_reason,
        cast(with_batch_ratio.input_price_per_token * with_batch_ratio.price_ratio
            as decimal(38, 12)) as unit_price_input,
        -- Batch calls get no cache discount: cached input pays the (batch) input price.
        cast(
            case
                when with_batch_ratio.is_batch then with_batch_ratio.input_price_per_token
                else with_batch_ratio.cached_input_price_per_token
            end * with_batch_ratio.price_ratio as decimal(38, 12)
        ) as unit_price_cached_input,
        cast(with_batch_ratio.output_price_per_token * with_batch_ratio.price_ratio
            as decimal(38, 12)) as unit_price_output,
        cast(with_batch_ratio.thinking_output_price_per_token * with_batch_ratio.price_ratio
            as decimal(38, 12)) as unit_price_thinking
    from with_batch_ratio
    left join unpriced_reasons on with_batch_ratio.event_id = unpriced_reasons.event_id
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
