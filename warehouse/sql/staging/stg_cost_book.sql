-- Direct costs of each layer (rating.cost_book, loaded by warehouse/pricing/cost_books.py),
-- with the end of each row's validity: a row is in force from effective_from until the next
-- row with the same identity (layer, cost item and keys). The interval is added here, once,
-- so every mart joins "in force at occurred_at" the same way.
with source as (
    select * from rating.cost_book
),

renamed as (
    select
        layer,
        cost_item,
        chip_family,
        region,
        model,
        product,
        unit,
        currency,
        cast(amount as decimal(38, 12)) as amount,
        effective_from,
        coalesce(
            lead(effective_from) over (
                partition by layer, cost_item, chip_family, region, model, product
                order by effective_from
            ),
            'infinity'::timestamptz
        ) as effective_to,
        note
    from source
)

select * from renamed
