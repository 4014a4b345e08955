"""Mail providers and sending services: Google, Yahoo/AOL, Amazon SES, SendGrid, Mailgun,
Postmark, Zoho, Yandex, GMX/Web.de/1&1 (IONOS).

Most of them send an RFC 3464 part as well; these layouts are for the text-only reports
and for the providers' own wording:

* Gmail / Google Workspace: "Delivery to the following recipient failed permanently:"
  (older), "** Address not found **", "Your message wasn't delivered to ann@x because
  ...", "The response from the remote server was:".
* Google Groups: "the group you tried to contact (name) may not exist, or you may not have
  permission to post messages to the group".
* Yahoo / AOL: "Sorry, we were unable to deliver your message to the following address."
  then qmail-like ``<rcpt>:`` blocks with "Remote host said:".
* Amazon SES: "An error occurred while trying to deliver the mail to the following
  recipients:".
* SendGrid, Mailgun, Postmark forward the receiving server's words with their own
  lead-in: "could not be delivered to", "Delivery to the following recipients failed",
  "This is an automatically generated Delivery Status Notification".
* Zoho: "This message was created automatically by mail delivery software." with
  "Reason:"; Yandex: Russian "Сообщение не доставлено" or Postfix text; GMX/Web.de/1&1:
  German "Diese Nachricht wurde automatisch vom Mailsystem erzeugt" and
  "konnte nicht zugestellt werden".
"""

from __future__ import annotations

__all__ = ["FORMATS"]

from daemon.mail.bounces.report import TextFormat, pattern

FORMATS: tuple[TextFormat, ...] = (
    TextFormat(
        "google-groups",
        pattern(r"the group you tried to contact \([^)\n]{1,200}\) may not exist"),
        inline=pattern(r"wasn't delivered to ", r"Your message to ")),
    TextFormat(
        "gmail",
        pattern(r"Delivery to the following recipients? failed permanently",
                r"Address not found \*\*", r"Message not delivered \*\*",
                r"Your message wasn't delivered to ", r"Google tried to deliver your message",
                r"The response from the remote server was:"),
        start=pattern(r"failed permanently:"),
        inline=pattern(r"Your message wasn't delivered to ", r"wasn't delivered to ")),
    TextFormat(
        "yahoo",
        pattern(r"Sorry, we were unable to deliver your message to the following address",
                r"Message from yahoo\.com\.", r"Unable to deliver message to the following"
                r" address"),
        start=pattern(r"to the following address(?:\(es\)|es)?\.?")),
    TextFormat(
        "amazon-ses",
        pattern(r"An error occurred while trying to deliver the mail to the following"
                r" recipients"),
        start=pattern(r"to the following recipients:"),
        senders=("@amazonses.com", ".amazonses.com", "amazonaws.com")),
    TextFormat(
        "sendgrid",
        pattern(r"sendgrid", r"Your message could not be delivered to "),
        inline=pattern(r"could not be delivered to "),
        senders=("sendgrid.net", "sendgrid.com")),
    TextFormat(
        "mailgun",
        pattern(r"mailgun", r"Delivery to the following recipients? failed\.?"),
        start=pattern(r"Delivery to the following recipients? failed\.?"),
        senders=("mailgun.org", "mailgun.net", "mailgun.com")),
    TextFormat(
        "postmark",
        pattern(r"postmarkapp", r"This is an automatically generated Delivery Status"
                r" Notification"),
        start=pattern(r"Delivery to the following recipients? failed(?: permanently)?:?"),
        inline=pattern(r"could not be delivered to "),
        senders=("postmarkapp.com", "pm-bounces")),
    TextFormat(
        "zoho",
        pattern(r"zoho", r"Your message to \S{1,320} could not be delivered"),
        inline=pattern(r"Your message to ", r"could not be delivered to ")),
    TextFormat(
        "yandex",
        pattern(r"Сообщение не доставлено|Ваше сообщение не (?:было )?доставлено",
                r"не может быть доставлено", r"yandex"),
        inline=pattern(r"не (?:было )?доставлено (?:по адресу|получателю)[:]?[ \t]{0,5}",
                       r"recipient[:]?[ \t]{0,5}")),
    TextFormat(
        "gmx",
        pattern(r"Diese Nachricht wurde automatisch vom Mailsystem erzeugt",
                r"mout\.(?:gmx|web|kundenserver)\."),
        start=pattern(r"Empfänger(?:adressen?)?[^\n]{0,60}:", r"following address(?:\(es\)|es)?"
                      r"[ \t\n]{1,5}failed:")),
)
