-- The API keys export (docs/contract.md §5, "api_keys"): one row per key that existed at
-- the window's end or made requests in it; with $group_by = 'model' one row per (key,
-- model) requested, and one row with an empty model for a key without requests.
-- Parameters: $start_ms, $end_ms (the window), $group_by ('' or 'model').
-- Rows are per bucket (column bucket: relation buckets, cells.sql's window_facts; 0 for
-- the existing entities without activity); column active: the row had activity in its
-- bucket (a bucketed export keeps only those rows); nano_<column>: a money column's
-- nano-dollars (a bucketed export carries its rounding).
-- It reads the window's sums per key (key_parts.sql's window_totals).
-- Shaped like the other export queries on purpose: one file per type, read beside its
-- column table; what they share is in the macros of cells.sql.
WITH
requests AS (
    SELECT *, CASE WHEN $group_by = 'model' THEN model ELSE '' END AS subgroup
    FROM window_totals($start_ms, $end_ms)
    WHERE kind = 'api_request'
),
keys_at_end AS (SELECT * FROM as_of('api_keys', $end_ms)),
key_ids AS (
    SELECT 0 AS bucket, entity_id AS api_key_id FROM keys_at_end WHERE deleted_at_end = false
    UNION SELECT bucket, api_key_id FROM requests
),
stats AS (
    SELECT
        bucket,
        api_key_id,
        subgroup,
        sum(requests) AS requests,
        sum(cost_nano) AS cost,
        sum(prompt_tokens) AS prompt,
        sum(completion_tokens) AS completion,
        sum(cached_tokens) AS cached,
        sum(creation_tokens) AS creation
    FROM requests
    GROUP BY bucket, api_key_id, subgroup
),
rows AS (
    SELECT
        bucket,
        api_key_id,
        coalesce(stats.subgroup, '') AS subgroup,
        coalesce(stats.requests, 0) AS requests,
        stats.* EXCLUDE (bucket, api_key_id, subgroup, requests)
    FROM key_ids LEFT JOIN stats USING (bucket, api_key_id)
)
SELECT
    rows.bucket,
    rows.api_key_id,
    rows.subgroup,
    text_attribute(k.attributes, 'name') AS api_key_name,
    CAST(rows.requests AS VARCHAR) AS requests,
    money(coalesce(cost, 0)) AS total_cost_usd,
    CAST(coalesce(prompt, 0) AS VARCHAR) AS sum_prompt_tokens,
    CAST(coalesce(completion, 0) AS VARCHAR) AS sum_completion_tokens,
    CAST(coalesce(cached, 0) AS VARCHAR) AS cached_prompt_tokens,
    CAST(coalesce(creation, 0) AS VARCHAR) AS cache_creation_tokens,
    CAST(coalesce(prompt - cached - creation, 0) AS VARCHAR) AS no_cache_tokens,
    rows.requests > 0 AS active,
    coalesce(cost, 0) AS nano_total_cost_usd
FROM rows LEFT JOIN keys_at_end AS k ON k.entity_id = rows.api_key_id
ORDER BY rows.bucket, rows.requests DESC, rows.api_key_id, rows.subgroup
