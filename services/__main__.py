"""``python -m services`` is the same as ``usage-export``."""

import sys

from services.cli import main

sys.exit(main())
