"""Commercial and Windows mail servers: Lotus Notes/Domino, Ipswitch iMail, MDaemon.

* Domino: "Your message ... was not delivered to: ... because: ..." (the address list
  and the reason in separate paragraphs; "not listed in Domino Directory", "User ...
  not listed in public Name & Address Book").
* iMail: "Internet Mail Delivery" as the sender, "Failed to deliver to '<rcpt>'" and
  "SMTP module(domain x) reports:".
* MDaemon: "The attached message had PERMANENT fatal delivery errors!", a session
  transcript, and warnings saying "YOU DO NOT NEED TO RESEND YOUR MESSAGE".
"""

from __future__ import annotations

__all__ = ["FORMATS"]

from daemon.mail.bounces.report import TextFormat, pattern

FORMATS: tuple[TextFormat, ...] = (
    TextFormat(
        "domino",
        pattern(r"was not delivered to:", r"not listed in (?:Domino Directory|public Name"
                r" (?:&|and) Address Book)", r"Lotus Notes|Lotus Domino|Domino Directory"),
        start=pattern(r"was not delivered to:")),
    TextFormat(
        "imail",
        pattern(r"Failed to deliver to '", r"SMTP module\(domain [^)\n]{1,255}\) reports:",
                r"Internet Mail Delivery"),
        inline=pattern(r"Failed to deliver to '", r"Unknown user: "),
        senders=("internet mail delivery",)),
    TextFormat(
        "mdaemon",
        pattern(r"The attached message had PERMANENT fatal delivery errors",
                r"The attached message has not yet been delivered",
                r"MDaemon|--- Session Transcript ---"),
        start=pattern(r"--- Session Transcript ---"),
        inline=pattern(r"RCPT TO:[ \t]{0,5}<?", r"The following recipients? (?:could not"
                       r" be|was not) delivered:?[ \t\n]{0,5}"),
        senders=("mdaemon@",)),
)
