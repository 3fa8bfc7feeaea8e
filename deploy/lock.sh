#!/usr/bin/env bash
# Regenerates the image's lock files from pyproject.toml (run from anywhere, after changing
# the project's dependencies or its build-system requirement; commit both files):
#   deploy/requirements.lock        the runtime dependencies, installed in the image's venv
#   deploy/build-requirements.lock  the build backend that turns the project into a wheel
# Exact versions with the hashes of every file of each version, so the same lock installs
# on amd64 and arm64. Needs uv (pip install uv). Add --upgrade to move to newer versions.
set -euo pipefail
cd "$(dirname "$0")/.."
compile() {
    uv pip compile --quiet --generate-hashes --python-version 3.11 --python-platform linux \
        --custom-compile-command "deploy/lock.sh" "$@"
}
compile pyproject.toml -o deploy/requirements.lock "$@"
python3 -c 'import tomllib; print(*tomllib.load(open("pyproject.toml", "rb"))["build-system"]["requires"], sep="\n")' \
    | compile - -o deploy/build-requirements.lock "$@"
