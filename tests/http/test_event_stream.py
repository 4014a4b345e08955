"""``/events`` (a websocket of the event log) and ``postroom events --follow``'s client."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import trio
from trio_websocket import ConnectionRejected, open_websocket_url

from daemon.app import run_daemon
from daemon.config import load_config
from daemon.event_follow import stream
from tests.e2e.conftest import drop, make_message, write_config
from tests.http.conftest import TOKEN
from tests.test_cli import free_port


def config_at(root: Path, port: int, *, token: bool = False):
    path = root / "postroom.toml"
    if not path.exists():
        write_config(root)
    text = path.read_text().replace('bind = "127.0.0.1:0"', f'bind = "127.0.0.1:{port}"')
    if token and "api_token_env" not in text:
        text = text.replace(f'bind = "127.0.0.1:{port}"',
                            f'bind = "127.0.0.1:{port}"\napi_token_env = "WS_TOKEN"')
    path.write_text(text)
    return load_config(path, environ={"WS_TOKEN": TOKEN})


async def start(nursery, config, stop):
    return await nursery.start(lambda task_status: run_daemon(
        config, stop=stop, handle_signals=False, task_status=task_status))


async def test_an_import_is_streamed_within_a_second(tmp_path):
    port = free_port()
    config = config_at(tmp_path, port, token=True)
    seen: list[tuple[float, dict]] = []
    got = trio.Event()

    def emit(event):
        seen.append((time.monotonic(), event))
        if event["event"] == "message.imported":
            got.set()

    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        daemon = await start(nursery, config, stop)
        auth = [(b"Authorization", f"Bearer {TOKEN}".encode())]
        nursery.start_soon(stream, f"ws://127.0.0.1:{port}/events", auth, 0, emit)
        status = daemon.handles["support"].status
        drop(tmp_path / "Maildir", "1", make_message(1))
        with trio.fail_after(10):
            while status.imported < 1:
                await status.changed.wait()
        committed = time.monotonic()
        with trio.fail_after(5):
            await got.wait()
        stop.set()
        nursery.cancel_scope.cancel()
    (at, imported), = [(t, e) for t, e in seen if e["event"] == "message.imported"]
    assert imported["message_id"] == "msg-1@customers.example"
    assert imported["account"] == "support"
    print(f"import streamed {1000 * (at - committed):.1f} ms after its commit")
    assert at - committed < 1.0, f"streamed {at - committed:.3f}s after the commit"


async def test_the_stream_needs_the_token_and_filters(tmp_path):
    port = free_port()
    config = config_at(tmp_path, port, token=True)
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        daemon = await start(nursery, config, stop)
        with pytest.raises(ConnectionRejected) as refused:
            async with open_websocket_url(f"ws://127.0.0.1:{port}/events"):
                pass
        assert refused.value.status_code == 401
        await daemon.store.run(lambda tx: [tx.add_event("outbox.sent", "other", {}),
                                           tx.add_event("outbox.sent", "support", {"n": 1}),
                                           tx.add_event("message.failed", "support", {})])
        auth = [(b"Authorization", f"Bearer {TOKEN}".encode())]
        async with open_websocket_url(
                f"ws://127.0.0.1:{port}/events?after=0&account=support&kind=outbox.",
                extra_headers=auth) as ws:
            with trio.fail_after(5):
                first = await ws.get_message()
        stop.set()
    assert '"n":1' in first and '"event":"outbox.sent"' in first


async def test_follow_resumes_without_gaps_after_the_daemon_restarts(tmp_path):
    port = free_port()
    config = config_at(tmp_path, port)
    seen: list[dict] = []
    reached: dict[int, trio.Event] = {}

    def emit(event):
        seen.append(event)
        if event["event"] == "test.mark":
            count = sum(e["event"] == "test.mark" for e in seen)
            reached.setdefault(count, trio.Event()).set()

    async def wait_for(n):
        with trio.fail_after(10):
            await reached.setdefault(n, trio.Event()).wait()

    async with trio.open_nursery() as outer:
        first_stop = trio.Event()
        async with trio.open_nursery() as nursery:
            daemon = await start(nursery, config, first_stop)
            outer.start_soon(lambda: stream(f"ws://127.0.0.1:{port}/events", [], 0, emit,
                                            retry_delay=0.05))
            await daemon.store.run(lambda tx: tx.add_event("test.mark", None, {"n": 1}))
            await wait_for(1)
            first_stop.set()
        # The daemon is down: these are written while nobody streams.
        from daemon.store import open_store
        store = open_store(config.daemon.store)
        with store.transaction() as tx:
            for n in (2, 3):
                tx.add_event("test.mark", None, {"n": n})
        store.close()
        second_stop = trio.Event()
        async with trio.open_nursery() as nursery:
            daemon = await start(nursery, config, second_stop)
            await daemon.store.run(lambda tx: tx.add_event("test.mark", None, {"n": 4}))
            await wait_for(4)
            second_stop.set()
        outer.cancel_scope.cancel()
    marks = [e["n"] for e in seen if e["event"] == "test.mark"]
    ids = [e["id"] for e in seen]
    assert marks == [1, 2, 3, 4]
    assert ids == sorted(set(ids))  # no event twice, in order
