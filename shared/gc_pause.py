"""Pausing Python's cyclic garbage collector around bulk decoding and merging.

Decoding a month rollup or a day head allocates hundreds of thousands of dicts and lists
that stay alive (they are merged into the export's aggregate). Every 700 net allocations
the collector runs, and as the surviving heap grows it keeps re-traversing it — the
aggregate being built included. Measured on the benchmark's 10,000-user workspace:
``orjson.loads`` of a 2.2 MB month rollup takes 0.30 s with the collector on, 0.03-0.07 s
with it paused; that was most of what the first profile put down to "orjson".

The documents are trees (no reference cycles), so reference counting frees them without
the collector; pausing it only postpones collecting other garbage cycles to the end of
the section. A section may span ``await``s (a month's rebuild does): other tasks
then run with the collector paused too, and whichever section that paused it ends turns
it back on, so a pause never outlives the section that started it. Objects that die
inside a pause are never traversed at all.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collector_paused() -> Iterator[None]:
    if not gc.isenabled():  # already paused by an enclosing section (or by the process)
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
