-- The message and API request facts summed per key (docs/storage.md, "Roll-ups"): what
-- the api_keys, models and projects exports add up, in rows of one shape, so that the
-- sums of disjoint sets of facts add up to the sums of their union. A key is every column
-- those exports group or filter by; "facts" counts the facts (a project's messages). Each
-- row also has its bucket (window_facts), last; the stored roll-ups have none.
-- The janitor stores the sums of each merged month file (KEY_ROLLUPS) and the exporter
-- adds those of the files a window covers whole to the sums of the rest.
CREATE OR REPLACE MACRO key_parts(start_ms, end_ms) AS TABLE
SELECT
    kind, api_key_id, project_id, model, provider, byok, deployment, source,
    count(*) AS facts,
    sum(requests) AS requests,
    sum(prompt_tokens) AS prompt_tokens,
    sum(completion_tokens) AS completion_tokens,
    sum(cached_tokens) AS cached_tokens,
    sum(creation_tokens) AS creation_tokens,
    sum(cost_nano) AS cost_nano,
    bucket
FROM window_facts(start_ms, end_ms)
WHERE kind IN ('message', 'api_request')
GROUP BY ALL;

-- The window's sums per key: those of its facts, and the janitor's stored ones of the
-- facts files the window covers whole (relation key_rollups: the exporter registers only
-- those; else it is empty).
CREATE OR REPLACE MACRO window_totals(start_ms, end_ms) AS TABLE
SELECT * FROM key_parts(start_ms, end_ms)
UNION ALL
SELECT * EXCLUDE (rollup), 0 AS bucket FROM key_rollups;
