"""Where the ingest service spends its CPU: a py-spy profile of one run, summarised.

py-spy attaches to the running service (``--nonblocking``: the service is not paused
while sampled) and writes collapsed stacks (``--format raw``) when the service exits.
Samples of idle threads are not recorded, so shares are of CPU-busy time. Each sample
is put in the first category whose pattern occurs anywhere in its stack.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from bench.consumers import assigned_at, service_argv
from bench.kafka_io import CommitWatcher, Ends
from bench.procs import Measured
from bench.stack import child_env
from shared.settings import Settings

Stack = tuple[list[str], int]

#: (category, substrings of a frame); first match over the whole stack wins.
CATEGORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("S3 requests (aioboto3/botocore/aiohttp)", ("botocore", "aioboto3", "aiohttp", "s3.py")),
    ("Kafka fetch and commit (aiokafka)", ("aiokafka",)),
    ("validation (orjson + pydantic)", ("validation.py", "pydantic")),
    ("state encode/decode (days, dims, codec)", ("storage/days.py", "storage/dims.py")),
    ("fold and the rest of the batch loop", ("aggregate.py", "facts.py", "ingest/worker.py")),
)
OTHER = "other (event loop, logging, ...)"


def parse_collapsed(text: str) -> list[Stack]:
    """``frame;frame;frame count`` lines (outermost frame first)."""
    stacks: list[Stack] = []
    for line in text.splitlines():
        frames, _, count = line.rpartition(" ")
        if frames and count.isdigit():
            stacks.append((frames.split(";"), int(count)))
    return stacks


def categorise(stacks: list[Stack]) -> dict[str, float]:
    """Share of samples per category (fractions adding up to 1)."""
    counts: Counter[str] = Counter()
    for frames, count in stacks:
        counts[_category(frames)] += count
    total = sum(counts.values()) or 1
    return {name: counts[name] / total for name, _ in counts.most_common()}


def _category(frames: list[str]) -> str:
    for name, patterns in CATEGORIES:
        if any(pattern in frame for frame in frames for pattern in patterns):
            return name
    return OTHER


def top_functions(stacks: list[Stack], n: int = 15, *, inclusive: bool = False) -> list[Any]:
    """The ``n`` frames with most samples: as the leaf (self time) or anywhere (inclusive)."""
    counts: Counter[str] = Counter()
    total = 0
    for frames, count in stacks:
        total += count
        if inclusive:
            for frame in set(frames):
                counts[frame] += count
        elif frames:
            counts[frames[-1]] += count
    total = total or 1
    return [[frame, round(count / total, 4)] for frame, count in counts.most_common(n)]


def pyspy() -> str | None:
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else shutil.which("py-spy")


async def profile_service(
    settings: Settings, ends: Ends, work_dir: Path, *, timeout_s: float
) -> dict[str, Any]:
    """Run the service once more under py-spy; the summary (or why there is none)."""
    binary = pyspy()
    if binary is None:
        return {"error": "py-spy is not installed (pip install py-spy)"}
    raw = work_dir / f"ingest-profile-{settings.ingest_group}.txt"
    log_path = work_dir / f"profile-{settings.ingest_group}.log"
    service = Measured(service_argv(), env=child_env(settings), log_path=log_path)
    async with CommitWatcher(settings, settings.ingest_group, settings.topic_events) as watcher:
        await service.start()
        spy = Measured(
            [binary, "record", "--pid", str(service.pid), "--format", "raw", "--rate", "100",
             "--nonblocking", "--output", str(raw)],
            env={}, log_path=work_dir / "py-spy.log",
        )  # fmt: skip
        await spy.start()
        try:
            finished = await watcher.wait_for(
                ends, timeout_s=timeout_s, alive=lambda: not service.exited
            )
        finally:
            await service.stop()
            await _wait_exit(spy, 30.0)
    first = assigned_at(service.log_text())
    if not raw.exists():
        return {"error": f"py-spy wrote no profile; its log:\n{spy.log_tail()}"}
    stacks = parse_collapsed(raw.read_text(encoding="utf-8", errors="replace"))
    return {
        "tool": "py-spy record --nonblocking --rate 100 (idle samples excluded)",
        "raw_file": str(raw),
        "samples": sum(count for _, count in stacks),
        "consume_s": None if first is None else finished - first,
        "categories": categorise(stacks),
        "top_self": top_functions(stacks),
        "top_inclusive": top_functions(stacks, 25, inclusive=True),
    }


async def _wait_exit(process: Measured, within_s: float) -> None:
    """py-spy exits by itself once its target has; stop it if it does not."""
    for _ in range(int(within_s / 0.2)):
        if process.exited:
            break
        await asyncio.sleep(0.2)
    await process.stop(grace_s=10.0)
