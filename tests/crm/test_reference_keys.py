"""Issue 14: every runtime key and every [crm] name is written under the configured name."""

from __future__ import annotations

import pytest
import trio

from daemon.messages import OutcomeStatus
from tests.crm.conftest import RUNTIME, mail

RENAMED = {
    "conversation": {"propertyReplyToId": "answers", "propertyEarliestUnread": "firstunread"},
    "conversationMessage": {"propertyEmailEngineId": "engineref"},
    "conversationParents": [{**RUNTIME["conversationParents"][0],
                             "relationDocument": "ticketdocs"}],
    "followerParents": [{"limetype": "person", "relationFollower": "followings"},
                        {"limetype": "coworker", "relationFollower": "followings"}],
}


def with_attachment(raw: bytes) -> bytes:
    from email import message_from_bytes, policy

    message = message_from_bytes(raw, policy=policy.default)
    message.add_attachment(b"%PDF-1.4 ours", maintype="application", subtype="pdf",
                           filename="invoice.pdf")
    return bytes(message)


async def test_the_five_runtime_keys_renamed_are_written_under_the_new_names(make_harness):
    h = await make_harness(runtime=RENAMED)
    first = await h.feed(with_attachment(mail(message_id="m1@acme.example")))
    assert first.status is OutcomeStatus.IMPORTED
    await h.feed(mail("Re: Help please", message_id="m2@acme.example",
                      in_reply_to="m1@acme.example"))
    m1 = await h.one("conversationmessage", emailid="m1@acme.example")
    m2 = await h.one("conversationmessage", emailid="m2@acme.example")
    assert m2.get("answers") == m1.id and "replytoid" not in m2.props
    assert m1.get("engineref") == first.source_key.split(":", 2)[2]
    assert "emailengineid" not in m1.props
    conversation = await h.one("conversation")
    assert conversation.get("firstunread") == "2026-11-24T11:00:00+00:00"
    assert "earliestunread" not in conversation.props
    helpdesk = await h.one("helpdesk")
    document = await h.one("document")
    assert helpdesk.get("ticketdocs") == [document.id] and "document" not in helpdesk.props
    ann = await h.one("person", email="ann@acme.example")
    follower = await h.one("follower", email="ann@acme.example")
    assert ann.get("followings") == [follower.id]


async def test_the_engine_id_is_the_intakes_own_id():
    from daemon.crm.importer import engine_id
    from daemon.messages import source_key

    assert engine_id(source_key("imap", "support", "INBOX", 1700000, 42)) == "INBOX:1700000:42"
    assert engine_id(source_key("maildir", "support", "1700.M1P2.host")) == "1700.M1P2.host"


async def test_crm_names_rename_the_properties_the_json_has_no_key_for(make_harness):
    crm = {"message_subject": "title", "message_plaintext": "bodytext",
           "message_from_address": "sender", "message_direction": "way",
           "message_kind": "sort", "message_rules": "matched", "message_account": "mailbox",
           "conversation_parent": "ticket", "parent_numbers": {"helpdesk": "ticketno"}}
    h = await make_harness(crm=crm)
    await h.feed(mail(message_id="m1@acme.example"))
    message = await h.one("conversationmessage")
    assert {k: message.get(k) for k in ("title", "sender", "way", "sort", "mailbox")} == {
        "title": "Help please", "sender": "ann@acme.example", "way": "incoming",
        "sort": "normal", "mailbox": "support"}
    assert message.get("bodytext") == "Please help.\n" and message.get("matched") == []
    assert not {"subject", "plaintext", "fromaddress", "direction", "kind", "rules",
                "account"} & set(message.props)
    helpdesk = await h.one("helpdesk")
    conversation = await h.one("conversation")
    assert conversation.get("ticket") == helpdesk.id and "helpdesk" not in conversation.props
    assert helpdesk.get("ticketno") == 1 and "helpdesknumber" not in helpdesk.props


async def test_new_parents_are_numbered_from_one_per_limetype(make_harness):
    h = await make_harness()
    for n in range(3):
        await h.feed(mail(f"Question {n}", message_id=f"q{n}@acme.example"))
    numbers = [p.get("helpdesknumber") for p in await h.find("helpdesk")]
    assert numbers == [1, 2, 3]


async def test_a_number_the_mapping_supplies_is_kept(make_harness):
    parent = {**RUNTIME["conversationParents"][0]}
    parent["properties"] = [*parent["properties"],
                            {"property": "helpdesknumber", "default": "EXT-9"}]
    h = await make_harness(runtime={"conversationParents": [parent]})
    await h.feed(mail(message_id="m1@acme.example"))
    assert (await h.one("helpdesk")).get("helpdesknumber") == "EXT-9"


async def test_two_processors_importing_at_once_never_share_a_number(make_harness, tmp_path):
    """Two daemons (two stores) on one SQLite file import concurrently."""
    root = tmp_path / "shared"
    first = await make_harness(root=root)
    second = await make_harness(root=root)
    second._n = 1000  # its own source keys

    async def feed(h, prefix: str) -> None:
        for n in range(10):
            await h.feed(mail(f"{prefix} {n}", message_id=f"{prefix}{n}@acme.example"),
                         account="support")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(feed, first, "a")
        nursery.start_soon(feed, second, "b")
    numbers = sorted(p.get("helpdesknumber") for p in await first.find("helpdesk"))
    assert numbers == list(range(1, 21))


async def test_the_reference_simplified_mapping_maps_a_new_ticket(make_harness):
    simplified = {"subject": "email_subject", "description": "email_body",
                  "person": "sender_email", "company": "company_from_person",
                  "source": "email"}
    h = await make_harness(runtime={"conversationParents": [
        {"limetype": "helpdesk", "properties": simplified}]})
    await h.feed(mail(message_id="m1@acme.example", body="The printer jams.\n"))
    helpdesk = await h.one("helpdesk")
    ann = await h.one("person", email="ann@acme.example")
    acme = await h.one("company", name="Acme")
    assert {k: helpdesk.get(k) for k in simplified} == {
        "subject": "Help please", "description": "The printer jams.\n",
        "person": ann.id, "company": acme.id, "source": "email"}


@pytest.mark.postgres
async def test_two_nodes_on_postgresql_importing_at_once_never_share_a_number(
        make_harness, tmp_path):
    """The same on PostgreSQL: two daemons (nodes) on one database."""
    from tests.store.conftest import postgres_schema

    (tmp_path / "secret.key").write_text("k" * 40)
    with postgres_schema() as url:
        daemon = {"store": url, "secret_key_file": "secret.key"}
        first = await make_harness(daemon=daemon)
        second = await make_harness(daemon=daemon)
        second._n = 1000

        async def feed(h, prefix: str) -> None:
            for n in range(10):
                await h.feed(mail(f"{prefix} {n}", message_id=f"{prefix}{n}@acme.example"))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(feed, first, "a")
            nursery.start_soon(feed, second, "b")
        numbers = sorted(p.get("helpdesknumber") for p in await first.find("helpdesk"))
        for h in (first, second):
            await h.store.aclose()
    assert numbers == list(range(1, 21))
