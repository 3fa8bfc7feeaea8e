-- The agent messages per (agent, model, user, conversation) (docs/storage.md,
-- "Roll-ups"): what the agents export counts and adds up, in rows of one shape, so that
-- the partials of disjoint sets of facts combine into the partial of their union: the
-- rows of both, with the same key's counts and sums added and its min_/max_ the least
-- and greatest. The distinct users and conversations of an agent are those of its rows,
-- whichever facts they came from. Each row also has its bucket (window_facts), last;
-- the stored roll-ups have none.
-- The janitor stores the partials of each merged month file (AGENT_ROLLUPS) and the
-- exporter combines those of the files a window covers whole with the partials of the
-- rest.
CREATE OR REPLACE MACRO agent_parts(start_ms, end_ms) AS TABLE
SELECT
    kind, assistant_id, model, user_id, conversation_id,
    count(*) AS messages,
    sum(prompt_tokens) AS prompt_tokens,
    min(prompt_tokens) AS min_prompt_tokens,
    max(prompt_tokens) AS max_prompt_tokens,
    sum(completion_tokens) AS completion_tokens,
    min(completion_tokens) AS min_completion_tokens,
    max(completion_tokens) AS max_completion_tokens,
    sum(cached_tokens) AS cached_tokens,
    sum(creation_tokens) AS creation_tokens,
    bucket
FROM window_facts(start_ms, end_ms)
WHERE kind = 'message' AND assistant_id IS NOT NULL
GROUP BY ALL;

-- The window's agent messages: the partials of its facts, and the janitor's stored ones
-- of the facts files the window covers whole (relation agent_rollups: the exporter
-- registers only those; else it is empty), members rows left out.
CREATE OR REPLACE MACRO window_agents(start_ms, end_ms) AS TABLE
SELECT * FROM agent_parts(start_ms, end_ms)
UNION ALL
SELECT * EXCLUDE (rollup), 0 AS bucket FROM agent_rollups WHERE kind = 'message';
