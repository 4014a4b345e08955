#!/usr/bin/env bash
# Run the daemon on the embedded default: SQLite and a local Maildir demo mailbox.
# Copies the sample messages into the Maildir's new/ folder, then runs in the foreground
# (Ctrl+C stops it). Status: http://127.0.0.1:8025/status
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
mkdir -p var/demo/Maildir/new var/demo/Maildir/cur var/demo/Maildir/tmp
for eml in config/demo/messages/*.eml; do
    name=$(basename "$eml" .eml)
    if [ ! -e "var/demo/Maildir/cur/$name.demo:2,S" ]; then
        cp "$eml" "var/demo/Maildir/tmp/$name.demo" && mv "var/demo/Maildir/tmp/$name.demo" "var/demo/Maildir/new/$name.demo"
    fi
done
echo "postroom demo: watching var/demo/Maildir, store var/demo/postroom.db, http://127.0.0.1:8025/status"
exec .venv/bin/postroom run --config config/demo/postroom.toml
