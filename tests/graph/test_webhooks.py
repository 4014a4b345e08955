"""The webhook routes in front of Quart: the handshake, clientState checks, durable kicks."""

from __future__ import annotations

from urllib.parse import quote

import httpx
import pytest

from daemon.errors import StoreBusyError
from daemon.graph.notifications import KICK_KEY, LIFECYCLE_KEY, WebhookRegistry, client_state_mac
from daemon.http.graph_webhooks import with_graph_webhooks
from tests.graph.conftest import SECRET, Webhooks, _not_found

ROUTES = ["/oauth/msg/notification", "/oauth/msg/lifecycle"]


def notification(sub: str = "sub-1", state: str = "right") -> dict:
    return {"value": [{"subscriptionId": sub, "clientState": state, "changeType": "created",
                       "resource": "Users/u/Messages/m", "tenantId": "t"}]}


def registered(webhooks: Webhooks) -> list[str]:
    woken: list[str] = []
    webhooks.registry.attach("support", wake=lambda: woken.append("wake"),
                             on_lifecycle=woken.append)
    webhooks.registry.register("support", "sub-1", client_state_mac(SECRET, "right"))
    return woken


@pytest.mark.parametrize("route", ROUTES)
async def test_validation_token_is_echoed_decoded_as_text_plain(webhooks, route):
    token = "Validation: Testing client application reachability for subscription <&>"
    async with httpx.AsyncClient() as client:
        response = await client.post(f"{webhooks.url}{route}?validationToken={quote(token)}",
                                     headers={"content-type": "text/plain"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain"
    assert response.text == token
    assert webhooks.registry.counters.validations == 1


async def test_valid_notification_is_recorded_durably_then_202(webhooks, store):
    woken = registered(webhooks)
    async with httpx.AsyncClient() as client:
        response = await client.post(f"{webhooks.url}/oauth/msg/notification?account=support",
                                     json=notification())
    assert response.status_code == 202
    assert woken == ["wake"]
    assert await store.run(lambda tx: tx.get_checkpoint("support", KICK_KEY)) == "1"


async def test_wrong_client_state_or_unknown_subscription_is_ignored_and_counted(webhooks):
    woken = registered(webhooks)
    async with httpx.AsyncClient() as client:
        url = f"{webhooks.url}/oauth/msg/notification?account=support"
        for body in (notification(state="wrong"), notification(sub="sub-2"),
                     notification(state=None)):
            assert (await client.post(url, json=body)).status_code == 202
    assert woken == []
    assert webhooks.registry.counters.invalid == 3


@pytest.mark.parametrize("body", [b"", b"[]", b'{"value": []}', b'{"value": [1]}', b"\xff"])
async def test_malformed_body_is_400_and_does_nothing(webhooks, body):
    woken = registered(webhooks)
    async with httpx.AsyncClient() as client:
        response = await client.post(f"{webhooks.url}/oauth/msg/notification", content=body)
    assert response.status_code == 400
    assert woken == [] and webhooks.registry.counters.malformed == 1


async def test_lifecycle_event_is_recorded_and_handed_over(webhooks, store):
    woken = registered(webhooks)
    body = {"value": [{"subscriptionId": "sub-1", "clientState": "right",
                       "lifecycleEvent": "missed", "tenantId": "t"}]}
    async with httpx.AsyncClient() as client:
        response = await client.post(f"{webhooks.url}/oauth/msg/lifecycle", json=body)
        forged = {"value": [{**body["value"][0], "clientState": "nope"}]}
        assert (await client.post(f"{webhooks.url}/oauth/msg/lifecycle",
                                  json=forged)).status_code == 202
    assert response.status_code == 202
    assert woken == ["missed", "wake"]
    assert await store.run(lambda tx: tx.get_checkpoint("support", LIFECYCLE_KEY)) == '["missed"]'
    assert webhooks.registry.counters.invalid == 1


async def test_get_is_405_and_other_paths_pass_through(webhooks):
    async with httpx.AsyncClient() as client:
        assert (await client.get(f"{webhooks.url}/oauth/msg/notification")).status_code == 405
        assert (await client.get(f"{webhooks.url}/status")).status_code == 404


class BusyStore:
    async def run(self, fn, *args):
        raise StoreBusyError("locked")


async def test_a_store_that_cannot_record_the_kick_gets_503_so_graph_retries():
    registry = WebhookRegistry(BusyStore(), SECRET)  # type: ignore[arg-type]
    registry.attach("support", wake=lambda: None, on_lifecycle=lambda e: None)
    registry.register("support", "sub-1", client_state_mac(SECRET, "right"))
    app = with_graph_webhooks(_not_found, registry)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://t") as client:
        response = await client.post("/oauth/msg/notification", json=notification())
    assert response.status_code == 503
