"""The demo's summary of its API call reads on an 80-column terminal (issue 15, item 5)."""

from __future__ import annotations

import io

from rich.console import Console

from services.cli.demo_api import summary_lines


def test_the_summary_fits_80_columns_and_never_splits_the_key_id() -> None:
    key_id = "0123456789abcdef"
    lines = summary_lines(
        "http://127.0.0.1:54321/export/users",
        200,
        {"data": {"recordCount": 12_345}},
        key_id=key_id,
        org_id="ws-demo-0001",
    )
    out = io.StringIO()
    console = Console(file=out, width=80, color_system=None)
    for line in lines:
        console.print(line, soft_wrap=True)
    printed = out.getvalue().splitlines()
    assert printed == lines
    assert all(len(line) <= 80 for line in printed)
    assert any(key_id in line for line in printed)
    assert "12,345 rows" in printed[0]
