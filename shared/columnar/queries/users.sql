-- The users export (docs/contract.md §5, "users"): one row per user that existed at the
-- window's end or had activity (messages or extra usage) in it; with $group_by = 'model'
-- one row per (user, model) the user messaged, and one row with an empty model for a
-- user without messages. Columns are named as in the contract; "subgroup" is the
-- group_by column. Parameters: $start_ms, $end_ms (the window), $group_by ('' or 'model').
-- Rows are per bucket (column bucket: relation buckets, cells.sql's window_facts; 0 for
-- the existing entities without activity); column active: the row had activity in its
-- bucket (a bucketed export keeps only those rows); nano_<column>: a money column's
-- nano-dollars (a bucketed export carries its rounding).
-- Shaped like the other export queries on purpose: one file per type, read beside its
-- column table; what they share is in the macros of cells.sql.
-- It reads the partial aggregates of user_parts.sql: those of the window's facts, and
-- ($group_by = '' only) the janitor's stored ones of the facts files the window covers
-- whole (relation user_rollups: the exporter registers only those; else it is empty).
WITH
parts AS (
    SELECT * FROM user_parts($start_ms, $end_ms, $group_by = 'model')
    UNION ALL
    SELECT * EXCLUDE (source), 0 AS bucket FROM user_rollups
),
payg AS (
    SELECT bucket, user_id, sum(amount_nano) AS consumption
    FROM parts WHERE part = 'payg'
    GROUP BY bucket, user_id
),
users_at_end AS (SELECT * FROM as_of('users', $end_ms)),
stats AS (
    SELECT
        bucket,
        user_id,
        subgroup,
        sum(messages) AS messages_total,
        sum(chat) AS messages_chat,
        sum(with_assistant) AS messages_assistants,
        sum(with_project) AS messages_projects,
        sum(with_actions) AS action_messages,
        sum(prompt_tokens) AS prompt,
        sum(completion_tokens) AS completion,
        sum(cached_tokens) AS cached,
        sum(creation_tokens) AS creation,
        sum(cost_nano) AS cost
    FROM parts WHERE part = 'stats'
    GROUP BY bucket, user_id, subgroup
),
user_ids AS (
    SELECT 0 AS bucket, entity_id AS user_id FROM users_at_end WHERE deleted_at_end = false
    UNION SELECT bucket, user_id FROM stats
    UNION SELECT bucket, user_id FROM payg
),
counts AS (
    SELECT part, bucket, user_id, subgroup, key, sum(messages) AS n
    FROM parts WHERE key IS NOT NULL
    GROUP BY ALL
),
by_assistant AS (
    SELECT bucket, user_id, subgroup, count(*) AS assistants_messaged,
           json_counts(key, n) AS assistants_to_messages
    FROM counts WHERE part = 'assistant'
    GROUP BY bucket, user_id, subgroup
),
by_project AS (
    SELECT bucket, user_id, subgroup, count(*) AS projects_messaged,
           json_counts(key, n) AS projects_to_messages
    FROM counts WHERE part = 'project'
    GROUP BY bucket, user_id, subgroup
),
by_model AS (
    SELECT bucket, user_id, subgroup, json_counts(key, n) AS model_to_messages_total
    FROM counts WHERE part = 'model'
    GROUP BY bucket, user_id, subgroup
),
by_action AS (
    SELECT bucket, user_id, subgroup, count(*) AS action_messaged,
           json_counts(key, n) AS action_to_messages
    FROM counts WHERE part = 'action'
    GROUP BY bucket, user_id, subgroup
),
rows AS (
    SELECT
        bucket,
        user_id,
        coalesce(stats.subgroup, '') AS subgroup,
        coalesce(messages_total, 0) AS messages_total,
        coalesce(messages_chat, 0) AS messages_chat,
        coalesce(messages_assistants, 0) AS messages_assistants,
        coalesce(messages_projects, 0) AS messages_projects,
        stats.* EXCLUDE (bucket, user_id, subgroup, messages_total, messages_chat,
                         messages_assistants, messages_projects)
    FROM user_ids LEFT JOIN stats USING (bucket, user_id)
)
SELECT
    rows.bucket,
    rows.user_id,
    rows.subgroup,
    text_attribute(a.attributes, 'name') AS name,
    text_attribute(a.attributes, 'email') AS email,
    text_attribute(a.attributes, 'role') AS role,
    text_attribute(a.attributes, 'joined_at') AS joined_at,
    text_attribute(a.attributes, 'department') AS department,
    text_attribute(a.attributes, 'company_name') AS company_name,
    text_attribute(a.attributes, 'license_type') AS license_type,
    money(CAST(json_extract_string(a.attributes, '$.payg_limit') AS HUGEINT)) AS payg_limit_current,
    money(coalesce(payg.consumption, 0)) AS payg_consumption_in_period,
    ratio(coalesce(payg.consumption, 0),
          CAST(json_extract_string(a.attributes, '$.payg_limit') AS HUGEINT),
          100) AS payg_utilization_pct_current,
    CAST(messages_total AS VARCHAR) AS messages_total,
    CAST(rank() OVER (per_bucket ORDER BY messages_total DESC) AS VARCHAR) AS messages_total_rank,
    CAST(messages_chat AS VARCHAR) AS messages_chat,
    CAST(rank() OVER (per_bucket ORDER BY messages_chat DESC) AS VARCHAR) AS messages_chat_rank,
    CAST(messages_assistants AS VARCHAR) AS messages_assistants,
    CAST(rank() OVER (per_bucket ORDER BY messages_assistants DESC) AS VARCHAR) AS messages_assistants_rank,
    CAST(coalesce(by_assistant.assistants_messaged, 0) AS VARCHAR) AS assistants_messaged,
    coalesce(assistants_to_messages, '{}') AS assistants_to_messages,
    CAST(messages_projects AS VARCHAR) AS messages_projects,
    CAST(rank() OVER (per_bucket ORDER BY messages_projects DESC) AS VARCHAR) AS messages_projects_rank,
    CAST(coalesce(by_project.projects_messaged, 0) AS VARCHAR) AS projects_messaged,
    coalesce(projects_to_messages, '{}') AS projects_to_messages,
    coalesce(model_to_messages_total, '{}') AS model_to_messages_total,
    CAST(coalesce(action_messages, 0) AS VARCHAR) AS action_messages,
    CAST(coalesce(action_messaged, 0) AS VARCHAR) AS action_messaged,
    coalesce(action_to_messages, '{}') AS action_to_messages,
    CAST(coalesce(prompt, 0) AS VARCHAR) AS total_input_tokens,
    CAST(coalesce(completion, 0) AS VARCHAR) AS total_output_tokens,
    CAST(coalesce(cached, 0) AS VARCHAR) AS cached_prompt_tokens,
    CAST(coalesce(creation, 0) AS VARCHAR) AS cache_creation_tokens,
    CAST(coalesce(prompt - cached - creation, 0) AS VARCHAR) AS no_cache_tokens,
    money(coalesce(cost, 0)) AS total_cost_usd,
    rows.messages_total > 0 OR payg.consumption IS NOT NULL AS active,
    coalesce(payg.consumption, 0) AS nano_payg_consumption_in_period,
    coalesce(cost, 0) AS nano_total_cost_usd
FROM rows
LEFT JOIN users_at_end AS a ON a.entity_id = rows.user_id
LEFT JOIN payg USING (bucket, user_id)
LEFT JOIN by_assistant USING (bucket, user_id, subgroup)
LEFT JOIN by_project USING (bucket, user_id, subgroup)
LEFT JOIN by_model USING (bucket, user_id, subgroup)
LEFT JOIN by_action USING (bucket, user_id, subgroup)
WINDOW per_bucket AS (PARTITION BY rows.bucket)
ORDER BY rows.bucket, rows.messages_total DESC, rows.user_id, rows.subgroup
