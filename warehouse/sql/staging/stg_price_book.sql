-- Price book rows (rating.price_book, loaded by warehouse/pricing/books.py), one per tier of
-- a version, with the end of the version's validity: a version of a model in a region is in
-- force from its effective_from until the next version's effective_from for that model and
-- region. tier is a readable label of the input-token bounds (0-128k, 128k-256k, 256k-1m).
with source as (
    select * from rating.price_book
),

version_starts as (
    select distinct
        model,
        region,
        effective_from
    from source
),

version_bounds as (
    select
        model,
        region,
        effective_from,
        coalesce(
            lead(effective_from) over (partition by model, region order by effective_from),
            'infinity'::timestamptz
        ) as effective_to
    from version_starts
),

renamed as (
    select
        source.book,
        source.book_version,
        source.effective_from,
        version_bounds.effective_to,
        source.model,
        source.region,
        source.currency,
        source.unit_tokens,
        source.tier_min_input_tokens,
        source.tier_max_input_tokens,
        concat_ws(
            '-',
            case
                when source.tier_min_input_tokens = 0 then '0'
                when source.tier_min_input_tokens % 1000000 = 0
                    then (source.tier_min_input_tokens // 1000000)::varchar || 'm'
                when source.tier_min_input_tokens % 1000 = 0
                    then (source.tier_min_input_tokens // 1000)::varchar || 'k'
                else source.tier_min_input_tokens::varchar
            end,
            case
                when source.tier_max_input_tokens % 1000000 = 0
                    then (source.tier_max_input_tokens // 1000000)::varchar || 'm'
                when source.tier_max_input_tokens % 1000 = 0
                    then (source.tier_max_input_tokens // 1000)::varchar || 'k'
                else source.tier_max_input_tokens::varchar
            end
        ) as tier,
        cast(source.input_price as decimal(38, 12)) as input_price,
        cast(source.cached_input_price as decimal(38, 12)) as cached_input_price,
        cast(source.output_price as decimal(38, 12)) as output_price,
        cast(source.thinking_output_price as decimal(38, 12)) as thinking_output_price,
        cast(source.input_price_per_token as decimal(38, 12)) as input_price_per_token,
        cast(source.cached_input_price_per_token as decimal(38, 12))
            as cached_input_price_per_token,
        cast(source.output_price_per_token as decimal(38, 12)) as output_price_per_token,
        cast(source.thinking_output_price_per_token as decimal(38, 12))
            as thinking_output_price_per_token,
        source.note
    from source
    inner join version_bounds
        on source.model = version_bounds.model
        and source.region = version_bounds.region
        and source.effective_from = version_bounds.effective_from
)

select * from renamed
