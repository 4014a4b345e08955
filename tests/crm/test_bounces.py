"""Bounces through the whole pipeline: every recipient of a report, decisions by reason."""

from __future__ import annotations

import pytest

from daemon.messages import OutcomeStatus
from tests.crm.conftest import mail

# Exim's text layout without a DSN part: two recipients, one unknown, one over quota.
EXIM_TWO = """\
Return-Path: <>
From: Mail Delivery System <Mailer-Daemon@relay.a.example>
To: support@a.example
Subject: Mail delivery failed: returning message to sender
Message-ID: <E1tTwo-0001@relay.a.example>
X-Failed-Recipients: lisa@acme.example, tom@acme.example
Auto-Submitted: auto-replied

This message was created automatically by mail delivery software.

A message that you sent could not be delivered to one or more of its
recipients. This is a permanent error. The following address(es) failed:

  lisa@acme.example
    host mx.acme.example [192.0.2.10]
    SMTP error from remote mail server after RCPT TO:<lisa@acme.example>:
    550 5.1.1 <lisa@acme.example>: Recipient address rejected: User unknown
  tom@acme.example
    host mx.acme.example [192.0.2.10]
    SMTP error from remote mail server after RCPT TO:<tom@acme.example>:
    552 Mailbox full

------ This is a copy of the message, including all the headers. ------

From: support@a.example
To: lisa@acme.example, tom@acme.example
Subject: Re: Help please
Message-ID: <out-7.lisa@a.example>

We are on it.
"""

# The same two recipients as an RFC 3464 report.
DSN_TWO = """\
From: Mail Delivery System <MAILER-DAEMON@mx.a.example>
To: support@a.example
Subject: Undelivered Mail Returned to Sender
Message-ID: <dsn-two@mx.a.example>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B"

--B
Content-Type: text/plain

Your message could not be delivered to two recipients.

--B
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.a.example

Final-Recipient: rfc822; lisa@acme.example
Action: failed
Status: 5.1.1
Diagnostic-Code: smtp; 550 5.1.1 User unknown

Final-Recipient: rfc822; tom@acme.example
Action: failed
Status: 5.2.2
Diagnostic-Code: smtp; 552 5.2.2 Mailbox full

--B
Content-Type: text/rfc822-headers

From: support@a.example
To: lisa@acme.example
Subject: Re: Help please
Message-ID: <out-7.lisa@a.example>

--B--
"""


async def _two_followers(h):
    """An incoming message cc'ing Lisa and Tom, and our reply's copy to each (as queued)."""
    await h.feed(mail(message_id="m1@acme.example", cc="lisa@acme.example, tom@acme.example"))
    message = await h.one("conversationmessage")
    ids = {}
    for name in ("lisa", "tom"):
        follower = await h.one("follower", email=f"{name}@acme.example")
        ids[name] = await h.store.run(lambda tx, f=follower, n=name: tx.create(
            "messagefollower", {"follower": f.id, "conversationmessage": message.id,
                                "participationlevel": "to", "direction": "outgoing",
                                "messageid": f"out-7.{n}@a.example"}))
    return ids


@pytest.mark.parametrize("report", [EXIM_TWO, DSN_TWO], ids=["exim-text", "rfc3464"])
async def test_two_recipient_report_records_an_error_on_both_message_followers(
        make_harness, report):
    h = await make_harness()
    ids = await _two_followers(h)
    outcome = await h.feed(report.replace("\n", "\r\n").encode())
    assert outcome.status is OutcomeStatus.IMPORTED
    errors = {e.get("recipient"): e for e in await h.find("conversationmessageerror")}
    assert set(errors) == {"lisa@acme.example", "tom@acme.example"}
    assert errors["lisa@acme.example"].get("messagefollower") == ids["lisa"]
    assert errors["tom@acme.example"].get("messagefollower") == ids["tom"]
    assert errors["lisa@acme.example"].get("reason") == "user-unknown"
    assert errors["tom@acme.example"].get("reason") == "mailbox-full"
    assert errors["lisa@acme.example"].get("status") == "5.1.1"
    assert errors["tom@acme.example"].get("status") == "5.2.2"
    assert "[mailbox-full]" in errors["tom@acme.example"].get("errormessage")
    # a permanent reason marks the follower failing, a temporary one does not
    assert (await h.one("follower", email="lisa@acme.example")).get("failing") is True
    assert (await h.one("follower", email="tom@acme.example")).get("failing") is not True
    assert len(await h.find("conversation")) == 1


DELAY = """\
Return-Path: <>
From: MAILER-DAEMON@relay.a.example
To: support@a.example
Subject: Warning: message 1tDelay-0002 delayed 24 hours
Message-ID: <E1tDelay-0002@relay.a.example>
Auto-Submitted: auto-replied

This message was created automatically by mail delivery software.
A message that you sent has not yet been delivered to one or more of its
recipients after more than 24 hours on the queue on relay.a.example.

  lisa@acme.example
    Delay reason: SMTP error from remote mail server after RCPT TO:<lisa@acme.example>:
    451 4.3.0 Temporary local problem

No action is required on your part. Delivery attempts will continue for some time,
and this warning may be repeated at intervals if the message remains undelivered.

------ This is a copy of the message's headers. ------

Message-ID: <out-7.lisa@a.example>
"""


async def test_delay_warning_records_no_error(make_harness):
    h = await make_harness(runtime={"allowAutomaticEmails": True})
    await _two_followers(h)
    outcome = await h.feed(DELAY.replace("\n", "\r\n").encode())
    assert "bounce.delayed" in outcome.rules
    assert await h.find("conversationmessageerror") == []
    assert (await h.one("follower", email="lisa@acme.example")).get("failing") is not True


async def test_a_later_success_report_clears_nothing(make_harness):
    h = await make_harness(runtime={"allowAutomaticEmails": True})
    await _two_followers(h)
    await h.feed(DSN_TWO.replace("\n", "\r\n").encode())
    ok = "Action: delivered\nStatus: 2.0.0"
    delivered = (DSN_TWO.replace("Action: failed\nStatus: 5.1.1", ok)
                 .replace("Action: failed\nStatus: 5.2.2", ok).replace("dsn-two@", "dsn-three@"))
    outcome = await h.feed(delivered.replace("\n", "\r\n").encode())
    assert "bounce.delivered" in outcome.rules
    assert len(await h.find("conversationmessageerror")) == 2  # still there, to be resolved
    assert (await h.one("follower", email="lisa@acme.example")).get("failing") is True
