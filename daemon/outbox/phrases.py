"""The sentences postroom writes into outgoing mail, in the account's language.

The merge codes ``conversation_update_info``, ``other_followers_info`` and ``reply_info``
and the "... wrote:" lines of the quoted history are ours to word; everything else in a
message is the template's or the agent's. The language is the account's ``language``
("Language for automatic emails"); a tag we have no catalogue for falls back to its
primary subtag (``pt-BR`` -> ``pt``), then to English. Adding a language is adding one
:class:`Phrases` value to :data:`CATALOGUE`.

Placeholders are ``str.format`` fields, filled with plain text; the template escapes them.
"""

from __future__ import annotations

__all__ = ["CATALOGUE", "Phrases", "phrases_for"]

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Phrases:
    """One language's sentences (``{sender}``, ``{subject}``, ``{names}``... are filled in).

    Attributes:
        update_reply: an agent answered (``{sender}``, ``{subject}``).
        update_notification: another follower wrote (``{sender}``, ``{address}``,
            ``{subject}``).
        update_auto_reply: the automatic reply to a new conversation (``{subject}``).
        others: who else got this message (``{names}``).
        reply_info: how answering works, for replies and notifications.
        reply_info_auto: the same, for the automatic reply.
        wrote: the line above a quoted older message (``{date}``, ``{sender}``).
        attachments_omitted: a notification too large to carry its files (``{names}``).
    """

    update_reply: str
    update_notification: str
    update_auto_reply: str
    others: str
    reply_info: str
    reply_info_auto: str
    wrote: str
    attachments_omitted: str


CATALOGUE: dict[str, Phrases] = {
    "en": Phrases(
        update_reply="{sender} replied in the conversation “{subject}”.",
        update_notification="{sender} ({address}) wrote in the conversation “{subject}”.",
        update_auto_reply="We have received your message “{subject}”.",
        others="This message was also sent to {names}.",
        reply_info="Reply to this email to answer; everyone following the conversation "
                   "will see your answer.",
        reply_info_auto="Reply to this email if you want to add anything to your case.",
        wrote="On {date}, {sender} wrote:",
        attachments_omitted="The attachments were too large to forward by email: {names}.",
    ),
    "sv": Phrases(
        update_reply="{sender} svarade i konversationen ”{subject}”.",
        update_notification="{sender} ({address}) skrev i konversationen ”{subject}”.",
        update_auto_reply="Vi har tagit emot ditt meddelande ”{subject}”.",
        others="Meddelandet skickades även till {names}.",
        reply_info="Svara på det här mejlet för att svara; alla som följer konversationen "
                   "ser ditt svar.",
        reply_info_auto="Svara på det här mejlet om du vill lägga till något i ditt ärende.",
        wrote="{date} skrev {sender}:",
        attachments_omitted="Bilagorna var för stora för att skickas vidare med e-post: "
                            "{names}.",
    ),
    "de": Phrases(
        update_reply="{sender} hat in der Unterhaltung „{subject}“ geantwortet.",
        update_notification="{sender} ({address}) hat in der Unterhaltung „{subject}“ "
                            "geschrieben.",
        update_auto_reply="Wir haben Ihre Nachricht „{subject}“ erhalten.",
        others="Diese Nachricht ging auch an {names}.",
        reply_info="Antworten Sie auf diese E-Mail; alle, die der Unterhaltung folgen, "
                   "sehen Ihre Antwort.",
        reply_info_auto="Antworten Sie auf diese E-Mail, wenn Sie etwas ergänzen möchten.",
        wrote="Am {date} schrieb {sender}:",
        attachments_omitted="Die Anhänge waren zu groß für den Versand per E-Mail: {names}.",
    ),
}


def phrases_for(language: str) -> Phrases:
    """The catalogue for ``language`` (a tag like ``sv`` or ``pt-BR``), else English."""
    tag = language.lower()
    return CATALOGUE.get(tag) or CATALOGUE.get(tag.split("-")[0]) or CATALOGUE["en"]
