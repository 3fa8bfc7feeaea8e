"""``python -m tests.integration.compactor_process CLOCK_FILE``: the compactor service
exactly as ``usage-export compactor`` runs it, except that its clock answers the instant
written in ``CLOCK_FILE`` (as ``tests.integration.scheduler_process`` does for the
scheduler): which months are closed is the test's to say, not the machine's date.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path

from services.cli import main
from services.compactor import app
from tests.integration.scheduler_process import file_clock

if __name__ == "__main__":
    # The CLI imports the runner by name when the command runs: it finds this one.
    app.run_compactor = functools.partial(app.run_compactor, clock=file_clock(Path(sys.argv[1])))
    sys.exit(main(["compactor"]))
