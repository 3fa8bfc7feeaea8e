#!/usr/bin/env bash
# Run the project locally with nothing but Python: a .venv with the embedded broker and
# object store, then `usage-export demo` (the whole pipeline end to end) when this
# version has it, else `usage-export up`. Extra arguments go to that command.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3 || true)}"
if [[ -z "$PYTHON" ]] || ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
    echo "scripts/run.sh: needs Python 3.11 (set PYTHON=/path/to/python3.11)" >&2
    exit 2
fi

if [[ ! -x .venv/bin/python ]]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[embedded]"

commands="$(.venv/bin/usage-export --help)"
if grep -qE '^\s+demo\b' <<<"$commands"; then
    exec .venv/bin/usage-export demo "$@"
fi
exec .venv/bin/usage-export up "$@"
