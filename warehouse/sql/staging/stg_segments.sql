-- Reporting segment of each layer (rating.segments), with the end of each row's validity.
with source as (
    select * from rating.segments
),

renamed as (
    select
        layer,
        segment,
        effective_from,
        coalesce(
            lead(effective_from) over (partition by layer order by effective_from),
            'infinity'::timestamptz
        ) as effective_to,
        note
    from source
)

select * from renamed
