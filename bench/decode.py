"""``python -m bench.decode``: records/s of ingest's decoding, today's path vs the batch decoder.

The same simulated record values (``shared.simulation``, a few workspaces over a year,
with duplicates, late and some invalid events) are decoded, in one run, best of 3:

- ``read_record``: today's per-record path (orjson, the hand-written fast path, the
  models for the rest) to fact tuples, plus ``dimension_update`` for upserts;
- ``read_record + facts_table``: the same, then the facts as FACTS Arrow tables (what
  storage format 2 needs), one per workspace;
- ``decode_batch``: ``services.ingest.decode``, straight to one FACTS table.

Prints a table and writes ``bench/decode.json``. No figure is asserted anywhere.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from services.ingest.decode import decode_batch
from services.ingest.validation import AcceptedRange, Rejected, read_record
from shared.clock import system_clock
from shared.columnar.schema import facts_table
from shared.domain.dimensions import DimensionEvent, dimension_update
from shared.domain.facts import Fact
from shared.simulation import SimConfig, simulate

DEFAULT_PATH = Path(__file__).with_name("decode.json")
MAX_BYTES = 1 << 20
BATCH = 10_000  # records per decode_batch call (a few Kafka fetches)


def read_records(values: list[bytes | None], accepted: AcceptedRange) -> dict[str, list[Fact]]:
    facts: defaultdict[str, list[Fact]] = defaultdict(list)
    for value in values:
        result = read_record(value, accepted, max_bytes=MAX_BYTES)
        if type(result) is tuple:
            facts[result[0]].append(result[1])
        elif not isinstance(result, Rejected):
            dimension_update(cast(DimensionEvent, result))
    return facts


def read_records_to_tables(values: list[bytes | None], accepted: AcceptedRange) -> int:
    return sum(
        facts_table(org_id, facts).num_rows
        for org_id, facts in read_records(values, accepted).items()
    )


def decode_batches(values: list[bytes | None], accepted: AcceptedRange) -> int:
    return sum(
        decode_batch(values[start : start + BATCH], accepted, max_bytes=MAX_BYTES).facts.num_rows
        for start in range(0, len(values), BATCH)
    )


def best_of(runs: int, work: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(runs):
        gc.collect()
        started = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - started)
    return best


def measure(events: int, runs: int, invalid_rate: float) -> dict[str, Any]:
    now = system_clock()
    accepted = AcceptedRange.at(now)
    config = SimConfig(seed=11, orgs=5, events=events, end=now, invalid_rate=invalid_rate)
    values: list[bytes | None] = [record.value for record in simulate(config, now=now)]
    check = decode_batch(values, accepted, max_bytes=MAX_BYTES)
    paths: dict[str, Callable[[], object]] = {
        "read_record": lambda: read_records(values, accepted),
        "read_record + facts_table": lambda: read_records_to_tables(values, accepted),
        "decode_batch": lambda: decode_batches(values, accepted),
    }
    rates = {name: len(values) / best_of(runs, work) for name, work in paths.items()}
    return {
        "records": len(values),
        "activity_rows": check.facts.num_rows,
        "dimension_versions": len(check.dimensions),
        "rejected": len(check.rejected),
        "by_models": check.by_models,
        "invalid_rate": invalid_rate,
        "batch": BATCH,
        "runs": runs,
        "records_per_s": {name: round(rate) for name, rate in rates.items()},
        "speedup_vs_read_record": round(rates["decode_batch"] / rates["read_record"], 2),
        "speedup_vs_read_record_tables": round(
            rates["decode_batch"] / rates["read_record + facts_table"], 2
        ),
        "python": platform.python_version(),
        "measured_at": now.isoformat(timespec="seconds"),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.decode", description=__doc__)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--invalid-rate", type=float, default=0.01)
    parser.add_argument("--out", type=Path, default=DEFAULT_PATH)
    args = parser.parse_args(argv)
    result = measure(args.events, args.runs, args.invalid_rate)
    for name, rate in result["records_per_s"].items():
        print(f"{name:<28} {rate:>12,} records/s")
    print(
        f"{result['records']:,} records: {result['activity_rows']:,} activity rows, "
        f"{result['dimension_versions']:,} dimension versions, {result['rejected']:,} rejected, "
        f"{result['by_models']:,} left to read_record; decode_batch is "
        f"{result['speedup_vs_read_record']}x read_record, "
        f"{result['speedup_vs_read_record_tables']}x read_record + facts_table"
    )
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
