-- Internal transfer prices between layers (rating.transfer_prices), with the end of each
-- row's validity: in force from effective_from until the next row with the same identity
-- (seller, buyer and keys).
with source as (
    select * from rating.transfer_prices
),

renamed as (
    select
        from_layer,
        to_layer,
        chip_family,
        region,
        model,
        token_type,
        unit,
        currency,
        cast(amount as decimal(38, 12)) as amount,
        effective_from,
        coalesce(
            lead(effective_from) over (
                partition by from_layer, to_layer, chip_family, region, model, token_type
                order by effective_from
            ),
            'infinity'::timestamptz
        ) as effective_to,
        note
    from source
)

select * from renamed
