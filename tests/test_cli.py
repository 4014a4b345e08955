"""The ``postroom`` command: deliver's exit codes, objects, accounts and sync."""

from __future__ import annotations

import io
import json
import socket
import sys
from pathlib import Path

import pytest
import trio

from daemon.app import run_daemon
from daemon.cli import EX_TEMPFAIL, main
from daemon.config import load_config
from tests.helpers import make_message, write_config


def deliver(monkeypatch, config: Path, raw: bytes, account: str = "support") -> int:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(raw)))
    return main(["deliver", account, "--config", str(config)])


def test_deliver_stores_then_objects_lists_it(tmp_path, monkeypatch, capsys):
    config = write_config(tmp_path, http=False)
    assert deliver(monkeypatch, config, make_message(1)) == 0
    assert deliver(monkeypatch, config, make_message(1)) == 0  # a duplicate is stored too
    capsys.readouterr()
    assert main(["objects", "conversationmessage", "--json", "--config", str(config)]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["emailid"] for r in rows] == ["msg-1@customers.example"]
    assert all("id" in r for r in rows)
    assert main(["objects", "helpdesk", "--where", "subject=Request number 1",
                 "--config", str(config)]) == 0
    assert "Request number 1" in capsys.readouterr().out


def test_deliver_permanent_failure_exits_1_and_keeps_the_message(tmp_path, monkeypatch,
                                                                 capsys):
    config = write_config(tmp_path, http=False,
                          plugins=["tests.crm.test_pipeline:breaker"])
    raw = make_message(1).replace(b"Subject: Request number 1", b"Subject: BREAK ME")
    assert deliver(monkeypatch, config, raw) == 1
    err = capsys.readouterr().err
    assert "raw message kept as deliver:support:" in err


def test_deliver_temporary_failures_exit_75(tmp_path, monkeypatch, capsys):
    config = write_config(tmp_path, http=False)
    assert deliver(monkeypatch, config, make_message(1), account="nobody") == EX_TEMPFAIL
    assert "no account named 'nobody'" in capsys.readouterr().err
    broken = tmp_path / "broken.toml"
    broken.write_text("[daemon]\nstore = 'mysql://x'\n")
    assert deliver(monkeypatch, broken, make_message(1)) == EX_TEMPFAIL


def test_deliver_exits_75_while_the_store_is_locked(tmp_path, monkeypatch, capsys):
    import sqlite3

    config = write_config(tmp_path, http=False)
    text = config.read_text().replace('store = "sqlite:///postroom.db"',
                                      'store = "sqlite:///postroom.db?busy_timeout_ms=50"')
    config.write_text(text)
    assert deliver(monkeypatch, config, make_message(1)) == 0
    holder = sqlite3.connect(tmp_path / "postroom.db", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        assert deliver(monkeypatch, config, make_message(2)) == EX_TEMPFAIL
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert "temporary failure" in capsys.readouterr().err


@pytest.fixture
def store_unwritable(monkeypatch):
    """Makes every SQLite connection opened from now on read-only or size-capped.

    Real SQLite errors (SQLITE_READONLY, SQLITE_FULL) without chmod (the tests may run as
    root, for whom a read-only directory is writable) or a full disk.
    """
    import sqlite3

    real = sqlite3.connect

    def install(kind: str) -> None:
        def connect(path, *args, **kwargs):
            if kind == "read-only":
                return real(f"file:{path}?mode=ro", *args, uri=True, **kwargs)
            conn = real(path, *args, **kwargs)
            pages = conn.execute("PRAGMA page_count").fetchone()[0]
            conn.execute(f"PRAGMA max_page_count = {pages}")
            return conn

        monkeypatch.setattr(sqlite3, "connect", connect)

    return install


@pytest.mark.parametrize("kind", ["read-only", "disk full"])
def test_issue_9_deliver_exits_75_when_the_store_cannot_be_written(
        tmp_path, monkeypatch, capsys, store_unwritable, kind):
    config = write_config(tmp_path, http=False)
    assert deliver(monkeypatch, config, make_message(1)) == 0
    store_unwritable(kind)
    big = make_message(2, sender="bo@globex.example").replace(
        b"Body of message 2.", b"A line of the body.\n" * 20_000)  # more than the free pages
    assert deliver(monkeypatch, config, big) == EX_TEMPFAIL
    err = capsys.readouterr().err
    assert "temporary failure" in err
    assert ("readonly" if kind == "read-only" else "full") in err
    monkeypatch.undo()
    capsys.readouterr()
    assert main(["objects", "conversationmessage", "--json", "--config", str(config)]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 1  # nothing half-stored


def test_issue_9_deliver_exits_75_when_the_store_directory_cannot_be_made(
        tmp_path, monkeypatch, capsys):
    config = write_config(tmp_path, http=False)
    (tmp_path / "not-a-dir").write_text("")
    config.write_text(config.read_text().replace(
        'store = "sqlite:///postroom.db"', 'store = "sqlite:///not-a-dir/db/postroom.db"'))
    assert deliver(monkeypatch, config, make_message(1)) == EX_TEMPFAIL
    assert "temporary failure: StoreBusyError: sqlite: cannot create" in capsys.readouterr().err


def test_check_config_exit_codes(tmp_path, capsys):
    config = write_config(tmp_path, http=False)
    assert main(["check-config", str(config)]) == 0
    assert capsys.readouterr().out.startswith("OK")
    bad = tmp_path / "bad.toml"
    bad.write_text('[[accounts]]\nid = "a"\nemail = "a@b.example"\nauth = "onprem"\n')
    assert main(["check-config", str(bad)]) == 1
    assert 'accounts[0].auth: no oauth_app or imap_connection named "onprem"' in (
        capsys.readouterr().out)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_sync_and_accounts_talk_to_the_running_daemon(tmp_path, capsys):
    path = write_config(tmp_path)
    path.write_text(path.read_text().replace("127.0.0.1:0", f"127.0.0.1:{free_port()}"))
    config = load_config(path)
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        await nursery.start(lambda task_status: run_daemon(
            config, stop=stop, handle_signals=False, task_status=task_status))
        code = await trio.to_thread.run_sync(main, ["sync", "support", "--config", str(path)])
        assert code == 0
        assert "support: sync requested" in capsys.readouterr().out
        code = await trio.to_thread.run_sync(main, ["sync", "nope", "--config", str(path)])
        assert code == 1
        await trio.to_thread.run_sync(main, ["accounts", "--config", str(path)])
        table = capsys.readouterr().out
        stop.set()
    assert "support" in table and "maildir" in table
    assert "not running" not in table


def test_sync_without_a_running_daemon(tmp_path, capsys):
    path = write_config(tmp_path)
    path.write_text(path.read_text().replace("127.0.0.1:0", f"127.0.0.1:{free_port()}"))
    assert main(["sync", "support", "--config", str(path)]) == 1
    assert "not running" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["--help"], ["run", "--help"]])
def test_help(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 0
    assert "postroom" in capsys.readouterr().out


def test_events_prints_the_event_log_as_json_lines(tmp_path, monkeypatch, capsys):
    config = write_config(tmp_path, http=False)
    assert deliver(monkeypatch, config, make_message(1)) == 0
    assert deliver(monkeypatch, config, make_message(2)) == 0
    capsys.readouterr()
    assert main(["events", "--config", str(config)]) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    imported = [e for e in events if e["event"] == "message.imported"]
    assert len(imported) == 2 and imported[0]["account"] == "support"
    assert main(["events", "--after", str(imported[0]["id"]), "--config", str(config)]) == 0
    later = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [e["id"] for e in later] == [e["id"] for e in events if e["id"] > imported[0]["id"]]


def test_deliver_refuses_a_disabled_account_with_exit_1(tmp_path, monkeypatch, capsys):
    config = write_config(tmp_path, http=False)
    config.write_text(config.read_text() + "enabled = false\n")
    assert deliver(monkeypatch, config, make_message(1)) == 1
    assert "account 'support' is disabled (enabled = false)" in capsys.readouterr().err
    assert main(["objects", "conversationmessage", "--json", "--config", str(config)]) == 0
    assert json.loads(capsys.readouterr().out) == []


async def test_run_logs_the_config_warnings_check_config_prints(tmp_path):
    from structlog.testing import capture_logs

    toml = write_config(tmp_path, http=False)
    runtime = json.loads((tmp_path / "runtime.json").read_text())
    runtime["conversationParents"][0]["accounts"] = ["support", "nobody"]
    (tmp_path / "runtime.json").write_text(json.dumps(runtime))
    config = load_config(toml)
    assert config.warnings
    stop = trio.Event()
    with capture_logs() as logs:
        async with trio.open_nursery() as nursery:
            await nursery.start(lambda task_status: run_daemon(
                config, stop=stop, handle_signals=False, task_status=task_status))
            stop.set()
    warnings = [e["problem"] for e in logs if e["event"] == "config.warning"]
    assert warnings == [str(w) for w in config.warnings]
    assert 'no account named "nobody"' in warnings[0]
