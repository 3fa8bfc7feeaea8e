-- The agents (assistants) export (docs/contract.md §5, "assistants"): one row per agent
-- that existed at the window's end or was messaged in it; with $group_by = 'model' one
-- row per (agent, model) messaged, and one row with an empty model for an agent without
-- messages. Parameters: $start_ms, $end_ms (the window), $group_by ('' or 'model').
-- Rows are per bucket (column bucket: relation buckets, cells.sql's window_facts; 0 for
-- the existing entities without activity); column active: the row had activity in its
-- bucket (a bucketed export keeps only those rows).
-- active_users: senders whose user is not deleted at the end (a sender without any
-- upsert before the end counts as active).
-- It reads the agent messages as partials per (agent, model, user, conversation)
-- (agent_parts.sql's window_agents: of the facts, and the janitor's roll-ups of the month
-- files the window covers whole), so the distinct users and conversations of an agent
-- are the distinct ones of its partials' rows and every other figure their sum (minimum,
-- maximum).
-- Shaped like the other export queries on purpose: one file per type, read beside its
-- column table; what they share is in the macros of cells.sql.
WITH
messages AS (
    SELECT *, CASE WHEN $group_by = 'model' THEN model ELSE '' END AS subgroup
    FROM window_agents($start_ms, $end_ms)
),
agents_at_end AS (SELECT * FROM as_of('agents', $end_ms)),
users_at_end AS (SELECT * FROM as_of('users', $end_ms)),
agent_ids AS (
    SELECT 0 AS bucket, entity_id AS assistant_id FROM agents_at_end WHERE deleted_at_end = false
    UNION SELECT bucket, assistant_id FROM messages
),
-- Each agent's senders once, then their state at the end: the join is of the distinct
-- (agent, sender) pairs, not of every row.
senders AS (
    SELECT
        bucket,
        assistant_id,
        subgroup,
        count(*) AS unique_users,
        count(*) FILTER (WHERE u.deleted_at_end IS DISTINCT FROM true) AS active_users
    FROM (
        SELECT DISTINCT bucket, assistant_id, subgroup, user_id
        FROM messages
        WHERE user_id IS NOT NULL
    ) AS pairs
    LEFT JOIN users_at_end AS u ON u.entity_id = pairs.user_id
    GROUP BY bucket, assistant_id, subgroup
),
sums AS (
    SELECT
        bucket,
        assistant_id,
        subgroup,
        sum(messages) AS messages,
        count(DISTINCT conversation_id) AS conversations,
        sum(prompt_tokens) AS prompt,
        min(min_prompt_tokens) AS min_prompt,
        max(max_prompt_tokens) AS max_prompt,
        sum(completion_tokens) AS completion,
        min(min_completion_tokens) AS min_completion,
        max(max_completion_tokens) AS max_completion,
        sum(cached_tokens) AS cached,
        sum(creation_tokens) AS creation
    FROM messages
    GROUP BY bucket, assistant_id, subgroup
),
stats AS (
    SELECT sums.*, unique_users, active_users
    FROM sums LEFT JOIN senders USING (bucket, assistant_id, subgroup)
),
rows AS (
    SELECT
        bucket,
        assistant_id,
        coalesce(stats.subgroup, '') AS subgroup,
        coalesce(messages, 0) AS messages,
        coalesce(active_users, 0) AS active_users,
        stats.* EXCLUDE (bucket, assistant_id, subgroup, messages, active_users)
    FROM agent_ids LEFT JOIN stats USING (bucket, assistant_id)
)
SELECT
    rows.bucket,
    rows.assistant_id,
    rows.subgroup,
    text_attribute(a.attributes, 'name') AS assistant_name,
    text_attribute(a.attributes, 'description') AS assistant_description,
    text_attribute(a.attributes, 'url') AS assistant_url,
    text_attribute(a.attributes, 'owner_id') AS assistant_owner_id,
    text_attribute(a.attributes, 'owner_email') AS assistant_owner_email,
    CAST(messages AS VARCHAR) AS messages,
    CAST(coalesce(unique_users, 0) AS VARCHAR) AS unique_users,
    CAST(active_users AS VARCHAR) AS active_users,
    CAST(coalesce(conversations, 0) AS VARCHAR) AS conversations,
    ratio(messages, active_users, 1) AS messages_per_user,
    CAST(coalesce(prompt, 0) AS VARCHAR) AS sum_prompt_tokens,
    ratio(coalesce(prompt, 0), messages, 1) AS avg_prompt_tokens,
    CAST(min_prompt AS VARCHAR) AS min_prompt_tokens,
    CAST(max_prompt AS VARCHAR) AS max_prompt_tokens,
    CAST(coalesce(completion, 0) AS VARCHAR) AS sum_completion_tokens,
    ratio(coalesce(completion, 0), messages, 1) AS avg_completion_tokens,
    CAST(min_completion AS VARCHAR) AS min_completion_tokens,
    CAST(max_completion AS VARCHAR) AS max_completion_tokens,
    CAST(coalesce(cached, 0) AS VARCHAR) AS sum_cached_prompt_tokens,
    CAST(coalesce(creation, 0) AS VARCHAR) AS sum_cache_creation_tokens,
    CAST(coalesce(prompt - cached - creation, 0) AS VARCHAR) AS sum_no_cache_tokens,
    messages > 0 AS active
FROM rows LEFT JOIN agents_at_end AS a ON a.entity_id = rows.assistant_id
ORDER BY rows.bucket, rows.messages DESC, rows.assistant_id, rows.subgroup
