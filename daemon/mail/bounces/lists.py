"""Mailing-list managers (FML, Mailman, Sympa, majordomo) refusing a post.

A list that refuses our message is a failure for that recipient (the list address), with
reason ``rejected`` or ``filtered``: "Your message to the NAME mailing-list was rejected
for the following reasons" (Mailman), "You are not a member of this mailing list" and
"the following addresses are not members" (FML), "Your message for list NAME has been
rejected" (Sympa). A post "held for moderator approval" is not refused and is left alone
(see :data:`HELD`).
"""

from __future__ import annotations

__all__ = ["FORMATS", "HELD"]

from daemon.mail.bounces.report import TextFormat, pattern

HELD = pattern(r"awaits moderator approval|held for (?:moderator|moderation|approval)"
               r"|is being held until the list moderator")
"""Words of a list that holds (not refuses) a post; such mail is no bounce."""

FORMATS: tuple[TextFormat, ...] = (
    TextFormat(
        "mailman",
        pattern(r"mailing[- ]list was rejected for the following reasons?",
                r"Your message (?:for|to) (?:the )?(?:list )?\S{1,200}(?: mailing[- ]list)?"
                r" (?:was|has been) rejected", r"Rejected posting to"),
        inline=pattern(r"Your message to the ", r"Your message (?:for|to) (?:the )?list "),
        senders=("-owner@", "-bounces@", "-admin@", "-request@", "mailman", "sympa", "listserv")),
    TextFormat(
        "fml",
        pattern(r"You are not a member of (?:this|the) mailing list",
                r"fml\b[^\n]{0,40}(?:rejected|not a member|deny)",
                r"are not members? of (?:the )?ML"),
        inline=pattern(r"mailing list[ \t]{0,5}<?", r"members? of (?:the )?ML[ \t]{0,5}<?"),
        senders=("-admin@", "-ctl@", "-owner@", "fml")),
)
