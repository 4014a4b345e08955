"""sd_notify: a stale socket never stops the daemon; STATUS= lines reach the socket."""

from __future__ import annotations

import os
import socket

import pytest
import structlog
import trio

from daemon import sdnotify
from daemon.app import open_daemon
from daemon.config import load_config
from tests.e2e.conftest import write_config


@pytest.fixture(autouse=True)
def fresh_warning(monkeypatch):
    monkeypatch.setattr(sdnotify, "_warned", [False])


@pytest.fixture
async def listener(monkeypatch):
    """A datagram socket in the abstract namespace, named in NOTIFY_SOCKET."""
    name = f"@postroom-test-{os.getpid()}-{id(monkeypatch)}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name[1:])
        monkeypatch.setenv("NOTIFY_SOCKET", name)
        yield trio.socket.from_stdlib_socket(sock)


async def received(sock, *, until: str) -> list[str]:
    """Datagrams up to and including the first that starts with ``until``."""
    got = []
    with trio.fail_after(10):
        while not got or not got[-1].startswith(until):
            got.append((await sock.recv(4096)).decode())
    return got


async def test_a_stale_notify_socket_logs_one_warning_and_the_daemon_runs(tmp_path,
                                                                          monkeypatch):
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "gone.sock"))
    monkeypatch.setattr(sdnotify, "STATUS_INTERVAL_SECONDS", 0.01)
    config = load_config(write_config(tmp_path, http=False))
    with structlog.testing.capture_logs() as logs:
        async with open_daemon(config) as daemon:
            assert daemon.actors_started
            assert sdnotify.notify("WATCHDOG=1") is False
            await trio.sleep(0.05)  # report_status tries (and fails) a few times
    failures = [e for e in logs if e["event"] == "sdnotify.failed"]
    assert len(failures) == 1
    assert failures[0]["log_level"] == "warning"
    assert failures[0]["socket"] == str(tmp_path / "gone.sock")
    assert any(e["event"] == "daemon.stopped" for e in logs)


def test_no_notify_socket_is_a_quiet_no_op(monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    with structlog.testing.capture_logs() as logs:
        assert sdnotify.notify("READY=1") is False
    assert logs == []


async def test_ready_status_and_stopping_arrive_on_the_socket(tmp_path, monkeypatch, listener):
    monkeypatch.setattr(sdnotify, "STATUS_INTERVAL_SECONDS", 0.01)
    config = load_config(write_config(tmp_path, http=False))
    async with open_daemon(config):
        before = await received(listener, until="READY=1")
        after = await received(listener, until="STATUS=1 account: 1 idle")
    stopping = await received(listener, until="STOPPING=1")
    assert before[-1] == "READY=1"
    assert after[-1] == ("STATUS=1 account: 1 idle; 0 imported, 0 duplicates, 0 discarded, "
                         "0 failed; outbox 0 sent, 0 failed")
    assert stopping[-1] == "STOPPING=1"


async def test_report_status_sends_only_changes(listener, autojump_clock):
    documents = iter([{"accounts": []}, {"accounts": []},
                      {"accounts": [{"state": "backoff", "counts": {"failed": 2}}]}])

    async def reporter():
        await sdnotify.report_status(lambda: next(documents), interval=1)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(reporter)
        first = await listener.recv(4096)
        second = await listener.recv(4096)
        nursery.cancel_scope.cancel()
    assert first == b"STATUS=0 accounts; 0 imported, 0 duplicates, 0 discarded, 0 failed"
    assert second == (b"STATUS=1 account: 1 backoff; 0 imported, 0 duplicates, 0 discarded, "
                      b"2 failed")


def test_status_line_counts_states_and_messages():
    status = {"accounts": [
        {"state": "idle", "counts": {"imported": 5, "duplicates": 1, "discarded": 0,
                                     "failed": 1}},
        {"state": "idle", "counts": {"imported": 2, "duplicates": 0, "discarded": 3,
                                     "failed": 0}},
        {"state": "auth_error", "counts": {}},
    ], "outbox": {"sent": 4, "failed": 1}, "ready": False}
    assert sdnotify.status_line(status) == (
        "3 accounts: 1 auth_error, 2 idle; 7 imported, 1 duplicates, 3 discarded, 1 failed; "
        "outbox 4 sent, 1 failed; not ready")
