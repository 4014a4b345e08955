"""The send API and the text snippet API, through the real Quart app."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import trio

from daemon.actors.outbox import OutboxActor, RetryPolicy
from daemon.app import Daemon
from daemon.http.app import create_app
from tests.fakes.smtp import FakeSmtp
from tests.helpers import wait_for_status
from tests.outbox.conftest import ACTION, make_data


class Api:
    """An app over ``env`` with an outbox actor that is not running (tests start it)."""

    def __init__(self, env: Any) -> None:
        self.env = env
        outbox = OutboxActor(env.config, env.store, sent_copy=None,
                             policy=RetryPolicy(base=0.02, cap=0.1), poll_interval=10)
        self.daemon = Daemon(env.config, env.store, env.pm, env.processor, outbox)
        self.app = create_app(self.daemon)
        self.client = self.app.test_client()

    async def send(self, conversation_id: int, **body: Any) -> Any:
        body.setdefault("html", "<p>We are on it.</p>")
        if "coworker" not in body:
            body["coworker"] = (await self.env.one("coworker", email="alex@a.example")).id
        return await self.client.post(f"/api/v1/conversations/{conversation_id}/messages",
                                      json=body)


@pytest.fixture
def api_for():
    def make(env: Any) -> Api:
        return Api(env)
    return make


async def test_a_reply_through_the_api_is_queued_then_delivered(make_env, api_for,
                                                                smtp: FakeSmtp):
    env = await make_env(smtp=smtp)
    api = api_for(env)
    cid = await env.conversation_with_three()
    async with trio.open_nursery() as nursery:
        await nursery.start(api.daemon.outbox.run)
        response = await api.send(cid)
        assert response.status_code == 202
        body = await response.get_json()
        assert sorted(body["recipients"]) == ["ann@acme.example", "bob@globex.example",
                                              "lisa@acme.example"]
        assert body["account"] == "support" and len(body["outbox"]) == 3
        # woken by the API, not by its 10 s poll
        await wait_for_status(api.daemon.outbox.status, lambda s: s.sent >= 3, seconds=10)
        nursery.cancel_scope.cancel()
    assert {r.rcpt_tos[0] for r in smtp.received} == set(body["recipients"])
    message = await env.one("conversationmessage", direction="outgoing")
    assert message.id == body["conversationMessage"]


async def test_an_oversize_reply_gets_413_naming_the_limit_and_nothing_is_queued(make_env,
                                                                                api_for):
    env = await make_env(account={"max_outgoing_bytes": 50_000})
    api = api_for(env)
    cid = await env.conversation_with_three()
    upload = await api.client.post("/api/v1/files?filename=scan.pdf", data=b"%" * 60_000,
                                   headers={"Content-Type": "application/pdf"})
    assert upload.status_code == 201
    file_id = (await upload.get_json())["id"]
    response = await api.send(cid, attachments=[file_id])
    assert response.status_code == 413
    body = await response.get_json()
    assert body["limit"] == 50_000 and body["size"] > 80_000
    assert "max_outgoing_bytes" in body["error"] and "50000" in body["error"]
    assert await env.queued() == []
    assert await env.find("conversationmessage", direction="outgoing") == []


async def test_attachments_uploaded_then_sent(make_env, api_for):
    env = await make_env()
    api = api_for(env)
    cid = await env.conversation_with_three()
    upload = await api.client.post("/api/v1/files?filename=notes.txt", data="Hej då\n",
                                   headers={"Content-Type": "text/plain; charset=utf-8"})
    assert (await upload.get_json())["size"] == len("Hej då\n".encode())
    response = await api.send(cid, attachments=[(await upload.get_json())["id"]])
    assert response.status_code == 202
    from email import message_from_bytes
    from email.policy import default

    raw = (await env.queued())[0].raw
    (attached,) = list(message_from_bytes(raw, policy=default).iter_attachments())
    assert attached.get_filename() == "notes.txt"
    assert attached.get_payload(decode=True) == "Hej då\n".encode()
    bad = await api.client.post("/api/v1/files?filename=../x", data=b"x")
    assert bad.status_code == 400
    # Quart's default 16 MB body limit is raised to the largest attachment allowed.
    assert api.app.config["MAX_CONTENT_LENGTH"] == 25_000_000 + 1_000_000


@pytest.mark.parametrize(("body", "status", "words"), [
    ({"html": ""}, 400, "html: required"),
    ({"surprise": 1}, 400, "unknown field(s): surprise"),
    ({"coworker": "alex"}, 400, "coworker: required"),
    ({"account": "nope"}, 400, "no account named 'nope'"),
    ({"sendMessageAction": "other.action"}, 400, "'other.action' is not offered"),
    ({"attachments": [987654]}, 400, "no stored file with id 987654"),
    ({"textSnippets": ["x"]}, 400, "textSnippets: must be a list of ids"),
])
async def test_bad_requests_are_refused_with_the_reason(make_env, api_for, body, status,
                                                        words):
    env = await make_env()
    api = api_for(env)
    cid = await env.conversation_with_three()
    response = await api.send(cid, **body)
    assert response.status_code == status
    assert words in (await response.get_json())["error"]
    assert await env.queued() == []


async def test_groups_and_missing_conversations(make_env, api_for):
    env = await make_env()
    api = api_for(env)
    cid = await env.conversation_with_three()
    sam = (await env.one("coworker", email="sam@a.example")).id
    response = await api.send(cid, coworker=sam)
    assert response.status_code == 403
    assert "groups: marketing, sales" in (await response.get_json())["error"]
    response = await api.send(987_654)
    assert response.status_code == 404
    response = await api.client.post(f"/api/v1/conversations/{cid}/messages", data=b"{no",
                                     headers={"Content-Type": "application/json"})
    assert response.status_code == 400


async def test_actions_on_offer_and_the_update_limeobject_action(make_env, api_for):
    env = await make_env()
    api = api_for(env)
    cid = await env.conversation_with_three()
    response = await api.client.get(f"/api/v1/conversations/{cid}/actions")
    assert await response.get_json() == [{
        "id": "limepkg_standard_actions.update-limeobject", "label": ACTION["label"],
        "icon": "waiting_room", "params": ACTION["action"]["params"]}]
    helpdesk = await env.one("helpdesk")
    assert helpdesk.get("helpdeskstatus") == "new"
    response = await api.send(cid, sendMessageAction=ACTION["action"]["id"])
    assert response.status_code == 202
    assert (await response.get_json())["action"] == {
        "id": ACTION["action"]["id"], "label": ACTION["label"], "handled": True}
    assert (await env.one("helpdesk")).get("helpdeskstatus") == "waiting_customer"
    assert len(await env.queued()) == 3


async def test_no_actions_when_the_account_serves_parents_of_different_limetypes(
        make_env, api_for):
    deal = {"relationConversation": "conversation", "accounts": [], "limetype": "deal",
            "sendMessageActions": [ACTION],
            "properties": [{"property": "name", "messageProperty": "subject"}]}
    from tests.outbox.conftest import RUNTIME

    env = await make_env(runtime={"conversationParents": [
        *RUNTIME["conversationParents"], deal]})
    api = api_for(env)
    cid = await env.conversation_with_three()
    response = await api.client.get(f"/api/v1/conversations/{cid}/actions")
    assert await response.get_json() == []
    response = await api.send(cid, sendMessageAction=ACTION["action"]["id"])
    assert response.status_code == 400


async def test_the_api_token_guards_the_new_routes(make_env, tmp_path):
    data = make_data(tmp_path, smtp=None, account=None, runtime=None, seed=None)
    data["http"] = {"enabled": False, "api_token_env": "SMTP_PASSWORD"}
    env = await make_env(data=data)
    api = Api(env)
    for method, path in (("post", "/api/v1/conversations/1/messages"),
                         ("get", "/api/v1/conversations/1/actions"),
                         ("post", "/api/v1/files?filename=x"),
                         ("get", "/api/v1/textsnippets")):
        response = await getattr(api.client, method)(path)
        assert response.status_code == 401, path


# -- text snippets ---------------------------------------------------------------------------


async def test_text_snippet_crud_in_the_runtime_property_names(make_env, api_for):
    env = await make_env(runtime={"textSnippet": {"propertyStatus": "snippetstate"}})
    api = api_for(env)
    created = await api.client.post("/api/v1/textsnippets", json={
        "text": "What is your order number?", "description": "Order number",
        "language": "en", "status": "active", "type": "question"})
    assert created.status_code == 201
    snippet = await created.get_json()
    assert snippet | {"id": 0} == {
        "id": 0, "text": "What is your order number?", "description": "Order number",
        "type": "question", "status": "active", "language": "en", "count": 0,
        "lastused": None, "pinned": False}
    stored = await env.store.run(lambda tx: tx.get("textsnippet", snippet["id"]))
    assert stored.get("snippetstate") == "active" and "status" not in stored.props
    await api.client.post("/api/v1/textsnippets", json={"text": "Tack!", "language": "sv",
                                                        "pinned": True})
    listed = await (await api.client.get("/api/v1/textsnippets")).get_json()
    assert [s["text"] for s in listed] == ["Tack!", "What is your order number?"]
    swedish = await (await api.client.get("/api/v1/textsnippets?language=sv")).get_json()
    assert [s["text"] for s in swedish] == ["Tack!"]
    changed = await api.client.patch(f"/api/v1/textsnippets/{snippet['id']}",
                                     json={"pinned": True, "description": None})
    assert (await changed.get_json())["pinned"] is True
    assert (await changed.get_json())["description"] is None
    assert (await api.client.get(f"/api/v1/textsnippets/{snippet['id']}")).status_code == 200
    deleted = await api.client.delete(f"/api/v1/textsnippets/{snippet['id']}")
    assert deleted.status_code == 204
    assert (await api.client.get(f"/api/v1/textsnippets/{snippet['id']}")).status_code == 404
    assert (await api.client.delete(f"/api/v1/textsnippets/{snippet['id']}")
            ).status_code == 404


@pytest.mark.parametrize(("body", "words"), [
    ({}, "text: required"),
    ({"text": "x", "count": -1}, "count: must be a whole number"),
    ({"text": "x", "pinned": "yes"}, "pinned: must be true or false"),
    ({"text": "x", "lastused": "yesterday"}, "lastused: must be an ISO 8601"),
    ({"text": "x", "colour": "red"}, "unknown field 'colour'"),
])
async def test_text_snippet_validation(make_env, api_for, body, words):
    api = api_for(await make_env())
    response = await api.client.post("/api/v1/textsnippets", json=body)
    assert response.status_code == 400
    assert words in (await response.get_json())["error"]


async def test_a_snippet_used_in_a_send_counts_and_records_when(make_env, api_for):
    env = await make_env()
    api = api_for(env)
    cid = await env.conversation_with_three()
    snippet = await (await api.client.post("/api/v1/textsnippets",
                                           json={"text": "Thanks"})).get_json()
    before = datetime.now(UTC)
    response = await api.send(cid, textSnippets=[snippet["id"]])
    assert response.status_code == 202
    used = await (await api.client.get(f"/api/v1/textsnippets/{snippet['id']}")).get_json()
    assert used["count"] == 1
    assert before <= datetime.fromisoformat(used["lastused"]) <= datetime.now(UTC)
