-- Revenue by day (UTC event date), tenant, workspace, api key, product, model, region, channel
-- and currency: requests, tokens by type, amounts by token type (list price), free quota, what
-- customers owe (amount, in currency) and the same in the reporting currency. Sum any
-- combination of these columns to allocate a bill by api key, workspace, model, token type or
-- channel.
with usage as (
    select * from marts.fct_usage_rated
),

final as (
    select
        event_date,
        tenant_id,
        workspace_id,
        api_key_id,
        product,
        model,
        region,
        channel,
        currency,
        reporting_currency,
        count(*) as requests,
        count(*) filter (where is_batch) as batch_requests,
        cast(sum(input_tokens) as bigint) as input_tokens,
        cast(sum(fresh_input_tokens) as bigint) as fresh_input_tokens,
        cast(sum(cached_input_tokens) as bigint) as cached_input_tokens,
        cast(sum(output_tokens) as bigint) as output_tokens,
        cast(sum(non_thinking_output_tokens) as bigint) as non_thinking_output_tokens,
        cast(sum(thinking_tokens) as bigint) as thinking_tokens,
        cast(sum(total_tokens) as bigint) as total_tokens,
        cast(sum(free_quota_tokens) as bigint) as free_quota_tokens,
        cast(sum(amount_input) as decimal(38, 12)) as amount_input,
        cast(sum(amount_cached_input) as decimal(38, 12)) as amount_cached_input,
        cast(sum(amount_output) as decimal(38, 12)) as amount_output,
        cast(sum(amount_thinking) as decimal(38, 12)) as amount_thinking,
        cast(sum(amount_gross) as decimal(38, 12)) as amount_gross,
        cast(sum(free_quota_discount) as decimal(38, 12)) as free_quota_discount,
        cast(sum(amount) as decimal(38, 12)) as amount,
        cast(sum(amount_reporting) as decimal(38, 12)) as amount_reporting
    from usage
    group by all
)

select * from final
