"""Issue 9: slow request bodies time out, and a flood of them cannot starve the daemon.

Real sockets on loopback, in real time, with bounds: the full 1,000 connections (and the
figures) are in ``benchmarks/slowloris.py``; here 300 connections against a cap of 64.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import trio

from tests.helpers import drop, make_message, wait_for_status

HEAD = (b"POST /api/v1/textsnippets HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{")


async def open_slow_body(url: str) -> trio.SocketStream:
    """A connection that sent its request head and one byte of a 1,000-byte body."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    stream = await trio.open_tcp_stream(host, int(port))
    await stream.send_all(HEAD)
    return stream


async def read_all(stream: trio.SocketStream) -> bytes:
    data = b""
    while chunk := await stream.receive_some():
        data += chunk
    return data


async def test_a_trickling_body_is_answered_408_and_closed(start_daemon):
    async with start_daemon(http_extra="body_timeout_seconds = 1") as (daemon, _):
        stream = await open_slow_body(daemon.http_urls[0])
        with trio.fail_after(10):
            answer = await read_all(stream)  # ends: the server closed the connection
        assert answer.startswith(b"HTTP/1.1 408 ")
        assert daemon.http_guard.timed_out == 1


async def test_a_flood_of_slow_bodies_leaves_livez_and_intake_working(start_daemon,
                                                                      tmp_path: Path):
    extra = "max_connections = 64\nbody_timeout_seconds = 30"
    async with start_daemon(http_extra=extra) as (daemon, _):
        url = daemon.http_urls[0]
        status = daemon.handles["support"].status
        flood = []
        with trio.fail_after(60):
            for n in range(300):
                flood.append(await open_slow_body(url))
                if n % 50 == 0:
                    async with httpx.AsyncClient(base_url=url) as client:
                        with trio.fail_after(5):
                            assert (await client.get("/livez")).status_code == 200
            async with httpx.AsyncClient(base_url=url) as client:
                assert (await client.get("/readyz")).status_code == 200
            drop(tmp_path / "Maildir", "1", make_message(1))
            await wait_for_status(status, lambda s: s.imported >= 1)
        assert daemon.connections.peak <= 64
        assert daemon.connections.evicted >= 300 - 64
        assert status.reconnects == 0 and status.last_error is None
        for stream in flood:
            await stream.aclose()
