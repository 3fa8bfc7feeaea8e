"""``python -m tests.integration.reliability``: run the fault suite, print its table.

    python -m tests.integration.reliability                 # the full (soak) versions
    python -m tests.integration.reliability --short         # the short versions (as in CI)
    python -m tests.integration.reliability -k outage       # extra arguments go to pytest
    python -m tests.integration.reliability --print-only --markdown   # table of the last run

Each test merges its row into the results file (``reliability-results.json`` by default,
gitignored); the table is printed from that file, so rows of earlier runs that were not
run again stay in it, marked with their own result.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from tests.integration.reliability.figures import (
    DEFAULT_RESULTS,
    RESULTS_VARIABLE,
    load_results,
    render_markdown,
    render_text,
)

SUITE = Path(__file__).parent


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tests.integration.reliability",
        description="Run the reliability and security fault suite and print its figures.",
    )
    parser.add_argument("--short", action="store_true", help="the short versions (as CI)")
    parser.add_argument("--results", type=Path, default=DEFAULT_RESULTS, help="results JSON")
    parser.add_argument("--print-only", action="store_true", help="print the last results")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    return parser


def run_suite(short: bool, results: Path, extra: list[str]) -> int:
    command = [
        sys.executable,
        "-m",
        "pytest",
        str(SUITE),
        "-m",
        "not soak" if short else "soak",
        "-p",
        "no:cacheprovider",
        "-ra",
        *extra,
    ]
    env = os.environ | {RESULTS_VARIABLE: str(results.absolute())}
    return subprocess.call(command, env=env)


def print_table(results: Path, *, markdown: bool) -> None:
    rows = load_results(results)
    if not rows:
        print(f"no results in {results}")
        return
    print(render_markdown(rows) if markdown else render_text(rows))


def main(argv: list[str] | None = None) -> int:
    args, extra = build_parser().parse_known_args(argv)
    status = 0 if args.print_only else run_suite(args.short, args.results, extra)
    print_table(args.results, markdown=args.markdown)
    return status


if __name__ == "__main__":
    sys.exit(main())
