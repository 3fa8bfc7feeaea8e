-- The projects export (docs/contract.md §5, "projects"): one row per project that existed
-- at the window's end or had messages in it (projects have no subgroups).
-- Parameters: $start_ms, $end_ms (the window); $group_by is always ''.
-- Rows are per bucket (column bucket: relation buckets, cells.sql's window_facts; 0 for
-- the existing entities without activity); column active: the row had activity in its
-- bucket (a bucketed export keeps only those rows).
-- It reads the window's sums per key (key_parts.sql's window_totals).
WITH
messages AS (
    SELECT bucket, project_id, sum(facts) AS messages
    FROM window_totals($start_ms, $end_ms)
    WHERE kind = 'message' AND project_id IS NOT NULL
    GROUP BY bucket, project_id
),
projects_at_end AS (SELECT * FROM as_of('projects', $end_ms)),
project_ids AS (
    SELECT 0 AS bucket, entity_id AS project_id FROM projects_at_end WHERE deleted_at_end = false
    UNION SELECT bucket, project_id FROM messages
)
SELECT
    bucket,
    project_id,
    text_attribute(p.attributes, 'name') AS project_name,
    text_attribute(p.attributes, 'owner_id') AS project_owner_id,
    text_attribute(p.attributes, 'owner_email') AS project_owner_email,
    CAST(coalesce(messages.messages, 0) AS VARCHAR) AS messages,
    coalesce(messages.messages, 0) > 0 AS active
FROM project_ids
LEFT JOIN messages USING (bucket, project_id)
LEFT JOIN projects_at_end AS p ON p.entity_id = project_ids.project_id
WHERE $group_by = ''
ORDER BY bucket, coalesce(messages.messages, 0) DESC, project_id
