"""The workspace settings that shape an export (contract §2: the latest version known,
whatever the window; ``shared.columnar.queries.workspace_options`` reads them)."""

from __future__ import annotations

from dataclasses import dataclass

from shared.domain.dimensions import DEFAULT_SETTINGS


@dataclass(frozen=True, slots=True)
class WorkspaceOptions:
    """Workspace settings that shape an export (contract §2 defaults)."""

    byok: bool = bool(DEFAULT_SETTINGS["byok"])
    user_level_data: bool = bool(DEFAULT_SETTINGS["user_level_data"])
