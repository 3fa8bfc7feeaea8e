"""``usage-export compactor``: run the compactor service against the configured store."""

from __future__ import annotations

from typing import Any

from services.cli.runtime import register_service


def register(subparsers: Any) -> None:
    register_service(
        subparsers,
        "compactor",
        help="merge closed months, compact days, roll up and expire the stored facts",
        description="Run the compactor service: every USAGE_COMPACTION_INTERVAL_S seconds "
        "it finds the workspaces whose facts table has new commits and merges their closed "
        "months, compacts their crowded days and rolls up their month files; every "
        "USAGE_JANITOR_INTERVAL_S it does so for every workspace, then deletes the facts "
        "past the retention and vacuums unreferenced files. It needs the store only. Any "
        "number of replicas may run (of two racing rewrites one is refused); give each a "
        "USAGE_COMPACTOR_SHARD k/n to split the workspaces between them. SIGTERM: finish "
        "the workspace in flight (at most 30 s), exit 0.",
        runner="services.compactor.app:run_compactor",
    )
