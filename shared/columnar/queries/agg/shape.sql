-- The aggregated shape of facts (shared/columnar/aggregates.py): what the export queries
-- in this folder read instead of raw facts. Each row is one group of one "shape"; a
-- shape's groups carry exactly the keys its readers group or count distinct by, so that
-- re-aggregating groups (sums of sums, min of mins, distinct keys) equals aggregating
-- the facts themselves:
--   message       (user_id, assistant_id, project_id, model): n, with_actions, token and
--                 cost sums, min/max prompt and completion tokens       users, agents, projects
--   action        (user_id, model, action): n messages naming the action        users
--   conversation  (assistant_id, model, conversation_id): n                       agents
--   api_key       (api_key_id, model): n, requests, token and cost sums           api_keys
--   model         (model, provider, byok, source, deployment): n, requests, sums  models
--   payg          (user_id): n, amount sum                                        users
-- Every group is also keyed by ``period``: the UTC day of its facts.

-- The facts of ``facts`` with start_ms <= occurred_ms < end_ms, in aggregated shape.
CREATE OR REPLACE MACRO facts_shape(start_ms, end_ms) AS TABLE
WITH f AS (SELECT * FROM facts WHERE occurred_ms >= start_ms AND occurred_ms < end_ms)
SELECT
    day AS period, 'message' AS shape, user_id, assistant_id, project_id, model,
    count(*) AS n,
    count(*) FILTER (WHERE len(actions) > 0) AS with_actions,
    sum(requests) AS requests,
    sum(prompt_tokens) AS prompt_tokens,
    sum(completion_tokens) AS completion_tokens,
    sum(cached_tokens) AS cached_tokens,
    sum(creation_tokens) AS creation_tokens,
    sum(cost_nano) AS cost_nano,
    min(prompt_tokens) AS min_prompt_tokens,
    max(prompt_tokens) AS max_prompt_tokens,
    min(completion_tokens) AS min_completion_tokens,
    max(completion_tokens) AS max_completion_tokens
FROM f WHERE kind = 'message'
GROUP BY day, user_id, assistant_id, project_id, model
UNION ALL BY NAME
SELECT period, 'action' AS shape, user_id, model, action, count(*) AS n
FROM (SELECT day AS period, user_id, model, unnest(actions) AS action
      FROM f WHERE kind = 'message')
GROUP BY period, user_id, model, action
UNION ALL BY NAME
SELECT day AS period, 'conversation' AS shape, assistant_id, model, conversation_id, count(*) AS n
FROM f WHERE kind = 'message' AND assistant_id IS NOT NULL AND conversation_id IS NOT NULL
GROUP BY day, assistant_id, model, conversation_id
UNION ALL BY NAME
SELECT
    day AS period, 'api_key' AS shape, api_key_id, model,
    count(*) AS n,
    sum(requests) AS requests,
    sum(prompt_tokens) AS prompt_tokens,
    sum(completion_tokens) AS completion_tokens,
    sum(cached_tokens) AS cached_tokens,
    sum(creation_tokens) AS creation_tokens,
    sum(cost_nano) AS cost_nano
FROM f WHERE kind = 'api_request'
GROUP BY day, api_key_id, model
UNION ALL BY NAME
SELECT
    day AS period, 'model' AS shape, model, provider, byok, source, deployment,
    count(*) AS n,
    sum(requests) AS requests,
    sum(prompt_tokens) AS prompt_tokens,
    sum(completion_tokens) AS completion_tokens,
    sum(cached_tokens) AS cached_tokens,
    sum(creation_tokens) AS creation_tokens,
    sum(cost_nano) AS cost_nano
FROM f WHERE kind IN ('message', 'api_request')
GROUP BY day, model, provider, byok, source, deployment
UNION ALL BY NAME
SELECT day AS period, 'payg' AS shape, user_id, count(*) AS n, sum(amount_nano) AS amount_nano
FROM f WHERE kind = 'payg'
GROUP BY day, user_id;

-- The rows of ``agg`` (aggregated shape) re-aggregated per (calendar month, shape, keys):
-- the monthly aggregate from the daily one.
CREATE OR REPLACE MACRO regroup() AS TABLE
SELECT
    date_trunc('month', period)::DATE AS period, shape,
    user_id, assistant_id, project_id, model, action, conversation_id, api_key_id,
    provider, byok, source, deployment,
    sum(n) AS n,
    sum(with_actions) AS with_actions,
    sum(requests) AS requests,
    sum(prompt_tokens) AS prompt_tokens,
    sum(completion_tokens) AS completion_tokens,
    sum(cached_tokens) AS cached_tokens,
    sum(creation_tokens) AS creation_tokens,
    sum(cost_nano) AS cost_nano,
    sum(amount_nano) AS amount_nano,
    min(min_prompt_tokens) AS min_prompt_tokens,
    max(max_prompt_tokens) AS max_prompt_tokens,
    min(min_completion_tokens) AS min_completion_tokens,
    max(max_completion_tokens) AS max_completion_tokens
FROM agg
GROUP BY ALL;
