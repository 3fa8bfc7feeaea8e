"""The compactor service: upkeep of the workspaces' facts tables, apart from ingest."""
