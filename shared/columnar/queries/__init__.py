"""Exports as queries (storage format 3): each export type is one DuckDB query over Arrow
tables of the window's facts and the workspace's dimension versions, and its CSV is byte
for byte what the oracle (``tests/reference``) computes from the raw events
(``tests/unit/test_export_queries.py``). The exporter runs them
(``services/exporter/export_job.py``).

* ``cells.sql``: the cell formats and "as of the window's end" as SQL macros.
* ``user_parts.sql``, ``key_parts.sql``, ``agent_parts.sql``: the partial aggregates the
  users export, the api_keys, models and projects exports, and the agents export combine:
  of the window's facts, and stored by the janitor per merged month file
  (``shared.columnar.rollups``).
* ``users.sql``, ``agents.sql``, ``api_keys.sql``, ``projects.sql``, ``models.sql``: one
  query per type, read next to the type's column table in ``docs/contract.md``; the
  allowed ``group_by`` is a parameter of the same query (``$group_by``, '' when none).
* :mod:`.engine`: runs them and writes the file (:func:`~.engine.export_file`, :mod:`.files`).
"""

from shared.columnar.queries.engine import QueryExport, connect, export_file, workspace_options

__all__ = ["QueryExport", "connect", "export_file", "workspace_options"]
