-- The projects export over aggregated rows (``agg``, see shape.sql): projects.sql of the
-- parent folder with count(*) as sum(n). Parameters: $start_ms, $end_ms, $group_by ('').
WITH
messages AS (
    SELECT project_id, sum(n) AS messages
    FROM agg
    WHERE shape = 'message' AND project_id IS NOT NULL
    GROUP BY project_id
),
projects_at_end AS (SELECT * FROM as_of('projects', $end_ms)),
project_ids AS (
    SELECT entity_id AS project_id FROM projects_at_end WHERE deleted_at_end = false
    UNION SELECT project_id FROM messages
)
SELECT
    project_id,
    text_attribute(p.attributes, 'name') AS project_name,
    text_attribute(p.attributes, 'owner_id') AS project_owner_id,
    text_attribute(p.attributes, 'owner_email') AS project_owner_email,
    CAST(coalesce(messages.messages, 0) AS VARCHAR) AS messages
FROM project_ids
LEFT JOIN messages USING (project_id)
LEFT JOIN projects_at_end AS p ON p.entity_id = project_ids.project_id
WHERE $group_by = ''
ORDER BY coalesce(messages.messages, 0) DESC, project_id
