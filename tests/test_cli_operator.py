"""The operator's commands: one config lookup, unreachable daemon, limetypes, failed,
retry and purge (issue 16)."""

from __future__ import annotations

import io
import re
import sqlite3
import sys
from pathlib import Path

import pytest
import trio

from daemon.app import run_daemon
from daemon.cli import main
from daemon.config import load_config
from daemon.config_lookup import NoConfigError, locate_config
from tests.e2e.conftest import make_message, write_config
from tests.test_cli import free_port

BREAK = b"Subject: BREAK ME"


def deliver(monkeypatch, config: Path, raw: bytes) -> int:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(raw)))
    return main(["deliver", "support", "--config", str(config)])


# -- the lookup ------------------------------------------------------------------------

def test_lookup_order(tmp_path, monkeypatch):
    here, etc = tmp_path / "postroom.toml", tmp_path / "etc.toml"
    places = (here, etc)
    etc.write_text("")
    assert locate_config(None, {}, places) == etc
    here.write_text("")
    assert locate_config(None, {}, places) == here
    assert locate_config(None, {"POSTROOM_CONFIG": "env.toml"}, places) == Path("env.toml")
    assert locate_config(Path("given.toml"), {"POSTROOM_CONFIG": "env.toml"},
                         places) == Path("given.toml")


def test_no_config_says_how_to_pass_one(tmp_path, monkeypatch, capsys):
    with pytest.raises(NoConfigError) as error:
        locate_config(None, {}, (tmp_path / "none.toml",))
    assert "--config FILE" in str(error.value) and "POSTROOM_CONFIG" in str(error.value)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("POSTROOM_CONFIG", raising=False)
    monkeypatch.setattr("daemon.config_lookup.DEFAULT_PLACES", (tmp_path / "none.toml",))
    with pytest.raises(SystemExit) as exit_info:
        main(["accounts"])
    assert exit_info.value.code == 1
    assert "pass one with --config FILE" in capsys.readouterr().err


def test_check_config_follows_the_same_lookup(tmp_path, monkeypatch, capsys):
    config = write_config(tmp_path)
    monkeypatch.setenv("POSTROOM_CONFIG", str(config))
    assert main(["check-config"]) == 0
    bad = tmp_path / "bad.toml"
    bad.write_text("[daemon\n")
    assert main(["check-config", "--config", str(bad)]) == 1
    monkeypatch.setenv("POSTROOM_CONFIG", str(bad))
    assert main(["check-config"]) == 1


# -- talking to the daemon ------------------------------------------------------------

def test_accounts_exits_1_when_the_daemon_is_down(tmp_path, capsys):
    path = write_config(tmp_path)
    path.write_text(path.read_text().replace("127.0.0.1:0", f"127.0.0.1:{free_port()}"))
    assert main(["accounts", "--config", str(path)]) == 1
    captured = capsys.readouterr()
    assert "not running" in captured.out and "not running" in captured.err
    assert main(["failed", "--config", str(path)]) == 1
    assert main(["retry", "1", "--config", str(path)]) == 1


def test_unknown_limetypes_are_an_error(tmp_path, monkeypatch, capsys):
    config = write_config(tmp_path, http=False)
    assert deliver(monkeypatch, config, make_message(1)) == 0
    assert main(["objects", "persn", "--config", str(config)]) == 2
    assert "unknown limetype 'persn'" in capsys.readouterr().err
    assert main(["objects", "company", "--config", str(config)]) == 0  # seeded only
    assert main(["objects", "conversationmessageerror", "--config", str(config)]) == 0


async def test_failed_then_retry_reimports_once_the_cause_is_gone(tmp_path, monkeypatch,
                                                                  capsys):
    path = write_config(tmp_path, plugins=["tests.crm.test_pipeline:breaker"])
    path.write_text(path.read_text().replace("127.0.0.1:0", f"127.0.0.1:{free_port()}"))
    raw = make_message(1).replace(b"Subject: Request number 1", BREAK)
    assert await trio.to_thread.run_sync(deliver, monkeypatch, path, raw) == 1
    # The cause is fixed: the daemon now runs without the breaking plugin.
    path.write_text(path.read_text().replace('"tests.crm.test_pipeline:breaker"', ""))
    config = load_config(path)
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        daemon = await nursery.start(lambda task_status: run_daemon(
            config, stop=stop, handle_signals=False, task_status=task_status))
        capsys.readouterr()
        assert await trio.to_thread.run_sync(main, ["failed", "--config", str(path)]) == 0
        (line,) = [x for x in capsys.readouterr().out.splitlines()
                   if re.match(r"\s*[0-9]+\s+support\s", x)]
        failed_id = line.split()[0]
        code = await trio.to_thread.run_sync(main, ["retry", failed_id, "--config", str(path)])
        assert code == 0
        assert f"{failed_id}: imported" in capsys.readouterr().out.splitlines()
        again = await trio.to_thread.run_sync(main, ["retry", failed_id, "--config", str(path)])
        # SQLite may give the re-imported row the same id (then: "imported" again, exit 0),
        # PostgreSQL never (404, exit 1); either way nothing is imported twice.
        assert again in (0, 1)
        messages = await daemon.store.run(lambda tx: tx.find("conversationmessage", {}))
        await trio.to_thread.run_sync(main, ["failed", "--config", str(path)])
        assert not [x for x in capsys.readouterr().out.splitlines()
                    if re.match(r"\s*[0-9]+\s+support\s", x)]
        stop.set()
    assert [m.get("subject") for m in messages] == ["BREAK ME"]


def test_purge_removes_old_imported_bytes_and_events_and_keeps_failures(
        tmp_path, monkeypatch, capsys):
    config = write_config(tmp_path, http=False, plugins=["tests.crm.test_pipeline:breaker"])
    assert deliver(monkeypatch, config, make_message(1)) == 0
    assert deliver(monkeypatch, config,
                   make_message(2).replace(b"Subject: Request number 2", BREAK)) == 1
    db = sqlite3.connect(tmp_path / "postroom.db")
    with db:  # pretend everything was stored 100 days ago
        db.execute("UPDATE raw_messages SET created_at = '2000-01-01T00:00:00.000000+00:00'")
        db.execute("UPDATE events SET created_at = '2000-01-01T00:00:00.000000+00:00'")
    assert main(["purge", "--older-than", "90d", "--config", str(config)]) == 0
    assert "purged the bytes of 1 raw messages and" in capsys.readouterr().out
    rows = dict(db.execute("SELECT status, length(raw) FROM raw_messages").fetchall())
    events = db.execute("SELECT count(*) FROM events").fetchone()[0]
    db.close()
    assert rows["imported"] == 0 and rows["failed"] > 0
    assert events == 0
    assert main(["purge", "--older-than", "soon", "--config", str(config)]) == 2
