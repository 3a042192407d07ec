-- Free quota for new tenants (rating.free_quota): free_tokens per region and model, valid
-- valid_days from a tenant's first call. A row is in force from effective_from until the next
-- row for the same region and model; the row in force at the tenant's first call applies.
with source as (
    select * from rating.free_quota
),

renamed as (
    select
        region,
        model,
        free_tokens,
        valid_days,
        effective_from,
        coalesce(
            lead(effective_from) over (partition by region, model order by effective_from),
            'infinity'::timestamptz
        ) as effective_to,
        note
    from source
)

select * from renamed
