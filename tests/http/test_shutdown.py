"""Issue 10: shutdown lets the request in flight finish while /readyz answers 503."""

from __future__ import annotations

from pathlib import Path

import httpx
import trio

from daemon.store import open_store

BODY = b"0123456789"


async def test_a_request_in_flight_completes_after_the_stop(start_daemon, tmp_path: Path):
    async with start_daemon(grace=30) as (daemon, stop):
        url = daemon.http_urls[0]
        host, port = url.removeprefix("http://").rsplit(":", 1)
        guard = daemon.http_guard
        stream = await trio.open_tcp_stream(host, int(port))
        await stream.send_all(b"POST /api/v1/files?filename=late.txt HTTP/1.1\r\n"
                              b"Host: 127.0.0.1\r\nContent-Length: 10\r\n\r\n" + BODY[:4])
        with trio.fail_after(10):
            while guard.in_flight < 1:
                await guard.changed.wait()
            stop.set()  # what SIGTERM does
            async with httpx.AsyncClient(base_url=url) as client:
                while (ready := await client.get("/readyz")).status_code != 503:
                    pass
                assert ready.json()["problems"] == ["stopping"]
                refused = await client.get("/api/v1/objects/person")
                assert refused.status_code == 503  # no new work while draining
            assert guard.in_flight == 1  # still waiting for its body
            began = trio.current_time()
            await stream.send_all(BODY[4:])
            answer = b""
            while chunk := await stream.receive_some():
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 201 ")
        assert b'"size":10' in answer
        file_id = int(answer.split(b'"id":')[1].split(b",")[0])
    assert trio.current_time() - began < 10  # the daemon did not wait out the 30 s grace
    store = open_store(f"sqlite:///{tmp_path / 'postroom.db'}")
    with store.transaction() as tx:
        assert tx.get_file(file_id).data == BODY
    store.close()


async def test_a_request_that_outlasts_the_grace_is_cut_off_at_the_deadline(start_daemon):
    from structlog.testing import capture_logs

    with capture_logs() as logs:
        async with start_daemon(grace=1) as (daemon, stop):
            host, port = daemon.http_urls[0].removeprefix("http://").rsplit(":", 1)
            stream = await trio.open_tcp_stream(host, int(port))
            await stream.send_all(b"POST /api/v1/files?filename=never.txt HTTP/1.1\r\n"
                                  b"Host: 127.0.0.1\r\nContent-Length: 10\r\n\r\n0")
            with trio.fail_after(10):
                while daemon.http_guard.in_flight < 1:
                    await daemon.http_guard.changed.wait()
            stop.set()
            began = trio.current_time()
    assert 0.9 < trio.current_time() - began < 5
    (exceeded,) = [e for e in logs if e["event"] == "daemon.grace_exceeded"]
    assert exceeded["http_in_flight"] == 1
    assert any(e["event"] == "daemon.stopped" for e in logs)
    await stream.aclose()
