"""The sentences postroom writes into outgoing mail, in the account's language.

The merge codes ``conversation_update_info``, ``other_followers_info`` and ``reply_info``
and the "... wrote:" lines of the quoted history are ours to word; everything else in a
message is the template's or the agent's. The language is the account's ``language``
("Language for automatic emails"): English, Swedish, Norwegian (Bokmål, ``nb``), Danish,
Finnish, German, Dutch, French and Spanish, all written by us. A regional tag uses its
primary subtag (``sv-FI`` -> ``sv``); ``check-config`` rejects a language that has neither
(:func:`has_phrases`), so the English fallback of :func:`phrases_for` is only a safety net.
Adding a language is adding one :class:`Phrases` value to :data:`CATALOGUE`.

Placeholders are ``str.format`` fields, filled with plain text; the template escapes them.
"""

from __future__ import annotations

__all__ = ["CATALOGUE", "Phrases", "has_phrases", "phrases_for"]

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
    "nb": Phrases(
        update_reply="{sender} svarte i samtalen «{subject}».",
        update_notification="{sender} ({address}) skrev i samtalen «{subject}».",
        update_auto_reply="Vi har mottatt meldingen din «{subject}».",
        others="Denne meldingen ble også sendt til {names}.",
        reply_info="Svar på denne e-posten for å svare; alle som følger samtalen, "
                   "ser svaret ditt.",
        reply_info_auto="Svar på denne e-posten hvis du vil legge til noe i saken din.",
        wrote="{date} skrev {sender}:",
        attachments_omitted="Vedleggene var for store til å videresendes på e-post: "
                            "{names}.",
    ),
    "da": Phrases(
        update_reply="{sender} svarede i samtalen »{subject}«.",
        update_notification="{sender} ({address}) skrev i samtalen »{subject}«.",
        update_auto_reply="Vi har modtaget din besked »{subject}«.",
        others="Denne besked blev også sendt til {names}.",
        reply_info="Svar på denne e-mail for at svare; alle, der følger samtalen, "
                   "kan se dit svar.",
        reply_info_auto="Svar på denne e-mail, hvis du vil tilføje noget til din sag.",
        wrote="{date} skrev {sender}:",
        attachments_omitted="Vedhæftningerne var for store til at blive videresendt pr. "
                            "e-mail: {names}.",
    ),
    "fi": Phrases(
        update_reply="{sender} vastasi keskusteluun ”{subject}”.",
        update_notification="{sender} ({address}) kirjoitti keskusteluun ”{subject}”.",
        update_auto_reply="Olemme vastaanottaneet viestisi ”{subject}”.",
        others="Tämä viesti lähetettiin myös vastaanottajille {names}.",
        reply_info="Vastaa tähän sähköpostiin; kaikki keskustelua seuraavat näkevät "
                   "vastauksesi.",
        reply_info_auto="Vastaa tähän sähköpostiin, jos haluat lisätä jotain asiaasi.",
        wrote="{date} {sender} kirjoitti:",
        attachments_omitted="Liitteet olivat liian suuria lähetettäviksi sähköpostitse: "
                            "{names}.",
    ),
    "nl": Phrases(
        update_reply="{sender} heeft gereageerd in het gesprek ‘{subject}’.",
        update_notification="{sender} ({address}) schreef in het gesprek ‘{subject}’.",
        update_auto_reply="We hebben uw bericht ‘{subject}’ ontvangen.",
        others="Dit bericht is ook verstuurd naar {names}.",
        reply_info="Beantwoord deze e-mail om te reageren; iedereen die het gesprek volgt, "
                   "ziet uw antwoord.",
        reply_info_auto="Beantwoord deze e-mail als u iets aan uw melding wilt toevoegen.",
        wrote="Op {date} schreef {sender}:",
        attachments_omitted="De bijlagen waren te groot om per e-mail door te sturen: "
                            "{names}.",
    ),
    "fr": Phrases(
        update_reply="{sender} a répondu dans la conversation « {subject} ».",
        update_notification="{sender} ({address}) a écrit dans la conversation "
                            "« {subject} ».",
        update_auto_reply="Nous avons bien reçu votre message « {subject} ».",
        others="Ce message a aussi été envoyé à {names}.",
        reply_info="Répondez à cet e-mail pour répondre ; toutes les personnes qui suivent "
                   "la conversation verront votre réponse.",
        reply_info_auto="Répondez à cet e-mail si vous souhaitez compléter votre demande.",
        wrote="Le {date}, {sender} a écrit :",
        attachments_omitted="Les pièces jointes étaient trop volumineuses pour être "
                            "transférées par e-mail : {names}.",
    ),
    "es": Phrases(
        update_reply="{sender} respondió en la conversación «{subject}».",
        update_notification="{sender} ({address}) escribió en la conversación «{subject}».",
        update_auto_reply="Hemos recibido su mensaje «{subject}».",
        others="Este mensaje también se envió a {names}.",
        reply_info="Responda a este correo para contestar; todas las personas que siguen "
                   "la conversación verán su respuesta.",
        reply_info_auto="Responda a este correo si desea añadir algo a su caso.",
        wrote="El {date}, {sender} escribió:",
        attachments_omitted="Los archivos adjuntos eran demasiado grandes para reenviarlos "
                            "por correo: {names}.",
    ),
}


def has_phrases(language: str) -> bool:
    """Whether ``language`` (or its primary subtag) has a catalogue."""
    tag = language.lower()
    return tag in CATALOGUE or tag.split("-")[0] in CATALOGUE


def phrases_for(language: str) -> Phrases:
    """The catalogue for ``language`` (a tag like ``sv`` or ``sv-FI``), else English."""
    tag = language.lower()
    return CATALOGUE.get(tag) or CATALOGUE.get(tag.split("-")[0]) or CATALOGUE["en"]
