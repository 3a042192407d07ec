-- Quarantined messages (raw.quarantine, written by the loader): invalid events kept with the
-- reason code of streams.events.InvalidEvent, renamed and cast only.
with source as (
    select * from raw.quarantine
),

renamed as (
    select
        kafka_topic,
        kafka_partition,
        kafka_offset,
        message_key,
        payload,
        octet_length(payload) as payload_bytes,
        reason,
        detail,
        landed_at,
        cast(timezone('UTC', landed_at) as date) as landed_date
    from source
)

select * from renamed
