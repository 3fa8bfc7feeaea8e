-- The models export (docs/contract.md §5, "models"): one row per (model, provider, BYOK
-- state) seen in the window — per (model, provider, BYOK state, source) or (..., deployment)
-- with $group_by = 'source' or 'deployment'. Models have rows only from activity:
-- messages and API requests alike. Parameters: $start_ms, $end_ms, $group_by.
-- It reads the window's sums per key (key_parts.sql's window_totals).
SELECT
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
    money(sum(cost_nano)) AS total_cost_usd
FROM window_totals($start_ms, $end_ms)
WHERE kind IN ('message', 'api_request')
GROUP BY model, provider, byok, subgroup
ORDER BY sum(requests) DESC, model, provider, byok, subgroup
