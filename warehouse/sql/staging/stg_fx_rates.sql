-- FX rates (rating.fx_rates): one from_currency is worth rate to_currency. A rate is in force
-- from its effective_from date until the next rate of the same pair; an event converts at the
-- rate in force on its event date (UTC).
with source as (
    select * from rating.fx_rates
),

renamed as (
    select
        from_currency,
        to_currency,
        cast(rate as decimal(38, 12)) as rate,
        effective_from,
        coalesce(
            lead(effective_from) over (
                partition by from_currency, to_currency order by effective_from
            ),
            'infinity'::date
        ) as effective_to,
        note
    from source
)

select * from renamed
