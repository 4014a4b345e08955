"""The Graph client: one gate per mailbox, Retry-After, error translation."""

from __future__ import annotations

import pytest
import trio

from daemon.errors import AuthError
from daemon.graph.client import (
    GraphClient,
    GraphRequestError,
    mailbox_gate,
    retry_after,
    static_token,
)
from tests.graph.conftest import MAILBOX


def client(env, token: str | None = None) -> GraphClient:
    return GraphClient(env.emulator.base_url, MAILBOX, static_token(token or env.emulator.token),
                       account="support", transport=env.transport)


async def test_intake_and_sending_clients_share_four_requests_per_mailbox(in_process):
    intake, sending = client(in_process), client(in_process)
    assert mailbox_gate(in_process.emulator.base_url, MAILBOX.upper()) is intake._gate
    url = intake.user_url("/mailFolders")
    async with trio.open_nursery() as nursery:
        for c in (intake, sending):
            for _ in range(10):
                nursery.start_soon(c.json, "GET", url)
    assert in_process.emulator.max_in_flight == 4
    await intake.aclose()
    await sending.aclose()


async def test_errors_are_translated_once(in_process):
    c = client(in_process)
    with pytest.raises(GraphRequestError) as info:
        await c.json("GET", c.user_url("/messages/nope"))
    assert info.value.status == 404 and info.value.code == "ErrorItemNotFound"
    with pytest.raises(AuthError):
        await client(in_process, token="expired").json("GET", c.user_url("/mailFolders"))
    await c.aclose()


@pytest.mark.parametrize(("value", "seconds"), [
    ("7", 7.0), (None, 5.0), ("soon", 5.0), ("-1", 5.0), ("nan", 5.0), ("100000", 300.0)])
def test_retry_after_is_read_in_seconds_and_bounded(value, seconds):
    assert retry_after(value, 5.0) == seconds
