-- The OLAP peer of the export benchmark (bench/olap.py): the users export as a DuckDB
-- user would write it over the raw events of one workspace landed as Parquet
-- (`raw_events`, one row per record of the topic that was not malformed, re-sent
-- duplicates included). Each event counts once: the first one landed (lowest `seq`)
-- wins. Money is the contract's: each amount to whole nano-dollars, half to even, then
-- summed. Parameters: $org_id, $start and $end (the window, start <= occurred_at < end).
WITH
events AS (
    SELECT *
    FROM raw_events
    WHERE org_id = $org_id
    QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY seq) = 1
),
messages AS (
    SELECT *
    FROM events
    WHERE type = 'message' AND occurred_at >= $start AND occurred_at < $end
),
payg AS (
    SELECT user_id, sum(round_even(amount, 9)) AS payg_consumption
    FROM events
    WHERE type = 'payg_consumption' AND occurred_at >= $start AND occurred_at < $end
    GROUP BY user_id
),
profiles AS (  -- each user's latest upsert before the window's end
    SELECT user_id, name, email, payg_limit, coalesce(deleted, false) AS deleted
    FROM events
    WHERE type = 'user_upserted' AND occurred_at < $end
    QUALIFY row_number() OVER (PARTITION BY user_id ORDER BY occurred_at DESC, event_id DESC) = 1
),
stats AS (
    SELECT
        user_id,
        count(*) AS messages_total,
        count(*) FILTER (WHERE assistant_id IS NULL AND project_id IS NULL) AS messages_chat,
        count(assistant_id) AS messages_assistants,
        count(DISTINCT assistant_id) AS assistants_messaged,
        histogram(assistant_id) AS assistants_to_messages,  -- NULLs skipped
        count(project_id) AS messages_projects,
        count(DISTINCT project_id) AS projects_messaged,
        histogram(project_id) AS projects_to_messages,
        histogram(model) AS model_to_messages_total,
        count(*) FILTER (WHERE len(actions) > 0) AS action_messages,
        sum(usage.prompt_tokens) AS total_input_tokens,
        sum(usage.completion_tokens) AS total_output_tokens,
        sum(usage.cached_prompt_tokens) AS cached_prompt_tokens,
        sum(usage.cache_creation_tokens) AS cache_creation_tokens,
        sum(round_even(usage.cost_usd, 9)) AS total_cost_usd
    FROM messages
    GROUP BY user_id
),
actions AS (  -- an action listed twice in one message counts once
    SELECT user_id, count(DISTINCT action) AS action_messaged,
           histogram(action) AS action_to_messages
    FROM (SELECT user_id, unnest(list_distinct(actions)) AS action FROM messages)
    GROUP BY user_id
),
users AS (
    SELECT user_id FROM profiles WHERE NOT deleted
    UNION SELECT user_id FROM stats
    UNION SELECT user_id FROM payg
)
SELECT
    user_id,
    profiles.name,
    profiles.email,
    round_even(profiles.payg_limit, 9) AS payg_limit,
    coalesce(payg.payg_consumption, 0) AS payg_consumption,
    coalesce(messages_total, 0) AS messages_total,
    rank() OVER (ORDER BY coalesce(messages_total, 0) DESC) AS messages_total_rank,
    coalesce(messages_chat, 0) AS messages_chat,
    rank() OVER (ORDER BY coalesce(messages_chat, 0) DESC) AS messages_chat_rank,
    coalesce(messages_assistants, 0) AS messages_assistants,
    rank() OVER (ORDER BY coalesce(messages_assistants, 0) DESC) AS messages_assistants_rank,
    coalesce(assistants_messaged, 0) AS assistants_messaged,
    assistants_to_messages,
    coalesce(messages_projects, 0) AS messages_projects,
    rank() OVER (ORDER BY coalesce(messages_projects, 0) DESC) AS messages_projects_rank,
    coalesce(projects_messaged, 0) AS projects_messaged,
    projects_to_messages,
    model_to_messages_total,
    coalesce(action_messages, 0) AS action_messages,
    coalesce(action_messaged, 0) AS action_messaged,
    action_to_messages,
    coalesce(total_input_tokens, 0) AS total_input_tokens,
    coalesce(total_output_tokens, 0) AS total_output_tokens,
    coalesce(cached_prompt_tokens, 0) AS cached_prompt_tokens,
    coalesce(cache_creation_tokens, 0) AS cache_creation_tokens,
    coalesce(total_input_tokens, 0) - coalesce(cached_prompt_tokens, 0)
        - coalesce(cache_creation_tokens, 0) AS no_cache_tokens,
    coalesce(total_cost_usd, 0) AS total_cost_usd
FROM users
LEFT JOIN stats USING (user_id)
LEFT JOIN actions USING (user_id)
LEFT JOIN payg USING (user_id)
LEFT JOIN profiles USING (user_id)
ORDER BY messages_total DESC, user_id
