"""The repository carries everything it refers to: every relative link in a Markdown
file resolves to a file or directory inside the repository, and no file names the
specification folder that lived next to the first checkout."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SKIPPED_DIRS = {".git", ".hypothesis", ".mypy_cache", ".pytest_cache", ".ruff_cache", "exports"}
LINK = re.compile(r"\]\(([^)\s]+)\)")
TEXT_SUFFIXES = {".md", ".py", ".toml", ".yml", ".yaml", ".json", ".sh", ".txt", ".cfg"}
# Built from parts so this file does not name them itself.
OUTSIDE = ("../" + "shared", "/work/" + "shared", "shared/" + "CONTRACT.md", "shared/" + "seeds")


def repository_files(suffixes: set[str]) -> list[Path]:
    found = []
    for path in ROOT.rglob("*"):
        parts = path.relative_to(ROOT).parts
        if any(part in SKIPPED_DIRS or part.startswith(".venv") for part in parts):
            continue
        if path.is_file() and path.suffix in suffixes:
            found.append(path)
    return sorted(found)


def broken_links(path: Path, root: Path = ROOT) -> list[str]:
    """Relative link targets of a Markdown page that leave ``root`` or do not exist."""
    text = re.sub(r"`[^`\n]*`", "", path.read_text(encoding="utf-8"))  # code is not a link
    broken = []
    for target in LINK.findall(text):
        if re.match(r"[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue  # a URL or an anchor in the same page
        resolved = (path.parent / target.split("#", 1)[0]).resolve()
        if not resolved.is_relative_to(root) or not resolved.exists():
            broken.append(target)
    return broken


def test_the_check_sees_a_broken_and_an_outside_link(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    (root / "docs").mkdir(parents=True)
    (tmp_path / "outside.md").write_text("x")
    (root / "docs" / "api.md").write_text("x")
    page = root / "docs" / "page.md"
    page.write_text(
        "[a](../../outside.md) [b](missing.md) [c](api.md#x) [d](https://x.test) [e](#top)\n"
        "`[f](../../outside.md)` [g](../docs/api.md)\n"
    )
    assert broken_links(page, root) == ["../../outside.md", "missing.md"]


def test_every_markdown_link_stays_inside_the_repository() -> None:
    pages = repository_files({".md"})
    assert len(pages) > 5
    assert {str(p.relative_to(ROOT)): broken_links(p) for p in pages if broken_links(p)} == {}


def test_no_file_names_the_old_specification_folder() -> None:
    files = repository_files(TEXT_SUFFIXES)
    assert len(files) > 100
    mentions = {
        str(path.relative_to(ROOT)): [name for name in OUTSIDE if name in text]
        for path in files
        if (text := path.read_text(encoding="utf-8", errors="replace"))
        and any(name in text for name in OUTSIDE)
    }
    assert mentions == {}
