-- The models export over aggregated rows (``agg``, see shape.sql): models.sql of the
-- parent folder over the "model" groups. Parameters: $start_ms, $end_ms, $group_by.
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
FROM agg
WHERE shape = 'model'
GROUP BY model, provider, byok, subgroup
ORDER BY sum(requests) DESC, model, provider, byok, subgroup
