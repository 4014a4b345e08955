#!/usr/bin/env bash
# Run every benchmark with its default settings, one after the other, and print the
# figures (about 10 minutes on a 2-vCPU box). Each benchmark starts what it needs on
# 127.0.0.1 (its own Dovecot, the daemon) and removes it afterwards.
#
#   benchmarks/run_all.sh            the defaults recorded in benchmarks/README.md
#   benchmarks/run_all.sh --quick    tiny sizes, to check that everything runs (~30 s)
#
# PYTHON overrides the interpreter (default: .venv/bin/python in the repository).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"

if [[ "${1:-}" == "--quick" ]]; then
    "$PY" -m benchmarks.ingest --messages 200
    "$PY" -m benchmarks.latency --messages 5
    "$PY" -m benchmarks.scale --accounts 20 --settle 1 --idle-seconds 2
    "$PY" -m benchmarks.webhook --seconds 2
    "$PY" -m benchmarks.hostile --scale 0.05
    "$PY" -m benchmarks.nodes --accounts 3 --messages 10 --lease 6 --renew 2
else
    "$PY" -m benchmarks.ingest --messages 10000
    "$PY" -m benchmarks.latency --messages 100
    "$PY" -m benchmarks.scale --accounts 1000
    "$PY" -m benchmarks.webhook --rate 500 --seconds 10
    "$PY" -m benchmarks.hostile
    "$PY" -m benchmarks.nodes --accounts 12 --messages 100
fi
