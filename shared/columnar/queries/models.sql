-- The models export (docs/contract.md §5, "models"): one row per (model, provider, BYOK
-- state) seen in the window — per (model, provider, BYOK state, source) or (..., deployment)
-- with $group_by = 'source' or 'deployment'. Models have rows only from activity:
-- messages and API requests alike. Parameters: $start_ms, $end_ms, $group_by.
-- Rows are per bucket (column bucket: relation buckets, cells.sql's window_facts);
-- column active: the row had activity in its bucket (every models row has).
-- nano_total_cost_usd: the money column's nano-dollars (a bucketed export carries its
-- rounding).
-- It reads the window's sums per key (key_parts.sql's window_totals).
SELECT
    bucket,
    model AS name,
    provider,
    CASE $group_by WHEN 'source' THEN source WHEN 'deployment' THEN deployment ELSE '' END
        AS subgroup,
    bool_text(byok) AS bring_your_keys,
    CAST(sum(requests) AS VARCHAR) AS requests,
    CAST(sum(prompt_tokens) AS VARCHAR) AS sum_prompt_tokens,
    CAST(sum(completion_tokens) AS VARCHAR) AS sum_completion_tokens,
    CAST(sum(cached_tokens) AS VARCHAR) AS sum_cached_prompt_tokens,
    CAST(sum(creation_tokens) AS VARCHAR) AS sum_cache_creation_tokens,
    CAST(sum(prompt_tokens) - sum(cached_tokens) - sum(creation_tokens) AS VARCHAR)
        AS no_cache_tokens,
    money(sum(cost_nano)) AS total_cost_usd,
    true AS active,
    sum(cost_nano) AS nano_total_cost_usd
FROM window_totals($start_ms, $end_ms)
WHERE kind IN ('message', 'api_request')
GROUP BY bucket, model, provider, byok, subgroup
ORDER BY bucket, sum(requests) DESC, model, provider, byok, subgroup
