"""The HTTP surface of a running daemon: probes, status, metrics, the API and its token."""

from __future__ import annotations

import copy
from pathlib import Path

import httpx
import pytest
import trio

from daemon.app import run_daemon
from daemon.config import parse_config
from daemon.http.app import filter_value
from tests.crm.conftest import BASE
from tests.helpers import drop, make_message, wait_for_status

TOKEN = "t0ken-for-tests-0123456789abcdef"


@pytest.fixture
async def running(tmp_path: Path):
    data = copy.deepcopy(BASE)
    data["http"] = {"bind": "127.0.0.1:0", "api_token_env": "POSTROOM_TEST_TOKEN"}
    (tmp_path / "Maildir").mkdir()
    config = parse_config(data, file="postroom.toml", base_dir=tmp_path,
                          environ={"POSTROOM_TEST_TOKEN": TOKEN})
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        daemon = await nursery.start(lambda task_status: run_daemon(
            config, stop=stop, handle_signals=False, task_status=task_status))
        async with httpx.AsyncClient(base_url=daemon.http_urls[0]) as client:
            yield daemon, client, tmp_path
        stop.set()


AUTH = {"Authorization": f"Bearer {TOKEN}"}


async def test_probes_need_no_token(running):
    _, client, _ = running
    assert (await client.get("/livez")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ok"
    assert (await client.get("/healthz")).status_code == 200


async def test_readyz_is_503_while_stopping(running):
    daemon, client, _ = running
    daemon.stopping = True
    response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["problems"] == ["stopping"]
    daemon.stopping = False


async def test_api_requires_the_bearer_token(running):
    _, client, _ = running
    assert (await client.get("/api/v1/objects/person")).status_code == 401
    wrong = await client.get("/api/v1/objects/person", headers={"Authorization": "Bearer x"})
    assert wrong.status_code == 401
    assert TOKEN not in wrong.text
    assert (await client.get("/api/v1/objects/person", headers=AUTH)).status_code == 200


async def test_objects_filter_and_fetch_one(running):
    daemon, client, root = running
    status = daemon.handles["support"].status
    drop(root / "Maildir", "1", make_message(1))
    drop(root / "Maildir", "2", make_message(2, sender="bob@globex.example"))
    await wait_for_status(status, lambda s: s.imported >= 2, seconds=5)
    found = (await client.get("/api/v1/objects/conversationmessage",
                              params={"fromaddress": "bob@globex.example"},
                              headers=AUTH)).json()
    assert [m["subject"] for m in found] == ["Request number 2"]
    one = await client.get(f"/api/v1/objects/conversationmessage/{found[0]['id']}",
                           headers=AUTH)
    assert one.json()["emailid"] == "msg-2@customers.example"
    missing = await client.get("/api/v1/objects/conversationmessage/999999", headers=AUTH)
    assert missing.status_code == 404
    limited = await client.get("/api/v1/objects/conversationmessage",
                               params={"_limit": "1", "_order": "newest"}, headers=AUTH)
    assert [m["subject"] for m in limited.json()] == ["Request number 2"]


async def test_status_metrics_and_sync(running):
    _, client, _ = running
    status = (await client.get("/status")).json()
    (account,) = status["accounts"]
    assert account["account"] == "support" and account["kind"] == "maildir"
    assert (await client.post("/api/v1/accounts/support/sync", headers=AUTH)).status_code == 202
    assert (await client.post("/api/v1/accounts/nope/sync", headers=AUTH)).status_code == 404
    metrics = (await client.get("/metrics")).text
    assert 'postroom_messages_total{account="support",outcome="imported"}' in metrics


@pytest.mark.parametrize(("text", "value"), [
    ("42", 42), ("-3", -3), ("true", True), ("false", False), ("null", None),
    ('"42"', "42"), ("ann@acme.example", "ann@acme.example"), ("12abc", "12abc"),
])
def test_query_values_are_json_scalars(text, value):
    assert filter_value(text) == value


async def test_livez_is_served_in_front_of_quart(running):
    _, client, _ = running
    response = await client.get("/livez")
    assert response.json() == {"status": "ok"}
    assert response.headers["cache-control"] == "no-store"  # set only by the fast path
    head = await client.head("/livez")
    assert head.status_code == 200 and head.content == b""
    assert (await client.post("/livez")).status_code == 405  # other methods reach Quart


async def test_resolving_a_message_error(running):
    daemon, client, _ = running
    error_id = await daemon.store.run(lambda tx: tx.create("conversationmessageerror", {
        "type": "bounce", "errormessage": "5.1.1 user unknown", "date": "2026-11-24"}))
    unresolved = await client.get("/api/v1/objects/conversationmessageerror",
                                  params={"resolveddate": "null"}, headers=AUTH)
    assert [e["id"] for e in unresolved.json()] == [error_id]
    response = await client.post(f"/api/v1/errors/{error_id}/resolve",
                                 json={"coworker": 7}, headers=AUTH)
    assert response.status_code == 200
    resolved = response.json()
    assert resolved["coworker"] == 7 and resolved["resolveddate"]
    again = await client.post(f"/api/v1/errors/{error_id}/resolve", json={"coworker": 8},
                              headers=AUTH)
    assert again.json()["coworker"] == 7  # the first resolution stands
    assert (await client.get("/api/v1/objects/conversationmessageerror",
                             params={"resolveddate": "null"}, headers=AUTH)).json() == []
    assert (await client.post("/api/v1/errors/999999/resolve", headers=AUTH)
            ).status_code == 404
    assert (await client.post(f"/api/v1/errors/{error_id}/resolve", json={"coworker": "x"},
                              headers=AUTH)).status_code == 400
