"""Issue 14: the reference's automatic reply, ticket numbers in subjects, unread, disabled."""

from __future__ import annotations

import copy
from email import message_from_bytes, policy

from tests.outbox.conftest import RUNTIME, customer_mail
from tests.outbox.test_api import Api

#: RUNTIME without the mapped ``helpdesknumber`` default: the store numbers the tickets.
NUMBERED = copy.deepcopy(RUNTIME)
NUMBERED["conversationParents"][0]["properties"] = [
    p for p in RUNTIME["conversationParents"][0]["properties"]
    if p["property"] != "helpdesknumber"]


def parsed(raw: bytes):
    return message_from_bytes(raw, policy=policy.default)


def text_of(raw: bytes) -> str:
    return parsed(raw).get_body(("plain",)).get_content()


async def test_the_reference_automatic_reply_renders_number_and_company(make_env):
    env = await make_env(runtime=NUMBERED, account={"auto_reply": {
        "enabled": True, "subject": "Case {{helpdesk.helpdesknumber}}",
        "body": "Thanks! Your case number is {{helpdesk.helpdesknumber}} "
                "({{helpdesk.company.name}})."}})
    await env.feed(customer_mail(message_id="first@acme.example"))
    await env.feed(customer_mail("Toner empty", message_id="second@acme.example",
                                 sender="Bob Baker <bob@globex.example>"))
    replies = {i.recipient: i for i in await env.queued() if i.kind == "auto_reply"}
    assert parsed(replies["ann@acme.example"].raw)["Subject"] == "Case 1"
    assert "Your case number is 1 (Acme Printing AB)." in text_of(
        replies["ann@acme.example"].raw)
    assert "Your case number is 2 (Globex Ltd)." in text_of(replies["bob@globex.example"].raw)


async def test_the_subject_tag_carries_the_ticket_number_and_threads_back(make_env):
    env = await make_env(runtime={**NUMBERED, "identificationMethod": ["messageId",
                                                                       "subject"]})
    await env.feed(customer_mail("Other", message_id="other@acme.example"))
    cid = await env.conversation_with_three()  # ticket number 2
    await env.reply(cid)
    subjects = {parsed(i.raw)["Subject"] for i in await env.queued()
                if i.kind == "reply"}
    assert subjects == {"Re: Printer jammed [#2]"}
    # Lisa answers from another client that drops the references: the tag threads it.
    await env.feed(customer_mail("Re: Printer jammed [#2]", message_id="lisa@acme.example",
                                 sender="Lisa Lund <lisa@acme.example>"))
    message = await env.one("conversationmessage", emailid="lisa@acme.example")
    assert message.get("conversation") == cid


async def test_unread_is_set_by_mail_and_cleared_by_a_reply_or_the_read_route(make_env):
    env = await make_env()
    api = Api(env)
    cid = await env.conversation_with_three()
    conversation = await env.one("conversation")
    assert conversation.get("earliestunread") == "2026-11-24T11:00:00+00:00"
    response = await api.client.post(f"/api/v1/conversations/{cid}/read")
    assert response.status_code == 200
    assert (await env.one("conversation")).get("earliestunread") is None
    await env.feed(customer_mail("Re: Printer jammed", message_id="m2@acme.example",
                                 in_reply_to="m1@acme.example",
                                 date="Tue, 24 Nov 2026 11:30:00 +0000"))
    assert (await env.one("conversation")).get("earliestunread") == \
        "2026-11-24T11:30:00+00:00"
    response = await api.send(cid)
    assert response.status_code == 202
    assert (await env.one("conversation")).get("earliestunread") is None
    response = await api.client.post("/api/v1/conversations/987654/read")
    assert response.status_code == 404


async def test_a_disabled_accounts_reply_is_refused_with_the_reason(make_env):
    env = await make_env(account={"enabled": False})
    cid = await env.conversation_with_three()  # an import from before it was disabled
    response = await Api(env).send(cid)
    assert response.status_code == 409
    assert (await response.get_json())["error"] == (
        "account 'support' is disabled (enabled = false): it sends nothing")
    assert [i for i in await env.queued() if i.kind == "reply"] == []


def test_the_nine_languages_have_every_phrase_with_the_same_placeholders():
    import string
    from dataclasses import fields

    from daemon.outbox.phrases import CATALOGUE, phrases_for

    assert sorted(CATALOGUE) == ["da", "de", "en", "es", "fi", "fr", "nb", "nl", "sv"]
    english = CATALOGUE["en"]
    for language, phrases in CATALOGUE.items():
        assert phrases_for(language) is phrases
        for field in fields(phrases):
            text, model = getattr(phrases, field.name), getattr(english, field.name)
            assert {f for _, f, _, _ in string.Formatter().parse(text) if f} == \
                {f for _, f, _, _ in string.Formatter().parse(model) if f}, \
                (language, field.name)
            assert language == "en" or text != model, (language, field.name)


async def test_the_send_api_says_when_no_plugin_handles_the_action(make_env):
    park = {"action": {"id": "limepkg_basic_helpdesk.helpdesk-park",
                       "params": {"deadlinePropertyName": ""}},
            "label": "Send and update deadline", "icon": "hot_line"}
    runtime = copy.deepcopy(RUNTIME)
    runtime["conversationParents"][0]["sendMessageActions"].append(park)
    env = await make_env(runtime=runtime)
    cid = await env.conversation_with_three()
    response = await Api(env).send(cid, sendMessageAction=park["action"]["id"])
    assert response.status_code == 202
    assert (await response.get_json())["action"] == {
        "id": "limepkg_basic_helpdesk.helpdesk-park", "label": "Send and update deadline",
        "handled": False, "error": "no loaded plugin handles "
        "'limepkg_basic_helpdesk.helpdesk-park': the message was sent and nothing else "
        "was done"}
