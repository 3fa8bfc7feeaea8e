"""bench.aggregates: the 12-month users export from raw facts vs from the daily/monthly
aggregates (``shared.columnar.aggregates``), and what the builder costs.

One workspace in a local ``TableStore``: ~5,000,000 facts of 10,000 users over 365 days
(1,000 agents, 300 projects, 100 API keys, 20 models; shares and skews after
``shared.simulation``), made by a vectorized generator (numpy, fixed seed). Each export
path runs in its own process, 3 times (the first is a cold process), and reports its
peak RSS. Figures go to ``bench/aggregates.json``.

    python -m bench.aggregates [--facts 5000000] [--dir /tmp/bench-aggregates]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from shared.columnar import aggregates
from shared.columnar.queries import connect, export_csv
from shared.columnar.queries.engine import FACTS_COLUMNS, QueryExport
from shared.columnar.schema import FACTS, DimensionVersion, dimensions_table
from shared.columnar.tables import TableStore, WorkspaceTables, read_dimensions, read_facts
from shared.contracts.requests import DataType
from shared.domain.export.context import WorkspaceOptions
from shared.domain.window import DAY_MS, Window, resolve_window, to_ms, utc_day_of

ORG: Final = "ws-big"
#: The data ends here (a fixed instant: the bench does not read the clock).
END: Final = datetime(2026, 11, 20, 12, tzinfo=UTC)
DAYS: Final = 365
USERS, AGENTS, PROJECTS, KEYS, MODELS = 10_000, 1_000, 300, 100, 20
OPTIONS: Final = WorkspaceOptions(byok=True, user_level_data=True)
RESULTS: Final = Path(__file__).with_name("aggregates.json")
SOURCES: Final = ["WEB"] * 26 + ["MOBILE"] * 7 + ["SLACK"] * 5 + ["TEAMS"] * 4
ACTION_SETS: Final[list[list[str]]] = (
    [[]] * 60
    + [["web_search"]] * 10
    + [["canvas"]] * 6
    + [["data_analysis"]] * 5
    + [["code_interpreter"]] * 4
    + [["canvas", "web_search"]] * 2
    + [["Slack_send_message"]] * 2
    + [["Hubspot_create_contact"]]
    + [["code_interpreter", "data_analysis"]]
    + [["canvas"]]
    + [["Hubspot_create_contact", "Slack_send_message", "web_search"]]
)


def _zipf(rng: np.random.Generator, count: int, size: int, exponent: float) -> np.ndarray:
    weights = 1.0 / np.arange(1, count + 1) ** exponent
    return rng.choice(count, size=size, p=weights / weights.sum())


def _ids(prefix: str, numbers: np.ndarray, width: int) -> pa.Array:
    text = pc.utf8_lpad(pa.array(numbers).cast(pa.string()), width, "0")
    return pc.binary_join_element_wise(prefix, text, "")


def _masked(array: pa.Array, keep: np.ndarray) -> pa.Array:
    return pc.if_else(pa.array(keep), array, pa.nulls(len(array), array.type))


def generate(count: int, seed: int = 12) -> pa.Table:
    """``count`` FACTS rows of one workspace over ``DAYS`` days before ``END``."""
    rng = np.random.default_rng(seed)
    end_ms = to_ms(END)
    occurred = np.sort(rng.integers(end_ms - DAYS * DAY_MS, end_ms, size=count))
    roll = rng.random(count)
    kind = np.where(roll < 0.08, 1, np.where(roll < 0.115, 2, 0))  # api, payg, message
    message, api, payg = kind == 0, kind == 1, kind == 2
    user = _zipf(rng, USERS, count, 0.8)
    payg_users = rng.choice(USERS, size=USERS // 5, replace=False)
    user = np.where(payg, payg_users[rng.integers(0, len(payg_users), count)], user)
    roll = rng.random(count)
    agent = np.where(message & (roll < 0.27), _zipf(rng, AGENTS, count, 1.1), -1)
    project = np.where(
        message & (roll >= 0.25) & (roll < 0.39), _zipf(rng, PROJECTS, count, 1.1), -1
    )
    preferred = rng.integers(0, MODELS, AGENTS)
    model = _zipf(rng, MODELS, count, 1.3)
    model = np.where((agent >= 0) & (rng.random(count) < 0.7), preferred[agent], model)
    byok = rng.random(count) < 0.6
    deployment = np.where(byok, rng.integers(0, 2, count), -1)
    source = np.array(SOURCES)[rng.integers(0, len(SOURCES), count)]
    action_pick = rng.integers(0, len(ACTION_SETS), count)
    conversation = rng.integers(0, 6, count)
    prompt = np.minimum(180_000, np.maximum(1, rng.lognormal(np.log(1200), 1.0, count))).astype(
        np.int64
    )
    completion = np.minimum(16_000, np.maximum(1, rng.lognormal(np.log(350), 0.9, count))).astype(
        np.int64
    )
    cached = np.where(
        rng.random(count) < 0.4, (prompt * rng.random(count) * 0.9).astype(np.int64), 0
    )
    creation = np.where(
        rng.random(count) < 0.15, ((prompt - cached) * rng.random(count) * 0.3).astype(np.int64), 0
    )
    cost = (prompt * (model + 1) * 150 + completion * (model + 1) * 600).astype(np.int64)
    requests = np.where(rng.random(count) < 0.8, 1, rng.integers(2, 6, count))
    users = _ids("user-", user, 5)
    models = _ids("model-", model, 2)
    actions = pa.array(
        [ACTION_SETS[pick] for pick in range(len(ACTION_SETS))], pa.list_(pa.string())
    )
    columns: dict[str, Any] = {
        "org_id": pa.array(np.full(count, ORG)),
        "day": pa.array(occurred // DAY_MS, pa.int32()).cast(pa.date32()),
        "kind": pa.array(np.array(["message", "api_request", "payg"])[kind]),
        "event_id": _ids("e-", np.arange(count), 8),
        "occurred_ms": pa.array(occurred),
        "user_id": _masked(users, ~api),
        "api_key_id": _masked(_ids("key-", _zipf(rng, KEYS, count, 1.0), 3), api),
        "assistant_id": _masked(_ids("agent-", np.maximum(agent, 0), 4), agent >= 0),
        "project_id": _masked(_ids("project-", np.maximum(project, 0), 3), project >= 0),
        "conversation_id": _masked(
            pc.binary_join_element_wise(
                "conv-",
                users,
                "-",
                pa.array(agent + 1).cast(pa.string()),
                "-",
                pa.array(conversation).cast(pa.string()),
                "",
            ),
            message & (rng.random(count) >= 0.05),
        ),
        "model": _masked(models, ~payg),
        "provider": _masked(_ids("provider-", model % 4, 1), ~payg),
        "byok": _masked(pa.array(byok), ~payg),
        "deployment": _masked(
            pc.if_else(
                pa.array(deployment >= 0),
                pc.binary_join_element_wise(
                    "eu-", models, "-", pa.array(deployment).cast(pa.string()), ""
                ),
                pa.array(np.full(count, "")),
            ),
            ~payg,
        ),
        "source": _masked(pa.array(np.where(api, "API", source)), ~payg),
        "actions": _masked(actions.take(pa.array(action_pick)), message),
        "requests": _masked(pa.array(requests), ~payg),
        "prompt_tokens": _masked(pa.array(prompt), ~payg),
        "completion_tokens": _masked(pa.array(completion), ~payg),
        "cached_tokens": _masked(pa.array(cached), ~payg),
        "creation_tokens": _masked(pa.array(creation), ~payg),
        "cost_nano": _masked(pa.array(cost), ~payg),
        "amount_nano": _masked(pa.array(rng.integers(1, 4_000_000_000, count)), payg),
    }
    return pa.table(columns).cast(FACTS)


def dimensions() -> pa.Table:
    start = to_ms(END) - (DAYS + 30) * DAY_MS
    versions: list[DimensionVersion] = [
        ("settings", ORG, start, "d-settings", {"byok": True, "user_level_data": True})
    ]
    for number in range(USERS):
        attributes = {
            "name": f"User {number}",
            "email": f"user{number}@example.org",
            "role": "member",
            "department": f"dept-{number % 40}",
            "payg_limit": 50 * 10**9 if number % 5 == 0 else None,
        }
        versions.append(("users", f"user-{number:05d}", start + number, f"d-u{number}", attributes))
    for kind, prefix, width, total in (
        ("agents", "agent-", 4, AGENTS),
        ("projects", "project-", 3, PROJECTS),
        ("api_keys", "key-", 3, KEYS),
    ):
        for number in range(total):
            entity = f"{prefix}{number:0{width}d}"
            versions.append((kind, entity, start, f"d-{entity}", {"name": entity}))
    return dimensions_table(ORG, versions)


def export_window() -> Window:
    """The 12-month users export as a user in India asks it, the day after the data."""
    return resolve_window("2025-11-21", "Asia/Kolkata", "2026-11-20", "Asia/Kolkata", now=END)


def rss_mb() -> float:
    """This process's peak RSS (VmHWM: unlike ru_maxrss, not inherited over fork+exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def _export_once(store: TableStore, path: str) -> dict[str, Any]:
    window, data_type = export_window(), DataType.USERS
    started = time.monotonic()
    dims = await read_dimensions(store, ORG)
    if path == "raw":  # as the exporter does today
        first, last = utc_day_of(window.start_ms), utc_day_of(window.last_ms)
        facts = await read_facts(store, ORG, first, last, FACTS_COLUMNS[data_type])
        read = time.monotonic()
        con, rows = connect(facts, dims), facts.num_rows
        run: Callable[..., QueryExport] = export_csv
    else:
        found = await aggregates.read_window(
            store, ORG, window.start_ms, window.end_ms, aggregates.SHAPES[data_type]
        )
        read = time.monotonic()
        con, rows = aggregates.connect(found.rows, dims), found.rows.num_rows
        run = aggregates.export_csv
    result = run(
        con,
        data_type,
        org_id=ORG,
        group_by=None,
        start_ms=window.start_ms,
        end_ms=window.end_ms,
        period_start=window.period_start().isoformat(),
        period_end=window.period_end().isoformat(),
        options=OPTIONS,
    )
    con.close()
    finished = time.monotonic()
    return {
        "seconds": round(finished - started, 3),
        "read_s": round(read - started, 3),
        "rows_read": rows,
        "csv_rows": result.rows,
        "csv_sha256_prefix": __import__("hashlib").sha256(result.data).hexdigest()[:16],
    }


def export_child(directory: str, path: str, runs: int) -> None:
    store = TableStore.local(directory)
    found = [asyncio.run(_export_once(store, path)) for _ in range(runs)]
    print(json.dumps({"path": path, "runs": found, "peak_rss_mb": round(rss_mb(), 1)}))


def _child(directory: str, path: str, runs: int) -> dict[str, Any]:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.aggregates",
            "--child",
            path,
            "--dir",
            directory,
            "--runs",
            str(runs),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def cardinalities(facts: pa.Table) -> dict[str, int]:
    """Rows of the brief's first design (every key column in one grouping) and of the
    shapes as built, per day and per month, for the whole dataset."""
    con = duckdb.connect()
    con.register("facts", facts)
    keys = (
        "kind, user_id, api_key_id, assistant_id, project_id, model, provider, byok, "
        "deployment, source, actions"
    )
    found = {}
    for name, period in (("day", "day"), ("month", "date_trunc('month', day)")):
        query = f"SELECT count(*) FROM (SELECT {period}, {keys} FROM facts GROUP BY ALL)"  # noqa: S608
        found[f"all_keys_rows_per_{name}"] = int(con.sql(query).fetchall()[0][0])
    con.close()
    return found


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--facts", type=int, default=5_000_000)
    parser.add_argument("--dir", default=str(Path(tempfile.gettempdir(), "bench-aggregates")))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--child", choices=["raw", "agg"])
    args = parser.parse_args()
    if args.child:
        export_child(args.dir, args.child, args.runs)
        return
    store = TableStore.local(args.dir)
    if Path(args.dir).exists():
        raise SystemExit(f"{args.dir} exists: remove it or pass another --dir")
    started = time.monotonic()
    facts = generate(args.facts)
    generated_s = time.monotonic() - started
    shapes_of_design_a = cardinalities(facts)

    async def load(facts: pa.Table) -> None:
        tables = await WorkspaceTables.open(store, ORG)
        months = pc.strftime(facts.column("day"), "%Y-%m")
        for position, month in enumerate(sorted(set(months.to_pylist())), start=1):
            rows = facts.filter(pc.equal(months, month))
            dims = dimensions() if position == 1 else dimensions().schema.empty_table()
            await tables.append(rows, dims, {("usage.events", 0): position})
            await tables.refresh()

    started = time.monotonic()
    asyncio.run(load(facts))
    loaded_s = time.monotonic() - started
    days = len(set(facts.column("day").to_pylist()))
    del facts
    now_ms = to_ms(END + timedelta(hours=1))

    raw = _child(args.dir, "raw", args.runs)
    full = aggregates.refresh_aggregates_sync(store, ORG, now_ms=now_ms)
    noop = aggregates.refresh_aggregates_sync(store, ORG, now_ms=now_ms)
    agg = _child(args.dir, "agg", args.runs)
    # A late event on a day of a finished month: one day and one month to rebuild.
    late = generate(200, seed=99)
    late_day = date(2026, 3, 10)
    late = (
        late.set_column(
            late.schema.get_field_index("day"), "day", pa.array([late_day] * late.num_rows)
        )
        .set_column(
            late.schema.get_field_index("occurred_ms"),
            "occurred_ms",
            pa.array(
                [(late_day - date(1970, 1, 1)).days * DAY_MS + n for n in range(late.num_rows)]
            ),
        )
        .set_column(
            late.schema.get_field_index("event_id"),
            "event_id",
            pa.array([f"late-{n}" for n in range(late.num_rows)]),
        )
    )

    async def append_late() -> None:
        tables = await WorkspaceTables.open(store, ORG)
        await tables.append(
            late.cast(FACTS), dimensions().schema.empty_table(), {("usage.events", 0): 99}
        )

    asyncio.run(append_late())
    stale = _child(args.dir, "agg", 1)
    catch_up = aggregates.refresh_aggregates_sync(store, ORG, now_ms=now_ms)
    raw_after = _child(args.dir, "raw", 1)
    agg_after = _child(args.dir, "agg", 1)
    same = {
        "fresh_equals_raw": raw["runs"][0]["csv_sha256_prefix"]
        == agg["runs"][0]["csv_sha256_prefix"],
        "stale_equals_raw_after": stale["runs"][0]["csv_sha256_prefix"]
        == raw_after["runs"][0]["csv_sha256_prefix"],
        "caught_up_equals_raw_after": agg_after["runs"][0]["csv_sha256_prefix"]
        == raw_after["runs"][0]["csv_sha256_prefix"],
    }
    results = {
        "dataset": {
            "facts": args.facts,
            "users": USERS,
            "days": days,
            "generated_s": round(generated_s, 1),
            "loaded_s": round(loaded_s, 1),
            "machine_cpus": os.cpu_count(),
        },
        "design": {
            **shapes_of_design_a,
            "shape_rows_daily": full.daily_rows_written,
            "shape_rows_monthly": full.monthly_rows_written,
        },
        "users_12_months": {
            "raw": raw,
            "aggregates_fresh": agg,
            "aggregates_one_stale_day": stale,
            "raw_after_late": raw_after,
            "aggregates_caught_up": agg_after,
        },
        "identical_csv": same,
        "builder": {
            "full": _refresh(full),
            "nothing_stale": _refresh(noop),
            "one_late_day": _refresh(catch_up),
            "seconds_per_day_full_build": round(full.seconds / max(1, full.days_built), 4),
        },
    }
    RESULTS.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(results, indent=2))


def _refresh(found: aggregates.Refresh) -> dict[str, Any]:
    return {
        "seconds": round(found.seconds, 3),
        "days_built": found.days_built,
        "months_built": found.months_built,
        "facts_rows_read": found.facts_rows_read,
        "daily_rows_written": found.daily_rows_written,
        "monthly_rows_written": found.monthly_rows_written,
    }


if __name__ == "__main__":
    main()
