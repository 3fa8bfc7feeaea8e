"""Rich tables of a benchmark section (the same dict that goes into results.json)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table


def _fmt(value: Any, digits: int = 0) -> str:
    if value is None:
        return "-"
    if isinstance(value, float | int):
        return f"{value:,.{digits}f}"
    return str(value)


def _mmm(summary: dict[str, Any] | None, digits: int = 0) -> str:
    """``median (min-max)``."""
    if not summary:
        return "-"
    return (
        f"{_fmt(summary['median'], digits)} "
        f"({_fmt(summary['min'], digits)}–{_fmt(summary['max'], digits)})"
    )


def targets_table(title: str, verdicts: list[dict[str, Any]]) -> Table:
    table = Table(title=title)
    for column in ("target", "bound", "measured", "result"):
        table.add_column(column)
    for verdict in verdicts:
        passed = verdict["passed"]
        mark = "[green]pass" if passed else ("[yellow]n/a" if passed is None else "[red]FAIL")
        value = verdict["value"]
        measured = "-" if value is None else f"{value:,.2f}{verdict['unit']}"
        note = f" ({verdict['note']})" if verdict.get("note") else ""
        table.add_row(str(verdict["target"]), str(verdict["bound"]), measured + note, mark)
    return table


def print_ingest(section: dict[str, Any], console: Console) -> None:
    for name, workload in section["workloads"].items():
        _print_workload(name, workload, section["config"]["runs"], console)


def _print_workload(name: str, section: dict[str, Any], runs: int, console: Console) -> None:
    workload = section["workload"]
    table = Table(
        title=f"ingest, {name}: {workload['records']:,} records, {runs} runs — median (min–max)"
    )
    for column in (
        "consumer", "events/s", "service ÷ it", "consume s", "wall s (incl. start/join)",
        "peak RSS MB",
    ):  # fmt: skip
        table.add_column(column, justify="right" if column != "consumer" else "left")
    ratios = section.get("ratios", {})
    for consumer_name, consumer in section["consumers"].items():
        if "events_per_s" not in consumer:
            error = (consumer["errors"] or ["no run"])[0].splitlines()[0][:80]
            table.add_row(consumer_name, f"[red]failed: {error}", "-", "-", "-", "-")
            continue
        ratio = ratios.get(consumer_name)
        table.add_row(
            consumer_name,
            _mmm(consumer["events_per_s"]),
            "" if consumer_name not in ratios else _fmt(ratio, 2),
            _mmm(consumer["consume_s"], 1),
            _mmm(consumer["wall_s"], 1),
            _mmm(consumer.get("peak_rss_mb")),
        )
    console.print(table)
    console.print(targets_table(f"ingest targets, {name}", section["targets"]))
    profile = section.get("profile")
    if profile and "categories" in profile:
        shares = Table(title=f"ingest service CPU profile, {name} (py-spy, busy samples)")
        shares.add_column("where")
        shares.add_column("share", justify="right")
        for where, share in profile["categories"].items():
            shares.add_row(where, f"{share:.0%}")
        console.print(shares)
    elif profile:
        console.print(f"[yellow]profile: {profile.get('error')}")


def print_export(section: dict[str, Any], console: Console) -> None:
    table = Table(title=f"exports ({section['config']['runs']} runs each) — seconds end to end")
    for column in ("export", "users", "p50 s", "p95 s", "min–max s", "rows", "MB"):
        table.add_column(column, justify="left" if column == "export" else "right")
    peer: dict[str, Any] | None = section.get("olap_peer")
    items: list[dict[str, Any]] = [*section["exports"], *([peer] if peer else [])]
    for item in items:
        if item.get("error"):
            table.add_row(item["name"], _fmt(item.get("users")), f"[red]{item['error'][:60]}")
            continue
        table.add_row(
            f"[cyan]{item['name']}" if item is peer else item["name"],
            _fmt(item.get("users")),
            _fmt(item["p50_s"], 2),
            _fmt(item["p95_s"], 2),
            f"{_fmt(item['seconds']['min'], 2)}–{_fmt(item['seconds']['max'], 2)}",
            _fmt(item["rows"]),
            _fmt(item["bytes"] / 1e6, 1),
        )
    console.print(table)
    console.print(
        f"exporter peak RSS: {_fmt(section.get('exporter_peak_rss_mb'))} MB; "
        f"ingest of the dataset: {_fmt(section['dataset'].get('events_per_s'))} events/s, "
        f"peak RSS {_fmt(section['dataset'].get('ingest_peak_rss_mb'))} MB; "
        f"compactor after it: {_fmt(section['dataset'].get('compactor_settle_s'))} s, "
        f"peak RSS {_fmt(section['dataset'].get('compactor_peak_rss_mb'))} MB; "
        f"users 12 months, ours ÷ OLAP peer (p50): {_fmt(section.get('ours_over_peer_p50'), 2)}"
    )
    console.print(targets_table("export targets", section["targets"]))


def print_replay(section: dict[str, Any], console: Console) -> None:
    table = Table(title="replay")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for label, key, digits in (
        ("records read", "records_read", 0),
        ("days rewritten", "days_rewritten", 0),
        ("seconds", "seconds", 1),
        ("events/s (records read / seconds)", "events_per_s", 0),
    ):
        table.add_row(label, _fmt(section.get(key), digits))
    table.add_row("users export unchanged (sha256)", str(section.get("export_unchanged")))
    console.print(table)
