"""``usage-export contracts write|check``: JSON Schemas, the AsyncAPI and the OpenAPI document.

``write`` regenerates ``docs/contracts`` from the pydantic models; ``check`` exits 1 when
the files there are not what ``write`` would produce (the unit test does the same).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from services.ops.contract_docs import DEFAULT_DIR, REGENERATE, stale_documents, write_documents


def register(subparsers: Any) -> None:
    # One add_argument per option, spelled out: the shapes repeat across commands by design.
    parser = subparsers.add_parser(
        "contracts",
        help="generate the JSON Schemas and AsyncAPI document of every message",
        description="The contract as documents, generated from the pydantic models in "
        "shared/contracts: JSON Schema 2020-12 of every message and an AsyncAPI 3.0 "
        "description of the five topics. Topic names are the defaults, not the environment.",
    )
    actions = parser.add_subparsers(dest="contracts_action", metavar="ACTION", required=True)
    write = actions.add_parser("write", help="(re)generate the documents")
    write.add_argument("--out", type=Path, default=DEFAULT_DIR, help=f"default {DEFAULT_DIR}")
    write.set_defaults(func=_write)
    check = actions.add_parser("check", help="exit 1 when the documents are out of date")
    check.add_argument("--dir", type=Path, default=DEFAULT_DIR, help=f"default {DEFAULT_DIR}")
    check.set_defaults(func=_check)


def _write(args: argparse.Namespace) -> int:
    written = write_documents(args.out)
    print(f"wrote {len(written)} documents under {args.out}")
    return 0


def _check(args: argparse.Namespace) -> int:
    stale = stale_documents(args.dir)
    if not stale:
        print(f"{args.dir}: up to date")
        return 0
    print(f"{args.dir}: out of date, run `{REGENERATE}`:", file=sys.stderr)
    for path in stale:
        print(f"  {path}", file=sys.stderr)
    return 1
