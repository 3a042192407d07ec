-- Warehouse rating, after list prices (price_events.sql -> temp table priced_events): the free
-- quota and the conversion to the reporting currency ($reporting_currency). One row per event
-- of priced_events, rated or with an unrated_reason.
--
-- Free quota (real-time calls only): a tenant gets free_tokens for a model in a region, valid
-- valid_days from the tenant's first call (any model, region or mode; tenant_first_calls), by
-- the free_quota row in force at that first call. Rated real-time events inside the window use
-- it up in event-time order (occurred_at, then event_id). The request that exhausts it is
-- split: the remaining free tokens cover its tokens in the order fresh input, cached input,
-- non-thinking output, thinking; each covered token's list price is the discount.
--
-- FX: the rate from the event's currency to the reporting currency in force on the event date
-- (UTC); none needed when they are the same. No rate: unrated (no_fx_rate_in_force).
with priced as (
    select * from priced_events
),

first_calls as (
    select * from tenant_first_calls
),

free_quota as (
    select * from staging.stg_free_quota
),

fx_rates as (
    select * from staging.stg_fx_rates
),

quota_eligible as (
    select
        priced.event_id,
        priced.tenant_id,
        priced.region,
        priced.model,
        priced.occurred_at,
        priced.total_tokens,
        free_quota.free_tokens
    from priced
    inner join first_calls on priced.tenant_id = first_calls.tenant_id
    inner join free_quota
        on priced.region = free_quota.region
        and priced.model = free_quota.model
        and first_calls.first_call_at >= free_quota.effective_from
        and first_calls.first_call_at < free_quota.effective_to
    where
        priced.unrated_reason is null
        and not priced.is_batch
        and priced.occurred_at < first_calls.first_call_at + to_days(free_quota.valid_days)
),

quota_used_before as (
    select
        event_id,
        total_tokens,
        free_tokens,
        coalesce(
            sum(total_tokens) over (
                partition by tenant_id, region, model
                order by occurred_at, event_id
                rows between unbounded preceding and 1 preceding
            ),
            0
        ) as tokens_before
    from quota_eligible
),

quota_covered as (
    select
        event_id,
        cast(least(total_tokens, greatest(free_tokens - tokens_before, 0)) as bigint)
            as free_quota_tokens
    from quota_used_before
),

quota_split as (
    select
        priced.*,
        coalesce(quota_covered.free_quota_tokens, 0) as free_quota_tokens,
        least(priced.fresh_input_tokens, coalesce(quota_covered.free_quota_tokens, 0))
            as free_fresh_input_tokens
    from priced
    left join quota_covered on priced.event_id = quota_covered.event_id
),

quota_split_cached as (
    select
        *,
        least(cached_input_tokens, free_quota_tokens - free_fresh_input_tokens)
            as free_cached_input_tokens
    from quota_split
),

quota_split_output as (
    select
        *,
        least(
            non_thinking_output_tokens,
            free_quota_tokens - free_fresh_input_tokens - free_cached_input_tokens
        ) as free_output_tokens
    from quota_split_cached
),

quota_discounted as (
    select
        *,
        free_quota_tokens - free_fresh_input_tokens - free_cached_input_tokens
        - free_output_tokens as free_thinking_tokens,
        case
            when free_quota_tokens = 0 then cast(0 as decimal(38, 12))
            else cast(
                free_fresh_input_tokens * unit_price_input
                + free_cached_input_tokens * unit_price_cached_input
                + free_output_tokens * unit_price_output
                + (
                    free_quota_tokens - free_fresh_input_tokens - free_cached_input_tokens
                    - free_output_tokens
                ) * unit_price_thinking
                as decimal(38, 12)
            )
        end as free_quota_discount
    from quota_split_output
),

dated as (
    select
        *,
        cast(timezone('UTC', occurred_at) as date) as event_date,
        cast(amount_gross - free_quota_discount as decimal(38, 12)) as amount
    from quota_discounted
),

converted as (
    select
        dated.*,
        case
            when dated.currency = $reporting_currency then cast(1 as decimal(38, 12))
            else fx_rates.rate
        end as fx_rate,
        case
            when dated.currency = $reporting_currency then dated.amount
            else cast(dated.amount * fx_rates.rate as decimal(38, 12))
        end as amount_reporting
    from dated
    left join fx_rates
        on dated.currency = fx_rates.from_currency
        and fx_rates.to_currency = $reporting_currency
        and dated.event_date >= fx_rates.effective_from
        and dated.event_date < fx_rates.effective_to
),

final as (
    select
        event_id,
        event_date,
        coalesce(
            unrated_reason,
            case when fx_rate is null then 'no_fx_rate_in_force' end
        ) as unrated_reason,
        tier,
        price_book,
        price_book_version,
        price_effective_from,
        currency,
        unit_price_input,
        unit_price_cached_input,
        unit_price_output,
        unit_price_thinking,
        amount_input,
        amount_cached_input,
        amount_output,
        amount_thinking,
        amount_gross,
        free_quota_tokens,
        free_quota_discount,
        amount,
        cast($reporting_currency as varchar) as reporting_currency,
        fx_rate,
        amount_reporting
    from converted
)

select * from final
