"""``python -m bench.engines``: the 12-month users export computed by candidate engines.

One synthetic workspace (default 1,000,000 messages from 10,000 users over twelve months,
20 models, 40 % of messages to one of 1,000 agents, 30 % in one of 300 projects, some
with actions, one upsert per user) as a ``FACTS`` / ``DIMENSIONS`` Arrow table pair, and,
in one run, best of 3 each:

- ``duckdb query``: ``shared/columnar/queries/users.sql``, every cell formatted;
- ``duckdb csv``: the same plus the Arrow-to-CSV step (``export_file``): the file's bytes;
- ``polars lazy``: the same figures (sums, distinct counts, four count maps as sorted
  lists of structs, four ranks, attributes as of the end), unformatted;
- ``datafusion sql``: per-user sums, distinct counts and ranks only (no count maps,
  no attributes): a lower bound of what it would take.

Prints a table and writes ``bench/engines.json``. No figure is asserted anywhere.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from shared.columnar.queries.engine import connect, export_file, query_rows
from shared.columnar.schema import DIMENSIONS, FACTS
from shared.contracts.requests import DataType
from shared.domain.export.context import WorkspaceOptions

DEFAULT_PATH = Path(__file__).with_name("engines.json")
DAY_MS = 86_400_000
START_MS = 20_000 * DAY_MS
END_MS = START_MS + 365 * DAY_MS


def synthetic_tables(messages: int, users: int, seed: int = 1) -> tuple[pa.Table, pa.Table]:
    rng = np.random.default_rng(seed)
    occurred = np.sort(rng.integers(START_MS, END_MS, messages))
    user = rng.zipf(1.3, messages) % users
    agent = np.where(rng.random(messages) < 0.4, rng.integers(0, 1000, messages), -1)
    project = np.where(rng.random(messages) < 0.3, rng.integers(0, 300, messages), -1)
    action = np.where(rng.random(messages) < 0.2, rng.integers(0, 5, messages), -1)

    def names(prefix: str, values: np.ndarray[Any, Any]) -> pa.Array:
        return pa.array([None if v < 0 else f"{prefix}-{v:05d}" for v in values.tolist()])

    actions = pa.array([[] if a < 0 else [f"action-{a}"] for a in action.tolist()])
    facts = pa.table(
        {
            "org_id": pa.array(["ws-1"] * messages),
            "day": pa.array((occurred // DAY_MS).astype(np.int32), pa.int32()).cast(pa.date32()),
            "kind": pa.array(["message"] * messages),
            "event_id": pa.array([f"e-{n}" for n in range(messages)]),
            "occurred_ms": occurred,
            "user_id": names("user", user),
            "api_key_id": pa.nulls(messages, pa.string()),
            "assistant_id": names("asst", agent),
            "project_id": names("proj", project),
            "conversation_id": names("conv", rng.integers(0, 50_000, messages)),
            "model": names("model", rng.integers(0, 20, messages)),
            "provider": pa.array(["openai"] * messages),
            "byok": pa.array(np.zeros(messages, dtype=bool)),
            "deployment": pa.array([""] * messages),
            "source": pa.array(["WEB"] * messages),
            "actions": actions,
            "requests": np.ones(messages, dtype=np.int64),
            "prompt_tokens": rng.integers(10, 5000, messages),
            "completion_tokens": rng.integers(10, 2000, messages),
            "cached_tokens": rng.integers(0, 10, messages),
            "creation_tokens": rng.integers(0, 10, messages),
            "cost_nano": rng.integers(1000, 10**7, messages),
            "amount_nano": pa.nulls(messages, pa.int64()),
        },
        schema=FACTS,
    )
    ids = [f"user-{n:05d}" for n in range(users)]
    dimensions = pa.table(
        {
            "org_id": ["ws-1"] * users,
            "kind": ["users"] * users,
            "entity_id": ids,
            "occurred_ms": [START_MS - DAY_MS] * users,
            "event_id": [f"d-{n}" for n in range(users)],
            "deleted": [False] * users,
            "attributes": [
                json.dumps({"name": f"Name {n}", "email": f"u{n}@example.com", "payg_limit": None})
                for n in range(users)
            ],
        },
        schema=DIMENSIONS,
    )
    return facts, dimensions


def duckdb_runs(facts: pa.Table, dimensions: pa.Table) -> dict[str, Callable[[], int]]:
    con = connect(facts, dimensions)
    con.execute("SET threads = 2")

    def query() -> int:
        rows = query_rows(con, DataType.USERS, group_by=None, start_ms=START_MS, end_ms=END_MS)
        return int(rows.num_rows)

    def csv() -> int:
        return export_file(
            con, DataType.USERS, org_id="ws-1", group_by=None, start_ms=START_MS,
            end_ms=END_MS, period_start="p", period_end="p",
            options=WorkspaceOptions(byok=True),
        ).rows  # fmt: skip

    return {"duckdb query": query, "duckdb csv": csv}


def polars_run(facts: pa.Table, dimensions: pa.Table) -> Callable[[], int]:
    import polars as pl

    lf = pl.from_arrow(facts).lazy()  # type: ignore[union-attr]
    dims = pl.from_arrow(dimensions).lazy()  # type: ignore[union-attr]

    def count_map(frame: pl.LazyFrame, key: str, name: str) -> pl.LazyFrame:
        return (
            frame.filter(pl.col(key).is_not_null())
            .group_by("user_id", key)
            .agg(pl.len().alias("n"))
            .sort(key)
            .group_by("user_id")
            .agg(pl.struct(key, "n").alias(name))
        )

    def run() -> int:
        w = lf.filter(
            (pl.col("occurred_ms") >= START_MS)
            & (pl.col("occurred_ms") < END_MS)
            & (pl.col("kind") == "message")
        )
        stats = w.group_by("user_id").agg(
            pl.len().alias("total"),
            (pl.col("assistant_id").is_null() & pl.col("project_id").is_null()).sum().alias("chat"),
            pl.col("assistant_id").count().alias("assistants"),
            pl.col("project_id").count().alias("projects"),
            pl.col("assistant_id").drop_nulls().n_unique().alias("assistants_messaged"),
            pl.col("project_id").drop_nulls().n_unique().alias("projects_messaged"),
            (pl.col("actions").list.len() > 0).sum().alias("action_messages"),
            pl.col("prompt_tokens").sum(),
            pl.col("completion_tokens").sum(),
            pl.col("cached_tokens").sum(),
            pl.col("creation_tokens").sum(),
            pl.col("cost_nano").sum(),
        )
        users = (
            dims.filter((pl.col("kind") == "users") & (pl.col("occurred_ms") < END_MS))
            .sort("occurred_ms", "event_id")
            .group_by("entity_id")
            .agg(pl.col("attributes").last(), pl.col("deleted").last())
            .with_columns(
                pl.col("attributes").str.json_path_match("$.name").alias("name"),
                pl.col("attributes").str.json_path_match("$.email").alias("email"),
            )
            .rename({"entity_id": "user_id"})
        )
        actions = w.select("user_id", "actions").explode("actions").rename({"actions": "action"})
        result = (
            pl.concat([users.filter(~pl.col("deleted")).select("user_id"), stats.select("user_id")])
            .unique()
            .join(stats, on="user_id", how="left")
            .join(users, on="user_id", how="left")
            .join(count_map(w, "assistant_id", "by_assistant"), on="user_id", how="left")
            .join(count_map(w, "project_id", "by_project"), on="user_id", how="left")
            .join(count_map(w, "model", "by_model"), on="user_id", how="left")
            .join(count_map(actions, "action", "by_action"), on="user_id", how="left")
            .with_columns(
                pl.col(c).fill_null(0).rank("min", descending=True).alias(f"{c}_rank")
                for c in ("total", "chat", "assistants", "projects")
            )
            .sort(["total", "user_id"], descending=[True, False], nulls_last=True)
            .collect()
        )
        return result.height

    return run


def datafusion_run(facts: pa.Table) -> Callable[[], int]:
    import datafusion

    ctx = datafusion.SessionContext()
    ctx.register_record_batches("facts", [facts.to_batches()])
    sql = f"""
        SELECT user_id, count(*) AS total,
            sum(CASE WHEN assistant_id IS NULL AND project_id IS NULL THEN 1 ELSE 0 END) AS chat,
            count(assistant_id) AS assistants, count(project_id) AS projects,
            count(DISTINCT assistant_id), count(DISTINCT project_id),
            sum(prompt_tokens), sum(completion_tokens), sum(cached_tokens),
            sum(creation_tokens), sum(cost_nano),
            rank() OVER (ORDER BY count(*) DESC) AS total_rank
        FROM facts
        WHERE kind = 'message' AND occurred_ms >= {START_MS} AND occurred_ms < {END_MS}
        GROUP BY user_id ORDER BY total DESC, user_id
    """  # noqa: S608 - constants only

    def run() -> int:
        return int(ctx.sql(sql).to_arrow_table().num_rows)

    return run


def best_of(run: Callable[[], int], repeats: int) -> tuple[float, int]:
    best, rows = float("inf"), 0
    for _ in range(repeats):
        started = time.perf_counter()
        rows = run()
        best = min(best, time.perf_counter() - started)
    return best, rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.engines", description=__doc__)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=DEFAULT_PATH)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    facts, dimensions = synthetic_tables(args.messages, args.users)
    print(f"tables built in {time.perf_counter() - started:.1f} s: {facts.num_rows:,} facts")
    runs = duckdb_runs(facts, dimensions)
    runs["polars lazy"] = polars_run(facts, dimensions)
    runs["datafusion sql (sums, ranks only)"] = datafusion_run(facts)
    figures: dict[str, dict[str, float | int]] = {}
    for name, run in runs.items():
        seconds, rows = best_of(run, args.repeats)
        figures[name] = {"best_s": round(seconds, 4), "rows": rows}
        print(f"{name:36s} {seconds:8.3f} s  {rows:,} rows")
    result = {
        "what": f"12-month users export of one workspace, best of {args.repeats}, in one run",
        "messages": args.messages,
        "users": args.users,
        "machine": {"python": platform.python_version(), "processor": platform.machine()},
        "engines": figures,
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
