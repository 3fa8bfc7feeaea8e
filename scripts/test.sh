#!/usr/bin/env bash
# The whole check, from nothing: a fresh virtualenv with the test extra (which pulls in
# the embedded broker and object store), then lint, type-check and every test tier.
# Extra arguments go to pytest, e.g. `scripts/test.sh -m 'not integration' -x`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

VENV="${USAGE_TEST_VENV:-.venv-test}"
PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3 || true)}"
if [[ -z "$PYTHON" ]] || ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
    echo "scripts/test.sh: needs Python 3.11 (set PYTHON=/path/to/python3.11)" >&2
    exit 2
fi

echo "==> fresh virtualenv $VENV ($("$PYTHON" --version))"
rm -rf "$VENV"
"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e ".[test]"

echo "==> ruff check"
"$VENV/bin/ruff" check --extend-exclude "$VENV" .
echo "==> ruff format --check"
"$VENV/bin/ruff" format --check --extend-exclude "$VENV" .
echo "==> mypy (strict, packages from pyproject)"
"$VENV/bin/mypy"
echo "==> pytest"
"$VENV/bin/pytest" "$@"
