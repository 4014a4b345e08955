"""Composition without a store: templates, merge codes, MIME layout, loop headers."""

from __future__ import annotations

from datetime import UTC, datetime
from email import message_from_bytes
from email.policy import default
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from daemon.mail.ids import text_marker
from daemon.mail.parse import parse_message
from daemon.outbox.compose import (
    FilePart,
    Headers,
    Mailbox,
    ThreadEntry,
    build_message,
    conversation_html,
    ensure_marker,
    format_time,
    merge_codes,
    render_html,
    render_text,
    template_environment,
    text_to_html,
)
from daemon.outbox.phrases import phrases_for

WHEN = datetime(2026, 11, 24, 11, 0, tzinfo=UTC)
ZONE = ZoneInfo("Europe/Stockholm")
MERGE_CODES = {
    "conversation_update_info", "other_followers_info", "reply_info",
    "conversation_messages", "followers", "follower_addresses",
    "follower_addresses_mailto", "follower_names", "num_followers", "recipient_address",
    "recipient_name", "sender_address", "sender_name",
}


def headers(**overrides) -> Headers:
    values = dict(
        sender=Mailbox("support@a.example", "Alex Agent - Support"),
        reply_to=Mailbox("support@a.example", "Support"),
        recipient=Mailbox("ann@acme.example", "Ann Andersson"),
        subject="Re: Printer jammed", message_id="pr.abc.def@a.example",
        in_reply_to="m2@acme.example", references=("m1@acme.example", "m2@acme.example"),
        date=WHEN, language="en", loop_token="inst-1")
    values.update(overrides)
    return Headers(**values)


def codes(**overrides):
    values = dict(kind="reply", subject="Printer jammed",
                  recipient=Mailbox("ann@acme.example", "Ann"),
                  others=[Mailbox("lisa@acme.example", "Lisa"), Mailbox("bob@globex.example")],
                  followers=[Mailbox("ann@acme.example", "Ann"),
                             Mailbox("lisa@acme.example", "Lisa"),
                             Mailbox("bob@globex.example")],
                  sender=Mailbox("alex@a.example", "Alex Agent"), language="en")
    values.update(overrides)
    return merge_codes(**values)


def test_every_merge_code_of_the_reference_table_renders_in_a_template(tmp_path: Path):
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "all.html").write_text(
        "".join(f"[{name}={{{{ {name} }}}}]" for name in sorted(MERGE_CODES)))
    context = codes() | {"conversation_messages": conversation_html(
        [ThreadEntry(Mailbox("alex@a.example", "Alex"), WHEN, "<p>Hi</p>")], zone=ZONE,
        print_zone=False, language="en")}
    html, problem = render_html(template_environment(tmp_path), "all", context)
    assert problem is None
    assert "[recipient_name=Ann]" in html
    assert "[recipient_address=ann@acme.example]" in html
    assert "[sender_name=Alex Agent]" in html
    assert "[sender_address=alex@a.example]" in html
    assert "[num_followers=3]" in html
    assert "[follower_names=Ann, Lisa, bob@globex.example]" in html
    assert "[followers=Ann (ann@acme.example), Lisa (lisa@acme.example), " \
           "bob@globex.example]" in html
    assert "[follower_addresses=ann@acme.example, lisa@acme.example, " \
           "bob@globex.example]" in html
    assert '<a href="mailto:lisa@acme.example">lisa@acme.example</a>' in html
    assert ("[other_followers_info=This message was also sent to Lisa (lisa@acme.example),"
            " bob@globex.example.]") in html
    assert "[conversation_update_info=Alex Agent replied in the conversation " \
           "“Printer jammed”.]" in html
    assert "[reply_info=Reply to this email" in html
    assert '<div class="postroom-message"><p>Hi</p></div>' in html


def test_text_merge_codes_are_escaped_and_html_ones_are_not():
    env = template_environment(None)
    context = codes(recipient=Mailbox("x@evil.example", "<script>alert(1)</script>"),
                    followers=[Mailbox('a"b@x.example', "A & B")])
    html = env.from_string("{{ recipient_name }}|{{ followers }}|"
                           "{{ follower_addresses_mailto }}").render(context)
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "A &amp; B" in html
    assert 'href="mailto:a&#34;b@x.example"' in html


def test_other_followers_info_is_empty_when_nobody_else_gets_it():
    assert codes(others=[])["other_followers_info"] == ""


@pytest.mark.parametrize(("kind", "expected"), [
    ("reply", "Alex Agent replied in the conversation “Printer jammed”."),
    ("notification", "Alex Agent (alex@a.example) wrote in the conversation “Printer jammed”."),
    ("auto_reply", "We have received your message “Printer jammed”."),
])
def test_update_info_says_what_happened(kind: str, expected: str):
    assert codes(kind=kind)["conversation_update_info"] == expected


def test_language_of_the_account_and_fallbacks():
    assert codes(language="sv")["conversation_update_info"] == (
        "Alex Agent svarade i konversationen ”Printer jammed”.")
    assert phrases_for("pt-BR") is phrases_for("en")
    assert phrases_for("sv-FI") is phrases_for("sv")
    assert phrases_for("DE") is phrases_for("de")


def test_history_is_quoted_newest_first_in_the_account_zone():
    entries = [ThreadEntry(Mailbox("alex@a.example", "Alex"), None, "<p>New answer</p>"),
               ThreadEntry(Mailbox("lisa@acme.example", "Lisa"), WHEN, "<p>Second</p>"),
               ThreadEntry(Mailbox("ann@acme.example"), datetime(2026, 11, 23, 9, 5,
                                                                 tzinfo=UTC), "<p>First</p>")]
    html = str(conversation_html(entries, zone=ZONE, print_zone=True, language="en"))
    assert html.index("New answer") < html.index("Second") < html.index("First")
    assert "On 2026-11-24 12:00 (Europe/Stockholm), Lisa (lisa@acme.example) wrote:" in html
    assert "On 2026-11-23 10:05 (Europe/Stockholm), ann@acme.example wrote:" in html
    assert html.count("<blockquote") == 2


def test_history_html_is_sanitised_again():
    html = str(conversation_html(
        [ThreadEntry(Mailbox("a@x.example"), None, '<p onclick="x()">Hi<script>bad()</script>')],
        zone=ZONE, print_zone=False, language="en"))
    assert "script" not in html and "onclick" not in html
    assert "Hi" in html


def test_time_is_printed_with_the_zone_only_when_asked():
    assert format_time(WHEN, ZONE, print_zone=False) == "2026-11-24 12:00"
    assert format_time(WHEN, ZONE, print_zone=True) == "2026-11-24 12:00 (Europe/Stockholm)"
    assert format_time(None, ZONE, print_zone=True) == ""


def test_a_missing_or_unsafe_template_falls_back_to_the_default(tmp_path: Path):
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "nosy.html").write_text(
        "{{ reply_info.__class__.__mro__[1].__subclasses__() }}")
    env = template_environment(tmp_path)
    context = codes() | {"conversation_messages": "", "marker": "", "note": ""}
    html, problem = render_html(env, "nosy", context)
    assert "SecurityError" in problem
    assert "<!DOCTYPE html>" in html and "Reply to this email" in html
    html, problem = render_html(env, "branded", context)
    assert "TemplateNotFound" in problem
    assert "<!DOCTYPE html>" in html


def test_a_template_next_to_the_config_wins_over_the_shipped_one(tmp_path: Path):
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "default.html").write_text("OURS {{ recipient_name }}")
    html, problem = render_html(template_environment(tmp_path), "default", codes())
    assert (html, problem) == ("OURS Ann", None)


def test_texts_with_merge_codes_render_sandboxed_and_unknown_codes_are_empty():
    helpdesk = {"helpdesknumber": "HD-7", "company": {"name": "Acme"}}
    assert render_text("Case {{helpdesk.helpdesknumber}} for {{helpdesk.company.name}}"
                       "{{helpdesk.nothing.here}}.", {"helpdesk": helpdesk}) == \
        "Case HD-7 for Acme."
    assert render_text("{{ broken", {}) == "{{ broken"
    assert "class" not in render_text("{{ ''.__class__.__mro__ }}", {})  # sandboxed


def test_text_to_html_keeps_lines_and_paragraphs_and_escapes():
    assert str(text_to_html("Kind regards,\nThe <team>\n\nP.S. hi")) == (
        '<p style="margin:0 0 12px 0;">Kind regards,<br>\nThe &lt;team&gt;</p>'
        '<p style="margin:0 0 12px 0;">P.S. hi</p>')


def test_marker_is_added_when_the_template_leaves_it_out():
    html = ensure_marker("<html><body><p>x</p></body></html>", "pr.abcdefghij.klmnopqrstuvwxyz@a")
    assert html.index(text_marker("pr.abcdefghij.klmnopqrstuvwxyz@a")) < html.index("</body>")
    again = ensure_marker(html, "pr.abcdefghij.klmnopqrstuvwxyz@a")
    assert again == html


def test_a_reply_is_multipart_alternative_with_a_derived_text_part_and_no_auto_headers():
    raw = build_message(headers(), "<p>Hello <b>Ann</b></p><p>Second</p>")
    m = message_from_bytes(raw, policy=default)
    assert m.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in m.iter_parts()] == ["text/plain", "text/html"]
    text = m.get_body(("plain",)).get_content().replace("\r\n", "\n")
    assert text == "Hello Ann\n\nSecond\n"
    assert m["From"] == "Alex Agent - Support <support@a.example>"
    assert m["Reply-To"] == "Support <support@a.example>"
    assert m["To"] == "Ann Andersson <ann@acme.example>"
    assert m["Message-ID"] == "<pr.abc.def@a.example>"
    assert m["In-Reply-To"] == "<m2@acme.example>"
    assert m["References"] == "<m1@acme.example> <m2@acme.example>"
    assert m["X-Postroom-Loop"] == "inst-1"
    assert m["Content-Language"] == "en"
    for name in ("Auto-Submitted", "X-Auto-Response-Suppress", "Precedence"):
        assert m[name] is None
    assert b"\r\n" in raw and max(len(line) for line in raw.split(b"\r\n")) <= 998
    assert all(byte < 128 for byte in raw)


def test_automatic_mail_carries_the_loop_headers_our_classifier_and_others_read():
    raw = build_message(headers(auto_submitted="auto-replied"), "<p>Thanks</p>")
    m = message_from_bytes(raw, policy=default)
    assert m["Auto-Submitted"] == "auto-replied"
    assert m["X-Auto-Response-Suppress"] == "All"
    assert m["Precedence"] == "bulk"
    assert m["X-Postroom-Loop"] == "inst-1"


def test_attachments_make_it_mixed_and_inline_images_related_only_when_shown():
    logo = FilePart("logo.png", "image/png", b"\x89PNG fake", content_id="logo@x")
    unused = FilePart("unused.png", "image/png", b"\x89PNG other", content_id="unused@x")
    report = FilePart("report.txt", "text/plain; charset=utf-8", "Résumé\n".encode())
    raw = build_message(headers(), '<p>See <img src="cid:logo@x"></p>',
                        attachments=[report], inline=[logo, unused])
    m = message_from_bytes(raw, policy=default)
    assert m.get_content_type() == "multipart/mixed"
    alternative, attached = list(m.iter_parts())
    assert alternative.get_content_type() == "multipart/alternative"
    related = list(alternative.iter_parts())[1]
    assert related.get_content_type() == "multipart/related"
    parts = list(related.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/html", "image/png"]
    assert parts[1]["Content-ID"] == "<logo@x>"
    assert attached.get_filename() == "report.txt"
    assert attached.get_content_charset() == "utf-8"
    assert attached.get_payload(decode=True) == "Résumé\n".encode()
    parsed = parse_message(raw)
    assert [a.filename for a in parsed.attachments] == ["report.txt"]
    assert [i.content_id for i in parsed.inline_images] == ["logo@x"]


def test_header_values_cannot_inject_headers():
    raw = build_message(headers(subject="Hi\r\nBcc: victim@x.example",
                                recipient=Mailbox("ann@acme.example", "Ann\nBcc: v@x")),
                        "<p>x</p>")
    m = message_from_bytes(raw, policy=default)
    assert m["Bcc"] is None
    assert m["Subject"] == "Hi Bcc: victim@x.example"


def test_non_ascii_names_and_subjects_are_encoded():
    raw = build_message(headers(subject="Skrivaren på plan 3", recipient=Mailbox(
        "asa@acme.example", "Åsa Öberg")), "<p>Hej</p>")
    m = message_from_bytes(raw, policy=default)
    assert m["Subject"] == "Skrivaren på plan 3"
    assert m["To"].addresses[0].display_name == "Åsa Öberg"
