"""A tiny scripted IMAP server, for byte-exact situations a real Dovecot will not produce
on demand (two responses in one TCP segment, a literal during IDLE, a server that hangs).

It understands just enough to get a client logged in (CAPABILITY, LOGIN, NOOP, LOGOUT,
DONE) and answers IDLE with the bytes the test scripted, sent in a single write. Runs in
the test's Trio loop on a free loopback port, optionally behind TLS (trio.SSLStream).

    server = ScriptedImap(idle_reply=b"+ idling\\r\\n* 3 EXISTS\\r\\n")
    await nursery.start(server.serve)
    ... connect to ("127.0.0.1", server.port)
"""

from __future__ import annotations

__all__ = ["ScriptedImap"]

import ssl
from dataclasses import dataclass, field

import trio

CAPABILITIES = b"IMAP4rev1 IDLE"


@dataclass
class ScriptedImap:
    """One-connection-at-a-time IMAP responder.

    Attributes:
        idle_reply: sent in one write when the client says IDLE.
        after_idle: sent, each in its own write, after ``idle_reply``.
        release_after_idle: if given, ``after_idle`` waits until this event is set.
        login_reply: the tagged reply to LOGIN (``{tag}`` is filled in).
        hang_on: commands (upper case) that get no answer at all.
        ssl_context: serve TLS with this server context.
        port: set once listening.
        commands: every command line received, in order.
        closed: set when a client connection ends.
    """

    idle_reply: bytes = b"+ idling\r\n"
    after_idle: list[bytes] = field(default_factory=list)
    release_after_idle: trio.Event | None = None
    login_reply: bytes = b"{tag} OK [CAPABILITY " + CAPABILITIES + b"] Logged in\r\n"
    hang_on: frozenset[str] = frozenset()
    ssl_context: ssl.SSLContext | None = None
    port: int = 0
    commands: list[bytes] = field(default_factory=list)
    closed: trio.Event = field(default_factory=trio.Event)

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
                    ) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        if self.ssl_context is not None:
            listeners = [trio.SSLListener(listener, self.ssl_context) for listener in listeners]
        task_status.started()
        await trio.serve_listeners(self._handle, listeners)

    async def _handle(self, stream: trio.abc.Stream) -> None:
        buffer = b""
        idle_tag = b""
        try:
            await stream.send_all(b"* OK [CAPABILITY " + CAPABILITIES + b"] scripted\r\n")
            while True:
                while b"\r\n" not in buffer:
                    data = await stream.receive_some(4096)
                    if not data:
                        return
                    buffer += data
                line, buffer = buffer.split(b"\r\n", 1)
                self.commands.append(line)
                if line.upper() == b"DONE":
                    await stream.send_all(idle_tag + b" OK Idle completed\r\n")
                    continue
                tag, _, rest = line.partition(b" ")
                command = rest.split(b" ", 1)[0].upper().decode()
                if command in self.hang_on:
                    continue
                if command == "IDLE":
                    idle_tag = tag
                    await stream.send_all(self.idle_reply)
                    if self.release_after_idle is not None:
                        await self.release_after_idle.wait()
                    for chunk in self.after_idle:
                        await stream.send_all(chunk)
                    continue
                await stream.send_all(self._reply(tag, command))
                if command == "LOGOUT":
                    return
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return
        finally:
            self.closed.set()
            await trio.aclose_forcefully(stream)

    def _reply(self, tag: bytes, command: str) -> bytes:
        if command == "CAPABILITY":
            return b"* CAPABILITY " + CAPABILITIES + b"\r\n" + tag + b" OK done\r\n"
        if command == "LOGIN":
            return self.login_reply.replace(b"{tag}", tag)
        if command == "LOGOUT":
            return b"* BYE bye\r\n" + tag + b" OK done\r\n"
        return tag + b" OK done\r\n"
