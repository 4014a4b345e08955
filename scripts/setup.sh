#!/usr/bin/env bash
# Make this checkout runnable on a fresh Debian machine: system packages (for the tests:
# Dovecot), a virtualenv in .venv with postroom and its locked test dependencies.
# Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

want_system="${1:-}"
if [ "$want_system" = "--with-test-servers" ] && ! command -v dovecot >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dovecot-imapd >/dev/null
    else
        echo "setup: dovecot is missing; run as root or: sudo apt-get install dovecot-imapd" >&2
        exit 1
    fi
fi

# The status page's browser test (tests/http/test_status_page.py): headless Chromium.
if [ "$want_system" = "--with-test-servers" ] && ! command -v chromedriver >/dev/null 2>&1 \
        && [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
fi

if [ "$want_system" = "--with-test-servers" ] && [ "$(id -u)" = 0 ]; then
    # Every IDLE connection of a test Dovecot holds an inotify instance as the mail user;
    # the default of 128 per user is too few for the scale tests. Best effort.
    current=$(cat /proc/sys/fs/inotify/max_user_instances 2>/dev/null || echo 0)
    if [ "$current" -lt 8192 ]; then
        sysctl -q -w fs.inotify.max_user_instances=8192 2>/dev/null || true
    fi
fi

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
# The exact versions of requirements.lock (hashes checked), then postroom itself without
# resolving anything: two installs a week apart run the same code. After changing the
# dependencies in pyproject.toml, refresh the lock with `bash scripts/lock.sh`.
stamp=.venv/.postroom-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ requirements.lock -nt "$stamp" ]; then
    .venv/bin/python -m pip install -q --require-hashes -r requirements.lock
    .venv/bin/python -m pip install -q --no-deps -e .
    if ! .venv/bin/python -m pip check >/dev/null; then
        .venv/bin/python -m pip check >&2 || true
        echo "setup: requirements.lock does not satisfy pyproject.toml;" \
             "run: bash scripts/lock.sh" >&2
        exit 1
    fi
    touch "$stamp"
fi
