"""Text reports of the Unix MTAs: Postfix, Exim, Sendmail (8.6 to 8.16), qmail, Courier.

Each writes its own words above the list of failed recipients (quoted from their sources'
templates and documentation):

* Postfix ``bounce(8)``: "This is the mail system at host ..." and "The mail system",
  then ``<rcpt>: host mx[ip] said: 550 ...``.
* Exim: "This message was created automatically by mail delivery software." and "The
  following address(es) failed:", then the address indented, the reason below it.
* Sendmail: "----- The following addresses had permanent fatal errors -----" (8.9+),
  "----- Transcript of session follows -----" with ``... User unknown`` lines (8.6 and
  8.8 put only the transcript), "Returned mail: see transcript for details".
* qmail ``qmail-send``: "Hi. This is the qmail-send program at ...", then
  ``<rcpt>:`` and the remote reply; old versions say only "(#5.1.1)".
* Courier: "This is a delivery status notification from ..., running the Courier mail
  server", "UNDELIVERABLE MAIL".
"""

from __future__ import annotations

__all__ = ["FORMATS"]

from daemon.mail.bounces.report import TextFormat, pattern

FORMATS: tuple[TextFormat, ...] = (
    TextFormat(
        "qmail",
        pattern(r"This is the qmail-send program", r"I'm afraid I wasn't able to deliver your"
                r" message", r"I'm not going to try again; this message has been in the queue"),
        start=pattern(r"following addresses\.?", r"Sorry it didn't work out\.?"),
        ),
    TextFormat(
        "courier",
        pattern(r"running the Courier mail server", r"UNDELIVERABLE MAIL[ \t]*$"),
        start=pattern(r"cannot be delivered:", r"UNDELIVERABLE MAIL")),
    TextFormat(
        "postfix",
        pattern(r"This is the mail system at host", r"The mail system[ \t]*$",
                r"This is the Postfix program at host"),
        start=pattern(r"^[ \t]{1,40}The mail system[ \t]*$")),
    TextFormat(
        "exim",
        pattern(r"This message was created automatically by mail delivery software",
                r"following address(?:\(es\)|es)? failed", r"This is a copy of the message,"
                r" including all the headers"),
        start=pattern(r"following address(?:\(es\)|es)?[ \t\n]{1,5}failed:",
                      r"recipients?\. This is a permanent error\.")),
    TextFormat(
        "sendmail",
        pattern(r"The following addresses had (?:permanent fatal|delivery|transient"
                r" non-fatal) errors", r"Transcript of session follows",
                r"Returned mail: (?:see transcript|User unknown|Host unknown|Service unavailable"
                r"|Cannot send message|Deferred|Unable to deliver)",
                r"The original message was received at"),
        start=pattern(r"-{3,} The following addresses had [a-z -]{1,40}errors -{3,}",
                      r"-{3,} Transcript of session follows -{3,}"),
        end=pattern(r"^[ \t]{0,10}-{3,}[ \t]{0,5}(?:Original message|Message header follows"
                    r"|Unsent message|Returned message|Original message follows)",
                    r"^Content-Type:[ \t]{0,5}message/rfc822")),
)
