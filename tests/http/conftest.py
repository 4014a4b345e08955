"""A whole daemon on loopback for the HTTP tests, with or without an API token."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

from daemon.app import Daemon, run_daemon
from daemon.config import load_config
from tests.helpers import drop, make_message, wait_for_status, write_config

TOKEN = "t0ken-for-tests-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def start_daemon(tmp_path: Path) -> Callable[..., Any]:
    """``async with start_daemon(token=..., http_extra=..., grace=...) as (daemon, stop)``.

    The daemon runs in this Trio run; leaving the block sets ``stop`` and waits for it.
    """

    @asynccontextmanager
    async def start(*, token: bool = False, http_extra: str = "", grace: float = 5
                    ) -> AsyncIterator[tuple[Daemon, trio.Event]]:
        path = write_config(tmp_path, extra_daemon="")
        text = path.read_text().replace("shutdown_grace_seconds = 5",
                                        f"shutdown_grace_seconds = {grace}")
        http_lines = http_extra + ('\napi_token_env = "POSTROOM_TEST_TOKEN"' if token else "")
        text = text.replace('bind = "127.0.0.1:0"', 'bind = "127.0.0.1:0"\n' + http_lines)
        path.write_text(text)
        config = load_config(path, environ={"POSTROOM_TEST_TOKEN": TOKEN})
        stop = trio.Event()
        async with trio.open_nursery() as nursery:
            daemon = await nursery.start(lambda task_status: run_daemon(
                config, stop=stop, handle_signals=False, task_status=task_status))
            try:
                yield daemon, stop
            finally:
                stop.set()

    return start


async def a_conversation(daemon: Daemon, root: Path) -> tuple[int, int]:
    """Import one customer message; return (its conversation id, a coworker id)."""
    status = daemon.handles["support"].status
    drop(root / "Maildir", "1", make_message(1))
    await wait_for_status(status, lambda s: s.imported >= 1, seconds=10)

    def ids(tx: Any) -> tuple[int, int]:
        (message,) = tx.find("conversationmessage", {})
        coworker = tx.find("coworker", {}, limit=1)[0]
        return message.get("conversation"), coworker.id

    return await daemon.store.run(ids)
