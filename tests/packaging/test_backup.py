"""``postroom backup``: an online copy of the SQLite store that opens and holds everything."""

from __future__ import annotations

import os
import sqlite3
import stat

import pytest

from daemon.backup import check_backup
from daemon.cli import main
from daemon.config import load_config
from daemon.store import open_store
from daemon.store.base import RawRecord
from tests.e2e.conftest import write_config


def table_rows(path) -> dict[str, list[tuple]]:
    conn = sqlite3.connect(path)
    try:
        tables = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        return {t: sorted(conn.execute(f'SELECT * FROM "{t}"').fetchall(), key=repr)
                for t in tables}
    finally:
        conn.close()


@pytest.fixture
def live_store(tmp_path):
    """A store with objects, a raw message, a file and an event, still open (WAL unmerged)."""
    config = write_config(tmp_path, http=False)
    store = open_store(load_config(config).daemon.store)
    with store.transaction() as tx:
        for n in range(50):
            tx.create("person", {"name": f"Person {n}", "email": f"p{n}@customers.example"})
        tx.create("helpdesk", {"subject": "Printer on fire", "status": "open"})
        tx.add_raw(RawRecord(source_key="maildir:support:1", account="support",
                             raw=b"Subject: hi\r\n\r\nbody\r\n", status="imported"))
        tx.put_file(b"%PDF-1.4 ...", "invoice.pdf", "application/pdf")
        tx.add_event("message.imported", "support", {"n": 1})
    yield config, store
    store.close()


def test_backup_of_a_running_store_opens_and_holds_every_object(live_store, tmp_path, capsys):
    config, store = live_store
    assert os.path.getsize(f"{tmp_path}/postroom.db-wal") > 0  # commits not yet merged
    target = tmp_path / "backup.db"
    assert main(["backup", str(target), "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"OK: {target} (schema ")
    assert "51 objects" in out and "1 raw_messages" in out and "integrity ok" in out
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert table_rows(target) == table_rows(tmp_path / "postroom.db")
    restored = open_store(f"sqlite:///{target}")
    try:
        with restored.transaction() as tx, store.transaction() as live:
            for limetype in ("person", "helpdesk"):
                assert [o.as_json() for o in tx.find(limetype)] == \
                    [o.as_json() for o in live.find(limetype)]
            assert tx.get_raw("maildir:support:1").raw == b"Subject: hi\r\n\r\nbody\r\n"
            assert tx.get_file(1).data == b"%PDF-1.4 ..."
    finally:
        restored.close()


def test_the_generated_key_is_copied_beside_the_backup(live_store, tmp_path):
    config, _ = live_store
    (tmp_path / "postroom.db.key").write_text("k" * 64)
    target = tmp_path / "backup.db"
    assert main(["backup", str(target), "--config", str(config)]) == 0
    key = tmp_path / "backup.db.key"
    assert key.read_text() == "k" * 64
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert check_backup(target).key_file == key


def test_an_existing_target_is_not_overwritten(live_store, tmp_path, capsys):
    config, _ = live_store
    target = tmp_path / "backup.db"
    target.write_bytes(b"precious")
    assert main(["backup", str(target), "--config", str(config)]) == 1
    assert "not overwritten" in capsys.readouterr().err
    assert target.read_bytes() == b"precious"


def test_check_refuses_a_damaged_backup(live_store, tmp_path, capsys):
    config, _ = live_store
    target = tmp_path / "backup.db"
    assert main(["backup", str(target), "--config", str(config)]) == 0
    assert main(["backup", "--check", str(target)]) == 0
    data = bytearray(target.read_bytes())
    half = len(data) // 2
    data[half:] = b"\xa5" * (len(data) - half)  # garble the second half of the pages
    target.write_bytes(bytes(data))
    capsys.readouterr()
    assert main(["backup", "--check", str(target)]) == 1
    assert "postroom backup:" in capsys.readouterr().err


def test_postgresql_is_pointed_at_pg_dump(tmp_path, capsys):
    config = write_config(tmp_path, http=False, extra_daemon="")
    text = config.read_text().replace('store = "sqlite:///postroom.db"',
                                      'store = "postgresql://postroom@127.0.0.1/postroom"\n'
                                      'secret_key_file = "key"')
    config.write_text(text)
    (tmp_path / "key").write_text("k" * 40)
    assert main(["backup", str(tmp_path / "b.db"), "--config", str(config)]) == 2
    assert "pg_dump" in capsys.readouterr().err
