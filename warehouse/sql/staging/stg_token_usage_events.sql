-- Landed token usage events (raw.token_usage_events, one row per distinct event_id), renamed
-- and cast only; event_date is the UTC calendar date of occurred_at.
with source as (
    select * from raw.token_usage_events
),

renamed as (
    select
        event_id,
        schema_version,
        occurred_at,
        cast(timezone('UTC', occurred_at) as date) as event_date,
        tenant_id,
        workspace_id,
        api_key_id,
        product,
        channel,
        actor_type,
        actor_id,
        swarm_id,
        task_id,
        session_id,
        request_id,
        model,
        region,
        chip_family,
        mode,
        mode = 'batch' as is_batch,
        cast(input_tokens as bigint) as input_tokens,
        cast(cached_input_tokens as bigint) as cached_input_tokens,
        cast(output_tokens as bigint) as output_tokens,
        cast(thinking_tokens as bigint) as thinking_tokens,
        cast(accelerator_ms as bigint) as accelerator_ms,
        kafka_topic,
        kafka_partition,
        kafka_offset,
        landed_at
    from source
)

select * from renamed
