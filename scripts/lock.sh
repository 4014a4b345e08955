#!/usr/bin/env bash
# Refresh requirements.lock, the exact versions (with hashes) that scripts/setup.sh and CI
# install: run it after changing the dependencies in pyproject.toml, and commit both.
#
#   bash scripts/lock.sh              keep every pin that still fits, add what is new
#   bash scripts/lock.sh --upgrade    move every package to its newest fitting release
#   bash scripts/lock.sh --upgrade-package httpx    only that one
#
# The lock is universal (markers for Linux, Windows and macOS; Python 3.11 and newer) and
# covers the application and its [test] extra. The tool (uv, pinned) lives in .venv-lock/,
# apart from the application's virtualenv.
set -euo pipefail
cd "$(dirname "$0")/.."
uv_version=0.13.8
tool=.venv-lock/bin/uv
if [ ! -x "$tool" ] || [ "$("$tool" --version | cut -d' ' -f2)" != "$uv_version" ]; then
    "${PYTHON:-python3}" -m venv .venv-lock
    .venv-lock/bin/python -m pip install -q "uv==$uv_version"
fi
exec "$tool" pip compile pyproject.toml --extra test --universal --python-version 3.11 \
    --generate-hashes --custom-compile-command "bash scripts/lock.sh" \
    --output-file requirements.lock --quiet "$@"
