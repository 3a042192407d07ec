-- The share of the real-time price a batch call pays (rating.batch_pricing), in force from
-- effective_from until the next row.
with source as (
    select * from rating.batch_pricing
),

renamed as (
    select
        cast(batch_price_ratio as decimal(38, 12)) as batch_price_ratio,
        effective_from,
        coalesce(
            lead(effective_from) over (order by effective_from),
            'infinity'::timestamptz
        ) as effective_to,
        note
    from source
)

select * from renamed
