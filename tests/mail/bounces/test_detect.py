"""DSN parsing and bounce evidence (the corpus covers whole real-world shapes)."""

from __future__ import annotations

from daemon.mail.bounces import detect_bounce, from_mail_system, parse_bounce, parse_delivery_status
from daemon.mail.model import Address, Attachment, BounceInfo, ParsedMessage

DSN = b"""Reporting-MTA: dns; mx.example.net
Arrival-Date: Tue,  4 Mar 2025 10:14:58 +0100

Final-Recipient: rfc822; First@Example.net
Original-Recipient: rfc822;first@example.net
Action: failed
Status: 5.1.1 (bad destination mailbox)
Diagnostic-Code: smtp; 550 5.1.1 <first@example.net>: Recipient address
    rejected: User unknown

Final-Recipient: RFC822; <second@example.net>
Action: delayed
Status: 4.4.1
Diagnostic-Code: X-Postfix; connect to mx.example.net: Connection timed out

Original-Recipient: rfc822;third@example.net
Action: relayed
Status: 2.0.0
Original-Message-ID: <own-id@example.com>
"""


def test_parse_delivery_status_per_recipient() -> None:
    infos = parse_delivery_status(DSN.replace(b"\n", b"\r\n"), original_message_id="orig@x")
    assert infos == [
        BounceInfo("first@example.net", "failed", "5.1.1",
                   "550 5.1.1 <first@example.net>: Recipient address rejected: User unknown",
                   "orig@x", "mx.example.net", reason="user-unknown"),
        BounceInfo("second@example.net", "delayed", "4.4.1",
                   "connect to mx.example.net: Connection timed out", "orig@x",
                   "mx.example.net", reason="network"),
        BounceInfo("third@example.net", "relayed", "2.0.0", None, "own-id@example.com",
                   "mx.example.net"),
    ]
    assert [i.permanent for i in infos] == [True, False, False]


def test_parse_delivery_status_garbage() -> None:
    assert parse_delivery_status(b"") == []
    assert parse_delivery_status(b"\xff\xfe not a dsn \x00") == []
    info = parse_delivery_status(b"Final-Recipient: x@y\n")[0]
    assert (info.recipient, info.action, info.status) == ("x@y", None, None)


def message(text: str = "", *, sender: str = "mailer-daemon@mx.example.net",
            subject: str = "", headers: dict[str, tuple[str, ...]] | None = None,
            attachments: tuple[Attachment, ...] = ()) -> ParsedMessage:
    return ParsedMessage(
        message_id="bounce@mx", subject=subject, from_=Address(sender),
        to=(Address("support@example.com"),), headers=headers or {}, text=text,
        attachments=attachments)


def test_dsn_attachment_with_returned_headers() -> None:
    returned = Attachment("h.txt", "text/rfc822-headers",
                          b"From: a@b\r\nMessage-ID:\r\n <orig@example.com>\r\n\r\n")
    dsn = Attachment("d.txt", "message/delivery-status", DSN)
    report = detect_bounce(message(attachments=(dsn, returned)))
    assert report is not None
    assert report.rules == ("bounce.dsn",)
    assert len(report.recipients) == 3
    assert report.failed == report.recipients[:1]
    assert not report.delayed
    assert report.primary is not None
    assert report.primary.recipient == "first@example.net"
    assert report.primary.original_message_id == "orig@example.com"


def test_delayed_only_report() -> None:
    delayed = DSN.split(b"\n\n")[0] + b"\n\n" + DSN.split(b"\n\n")[2]
    msg = message(attachments=(Attachment("d.txt", "message/delivery-status", delayed),))
    report = detect_bounce(msg)
    assert report is not None and report.delayed and report.failed == ()
    assert parse_bounce(msg) is None


def test_x_failed_recipients_without_text() -> None:
    msg = message(sender="someone@x.example",
                  headers={"x-failed-recipients": ("A@Gone.example, b@gone.example",)})
    report = detect_bounce(msg)
    assert report is not None and report.rules == ("bounce.x-failed-recipients",)
    assert [r.recipient for r in report.recipients] == ["a@gone.example", "b@gone.example"]
    assert all(r.action == "failed" and r.permanent for r in report.recipients)


def test_text_bounce_needs_a_mail_system_sender() -> None:
    text = ("I'm afraid I wasn't able to deliver your message to the following addresses.\n"
            "<lost@example.org>:\n550 5.1.1 no mailbox\n")
    assert detect_bounce(message(text, sender="customer@example.org")) is None
    info = parse_bounce(message(text))
    assert info is not None
    assert (info.recipient, info.status, info.diagnostic) == (
        "lost@example.org", "5.1.1", "550 5.1.1 no mailbox")


def test_text_bounce_recipient_after_failure_phrase_excludes_our_address() -> None:
    text = ("Delivery to the following recipient failed permanently:\n\n"
            "     gone@example.org\n\nTechnical details: support@example.com sent it\n"
            "The error that the other server returned was: 550 User unknown\n")
    info = parse_bounce(message(text))
    assert info is not None
    assert (info.recipient, info.status) == ("gone@example.org", "5.1.1")  # "User unknown"


def test_text_delay_is_not_a_failure() -> None:
    text = ("Your message could not be delivered for 4 hours. It will keep trying.\n"
            "<slow@example.org>: connection timed out, delayed\n")
    msg = message(text, subject="Delivery delayed")
    report = detect_bounce(msg)
    assert report is not None and report.delayed
    assert report.recipients[0].status == "4.4.1"  # from "connection timed out"
    assert parse_bounce(msg) is None


def test_subject_alone_from_a_person_is_no_bounce() -> None:
    msg = message("Look at this", sender="anna@example.org", subject="Undeliverable: hello")
    assert detect_bounce(msg) is None


def test_subject_from_mail_system_without_details() -> None:
    report = detect_bounce(message("", subject="Undeliverable: hello"))
    assert report is not None and report.rules == ("bounce.subject",)
    assert report.primary == BounceInfo(None, "failed", None, None, None, None,
                                        reason="unknown")


def test_quoted_original_message_id_from_text() -> None:
    text = ("This is the qmail-send program at x.\n<a@b.example>:\nno such user\n"
            "--- Below this line is a copy of the message.\n\nMessage-Id: <orig-7@us.example>\n")
    info = parse_bounce(message(text))
    assert info is not None and info.original_message_id == "orig-7@us.example"


def test_from_mail_system() -> None:
    assert from_mail_system(message(sender="MAILER-DAEMON@x"))
    assert from_mail_system(message(sender="postmaster@x"))
    assert from_mail_system(message(sender="a@x", headers={"return-path": ("<>",)}))
    assert from_mail_system(message(sender="a@x", headers={"auto-submitted": ("auto-replied",)}))
    assert not from_mail_system(message(sender="a@x", headers={"auto-submitted": ("no",)}))
    named = ParsedMessage(message_id=None, subject="",
                          from_=Address("x@y", "Mail Delivery Subsystem"))
    assert from_mail_system(named)
    assert not from_mail_system(ParsedMessage(message_id=None, subject="", from_=None))


def test_customers_of_providers_and_gateway_vendors_are_people() -> None:
    """A provider's or vendor's domain is where customers write from: never a bounce sign."""
    text = ("Hi, your reply wasn't delivered to me, The response from the remote server was:\n"
            "550 5.1.1 User unknown. We use Sophos and Barracuda here.\n")
    for sender in ("anna@gmail.com", "ken@docomo.ne.jp", "it@sophos.example", "bo@yahoo.com",
                   "li@outlook.com", "olga@yandex.ru", "max@gmx.net"):
        assert detect_bounce(message(text, sender=sender, subject="Re: Undeliverable")) is None


def test_service_and_list_senders_count_without_mail_system_signs() -> None:
    text = ("This is an automatically generated Delivery Status Notification.\n\n"
            "Delivery to the following recipient failed permanently:\n\n    u@x.example\n\n"
            "Technical details: 550 5.1.1 no such user\n")
    info = parse_bounce(message(text, sender="pm-bounces@postmarkapp.com"))
    assert info is not None and (info.recipient, info.reason) == ("u@x.example", "user-unknown")


def test_challenge_words_in_a_real_dsn_do_not_hide_the_bounce() -> None:
    dsn = Attachment("d.txt", "message/delivery-status", DSN)
    msg = message("Please confirm you are human and ask to be added to my approved senders list",
                  attachments=(dsn,))
    report = detect_bounce(msg)
    assert report is not None and not report.challenge and len(report.failed) == 1
