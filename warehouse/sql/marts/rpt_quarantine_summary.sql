-- Quarantined messages by reason: how many, over which offsets and time, and an example of
-- what was wrong (the detail of the first one). Nothing invalid is silently dropped: every
-- invalid message is counted here.
with quarantine as (
    select * from staging.stg_quarantine
),

final as (
    select
        reason,
        count(*) as messages,
        count(distinct kafka_topic || ':' || kafka_partition) as partitions,
        min(landed_at) as first_landed_at,
        max(landed_at) as last_landed_at,
        cast(sum(payload_bytes) as bigint) as payload_bytes,
        arg_min(detail, landed_at) as example_detail
    from quarantine
    group by reason
)

select * from final
