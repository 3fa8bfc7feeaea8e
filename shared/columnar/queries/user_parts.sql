-- The users export's partial aggregates of the window's facts (docs/storage.md,
-- "Roll-ups"): what users.sql adds up, per user (and per model when by_model), in rows
-- of one shape whatever the part, so that partials of disjoint sets of facts add up to
-- the partial of their union:
--   'stats'      per (user, subgroup): messages and the counts and sums of users.sql;
--   'assistant', 'project', 'model', 'action'
--                per (user, subgroup, key): messages with that agent, project, model or
--                action (a message with two actions counts once for each);
--   'payg'       per user: the extra-usage amount (subgroup '').
-- Each row also has its bucket (window_facts), last; the stored roll-ups have none.
-- The janitor stores the partial of each merged month file (USER_ROLLUPS) and the
-- exporter adds those of the files a window covers whole to the partial of the rest.
CREATE OR REPLACE MACRO user_parts(start_ms, end_ms, by_model) AS TABLE
WITH
messages AS (
    SELECT *, CASE WHEN by_model THEN model ELSE '' END AS subgroup
    FROM window_facts(start_ms, end_ms)
    WHERE kind = 'message'
),
keyed AS (
    SELECT 'assistant' AS part, user_id, subgroup, assistant_id AS key, bucket
    FROM messages WHERE assistant_id IS NOT NULL
    UNION ALL
    SELECT 'project', user_id, subgroup, project_id, bucket
    FROM messages WHERE project_id IS NOT NULL
    UNION ALL
    SELECT 'model', user_id, subgroup, model, bucket FROM messages
    UNION ALL
    SELECT 'action', user_id, subgroup, unnest(actions), bucket FROM messages
)
SELECT
    'stats' AS part,
    user_id,
    subgroup,
    CAST(NULL AS VARCHAR) AS key,
    count(*) AS messages,
    count(*) FILTER (WHERE assistant_id IS NULL AND project_id IS NULL) AS chat,
    count(assistant_id) AS with_assistant,
    count(project_id) AS with_project,
    count(*) FILTER (WHERE len(actions) > 0) AS with_actions,
    sum(prompt_tokens) AS prompt_tokens,
    sum(completion_tokens) AS completion_tokens,
    sum(cached_tokens) AS cached_tokens,
    sum(creation_tokens) AS creation_tokens,
    sum(cost_nano) AS cost_nano,
    0 AS amount_nano,
    bucket
FROM messages
GROUP BY bucket, user_id, subgroup
UNION ALL
SELECT part, user_id, subgroup, key, count(*), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, bucket
FROM keyed
GROUP BY bucket, part, user_id, subgroup, key
UNION ALL
SELECT 'payg', user_id, '', NULL, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, sum(amount_nano), bucket
FROM window_facts(start_ms, end_ms)
WHERE kind = 'payg'
GROUP BY bucket, user_id;
