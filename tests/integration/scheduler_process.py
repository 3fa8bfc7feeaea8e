"""``python -m tests.integration.scheduler_process CLOCK_FILE``: the scheduler service
exactly as ``usage-export scheduler`` runs it, except that its clock answers the ISO 8601
instant written in ``CLOCK_FILE`` (re-read at every call), so that a test can move a
*subprocess's* time. Test-only by construction: no setting or variable of the services
can replace their wall clock.
"""

from __future__ import annotations

import functools
import sys
from datetime import UTC, datetime
from pathlib import Path

from services.cli import main
from services.scheduler import app
from shared.clock import Clock


def file_clock(path: Path) -> Clock:
    """A clock answering the instant written in ``path`` (re-read at every call)."""

    def read() -> datetime:
        instant = datetime.fromisoformat(path.read_text(encoding="utf-8").strip())
        if instant.tzinfo is None:
            raise ValueError(f"{path} must hold an aware ISO 8601 instant")
        return instant.astimezone(UTC)

    return read


if __name__ == "__main__":
    # The CLI imports the runner by name when the command runs: it finds this one.
    app.run_scheduler = functools.partial(app.run_scheduler, clock=file_clock(Path(sys.argv[1])))
    sys.exit(main(["scheduler"]))
