"""Time buckets of an export (contract §3, ``bucket``): what a request may ask for."""

from __future__ import annotations

from enum import StrEnum
from typing import Final


class BucketUnit(StrEnum):
    """Calendar days, ISO weeks (Monday to Sunday) or calendar months, in the ``from``
    bound's timezone."""

    DAY = "day"
    WEEK = "week"
    MONTH = "month"


#: The accepted values, as a request names them.
BUCKET_NAMES: Final[tuple[str, ...]] = tuple(unit.value for unit in BucketUnit)
#: A window is cut into at most this many buckets (more is a 400).
MAX_BUCKETS: Final = 400
#: The two columns a bucketed export has right after ``period_end``.
BUCKET_COLUMNS: Final = ("bucket_start", "bucket_end")
