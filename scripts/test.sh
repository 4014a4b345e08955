#!/usr/bin/env bash
# Install everything the tests need (Dovecot, the virtualenv) and run the whole suite.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -k imap -x`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --with-test-servers
.venv/bin/ruff check .
.venv/bin/mypy
exec .venv/bin/python -m pytest "$@"
