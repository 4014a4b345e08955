"""The runtime configuration JSON: which CRM objects a message becomes, in the CRM's words.

This is the document the reference product calls its "Runtime Configuration Reference"
(see docs/config.md). It names limetypes and their properties: which limetype a new
conversation hangs off (``conversationParents``), how senders are found
(``followerParents``), and the property names of the conversation, message, follower,
document and error objects. The example JSON in the reference loads unchanged; so does
``{}``, because every section defaults to the reference example.

Keys are camelCase exactly as in the reference; the Python attributes are snake_case
(``RuntimeConfig.conversation_message.property_email_engine_id``), and snake_case keys are
accepted in the file too. Unknown keys are errors, so a typo cannot silently fall back to
a default.

Three interpretations are ours and are documented in docs/config.md:

* ``identificationMethod`` accepts ``"messageId"``, ``"subject"``, both as a list, or
  ``"messageId,subject"``; :attr:`RuntimeConfig.identification_methods` is the set.
* ``conversationParents[].accounts`` empty (the default) means *every account*; naming an
  account that the TOML does not configure is a warning (the reference example's
  ``"<account_id>"`` placeholder must still load), reported by :mod:`daemon.config.load`.
* ``conversationParents[].properties`` may also be the reference's simplified form, an
  object from property to value name (``{"subject": "email_subject", "source": "email"}``);
  :func:`expand_simplified_properties` turns it into the full form before validation.
"""

from __future__ import annotations

__all__ = [
    "IDENTIFICATION_METHODS",
    "MESSAGE_PROPERTIES",
    "ConversationLimetype",
    "ConversationMessageErrorLimetype",
    "ConversationMessageLimetype",
    "ConversationParent",
    "DocumentLimetype",
    "EmbeddedFileLimetype",
    "FollowerLimetype",
    "FollowerParent",
    "MessageAction",
    "MessageFollowerLimetype",
    "PropertyMapping",
    "RuntimeConfig",
    "SendMessageAction",
    "SIMPLIFIED_VALUES",
    "TextSnippetLimetype",
    "expand_simplified_properties",
    "load_runtime",
    "parse_runtime",
    "read_json",
]

import builtins
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SerializerFunctionWrapHandler,
    ValidationError,
    field_serializer,
    field_validator,
    model_serializer,
    model_validator,
)
from pydantic.alias_generators import to_camel

from daemon.config.crm import CrmNames
from daemon.config.problems import fail_at, problems_from_validation_error
from daemon.errors import ConfigError, ConfigProblem

#: The ways an incoming message is matched to an existing conversation.
IDENTIFICATION_METHODS = ("messageId", "subject")

#: What ``messageProperty`` may name: the parts of a parsed message a property can take.
MESSAGE_PROPERTIES = (
    "subject", "plainText", "htmlBody", "fromAddress", "fromName", "toAddresses",
    "ccAddresses", "date", "messageId", "language",
)

IdentificationMethod = Literal["messageId", "subject"]

_SEARCH_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+")
_FOLLOW = re.compile(r"(?P<relation>[A-Za-z][A-Za-z0-9]*)_from_(?P<start>[A-Za-z][A-Za-z0-9]*)")

#: The value names of the simplified ``properties`` form and the message value each takes.
#: ``sender_email`` on a property named after a follower parent (``person``) looks that
#: object up by address instead; ``<relation>_from_<property>`` follows a relation.
SIMPLIFIED_VALUES = {
    "email_subject": "subject",
    "email_body": "plainText",
    "sender_email": "fromAddress",
    "sender_name": "fromName",
}


class _RuntimeModel(BaseModel):
    """camelCase keys in the file, snake_case attributes, unknown keys rejected."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True,
                              alias_generator=to_camel)


# --------------------------------------------------------------------------------------
# conversationParents
# --------------------------------------------------------------------------------------

class PropertyMapping(_RuntimeModel):
    """How one property of a new conversation parent gets its value.

    ``messageProperty`` takes a value from the message; ``searchPath``
    (``"limetype.property"``) finds an object: with ``messageProperty`` it looks up the
    limetype by that property (``person.email`` = the sender's address), without it it
    follows a relation from the object found earlier (``person.company``); ``default`` is
    the value when nothing else gives one. At least one of the three is required.
    """

    property: str
    message_property: str | None = None
    search_path: str | None = None
    default: Any = None

    @builtins.property  # the field above shadows the builtin in the class body
    def has_default(self) -> bool:
        """True when the file gave ``default`` (even ``null``)."""
        return "default" in self.model_fields_set

    @field_validator("message_property")
    @classmethod
    def _known_message_property(cls, value: str | None) -> str | None:
        if value is not None and value not in MESSAGE_PROPERTIES:
            raise ValueError(f'"{value}" is not a message property; allowed: '
                             + ", ".join(MESSAGE_PROPERTIES))
        return value

    @field_validator("search_path")
    @classmethod
    def _dotted_search_path(cls, value: str | None) -> str | None:
        if value is not None and not _SEARCH_PATH.fullmatch(value):
            raise ValueError(f'"{value}" must be "limetype.property" '
                             "(dotted, at least two parts)")
        return value

    @model_serializer(mode="wrap")
    def _omit_unset(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # Dump what the file would say: no null messageProperty/searchPath, and default
        # only when given, so a loaded file dumps back to itself.
        data: dict[str, Any] = handler(self)
        for key in ("message_property", "messageProperty", "search_path", "searchPath"):
            if data.get(key, 0) is None:
                del data[key]
        if not self.has_default:
            data.pop("default", None)
        return data

    @model_validator(mode="after")
    def _has_a_source(self) -> PropertyMapping:
        if self.message_property is None and self.search_path is None and not self.has_default:
            raise ValueError("needs at least one of messageProperty, searchPath or default")
        return self


class MessageAction(_RuntimeModel):
    """The command a send-message action runs: an id and free-form params."""

    id: str
    params: dict[str, Any] = Field(default_factory=dict)


class SendMessageAction(_RuntimeModel):
    """A "Send and ..." button: run ``action`` after the message is sent."""

    action: MessageAction
    label: str
    icon: str | None = None


_DEFAULT_PROPERTIES = (
    PropertyMapping(property="subject", message_property="subject"),
    PropertyMapping(property="description", message_property="plainText"),
    PropertyMapping(property="person", message_property="fromAddress",
                    search_path="person.email"),
    PropertyMapping(property="company", search_path="person.company"),
    PropertyMapping(property="email", message_property="fromAddress"),
    PropertyMapping(property="source", default="email"),
)


class ConversationParent(_RuntimeModel):
    """The limetype a new conversation is attached to (a helpdesk ticket, a deal...).

    ``accounts`` lists the account ids whose mail creates this parent; empty means every
    account (see :meth:`RuntimeConfig.parent_for` for how one is chosen).
    """

    limetype: str
    relation_conversation: str = "conversation"
    accounts: tuple[str, ...] = ()
    properties: tuple[PropertyMapping, ...] = _DEFAULT_PROPERTIES
    send_message_actions: tuple[SendMessageAction, ...] = ()
    relation_document: str = "document"

    @model_validator(mode="after")
    def _each_property_once(self) -> ConversationParent:
        seen: set[str] = set()
        twice = []
        for index, mapping in enumerate(self.properties):
            if mapping.property in seen:
                twice.append((("properties", index, "property"),
                              f'"{mapping.property}" is mapped more than once'))
            seen.add(mapping.property)
        if twice:
            fail_at("ConversationParent", *twice)
        return self


class FollowerParent(_RuntimeModel):
    """A limetype whose objects can follow conversations (person, coworker)."""

    limetype: str
    property_address: str = "email"
    property_name: str = "name"
    relation_follower: str = "follower"


# --------------------------------------------------------------------------------------
# The limetypes postroom writes
# --------------------------------------------------------------------------------------

class ConversationLimetype(_RuntimeModel):
    limetype: str = "conversation"
    property_thread_id: str = "threadid"
    property_reply_to_id: str = "replytoid"
    property_earliest_unread: str = "earliestunread"
    property_subject: str = "subject"
    property_address: str = "email"
    property_first_message_date: str = "firstmessagedate"
    property_language: str = "language"
    property_source: str = "source"
    source_option: str = "email"


class ConversationMessageLimetype(_RuntimeModel):
    limetype: str = "conversationmessage"
    property_message: str = "message"
    property_email_engine_id: str = "emailengineid"
    property_unique_id: str = "uniqueid"
    property_email_id: str = "emailid"
    property_date: str = "date"
    property_source: str = "source"
    relation_conversation: str = "conversation"


class FollowerLimetype(_RuntimeModel):
    limetype: str = "follower"
    property_name: str = "name"
    property_address: str = "email"
    property_active: str = "active"
    property_subscribed: str = "subscribed"
    relation_conversation: str = "conversation"


class MessageFollowerLimetype(_RuntimeModel):
    limetype: str = "messagefollower"
    property_participation_level: str = "participationlevel"
    property_message_id: str = "messageid"
    property_queue_id: str = "queueid"
    relation_follower: str = "follower"
    relation_conversation_message: str = "conversationmessage"


class DocumentLimetype(_RuntimeModel):
    limetype: str = "document"
    property_comment: str = "comment"
    property_type: str = "type"
    document_type: str = "other"
    property_document: str = "document"
    relation_conversation_message: str = "conversationmessage"


class EmbeddedFileLimetype(_RuntimeModel):
    limetype: str = "embeddedfile"
    property_document: str = "document"
    relation_conversation_message: str = "conversationmessage"


class TextSnippetLimetype(_RuntimeModel):
    limetype: str = "textsnippet"
    property_text: str = "text"
    property_description: str = "description"
    property_type: str = "type"
    property_status: str = "textsnippetstatus"
    property_language: str = "language"
    property_count: str = "count"
    property_last_used: str = "lastused"
    property_pinned: str = "pinned"


class ConversationMessageErrorLimetype(_RuntimeModel):
    limetype: str = "conversationmessageerror"
    property_type: str = "type"
    property_error_message: str = "errormessage"
    property_date: str = "date"
    property_resolved_date: str = "resolveddate"
    relation_resolved_by: str = "coworker"
    relation_message_follower: str = "messagefollower"


# --------------------------------------------------------------------------------------
# The document
# --------------------------------------------------------------------------------------

_DEFAULT_PARENTS = (ConversationParent(limetype="helpdesk"),)
_DEFAULT_FOLLOWER_PARENTS = (FollowerParent(limetype="person"),
                             FollowerParent(limetype="coworker"))


class RuntimeConfig(_RuntimeModel):
    """The whole runtime configuration. ``RuntimeConfig()`` is the reference example
    with ``accounts`` empty (every account)."""

    personalized_emails: bool = True
    identification_method: tuple[IdentificationMethod, ...] = ("messageId",)
    allow_automatic_emails: bool = True
    conversation_parents: tuple[ConversationParent, ...] = _DEFAULT_PARENTS
    follower_parents: tuple[FollowerParent, ...] = _DEFAULT_FOLLOWER_PARENTS
    conversation: ConversationLimetype = ConversationLimetype()
    conversation_message: ConversationMessageLimetype = ConversationMessageLimetype()
    follower: FollowerLimetype = FollowerLimetype()
    message_follower: MessageFollowerLimetype = MessageFollowerLimetype()
    document: DocumentLimetype = DocumentLimetype()
    embedded_file: EmbeddedFileLimetype = EmbeddedFileLimetype()
    text_snippet: TextSnippetLimetype = TextSnippetLimetype()
    conversation_message_error: ConversationMessageErrorLimetype = (
        ConversationMessageErrorLimetype())
    _crm: CrmNames = PrivateAttr(default_factory=CrmNames)

    @property
    def crm(self) -> CrmNames:
        """The ``[crm]`` names of the TOML (defaults until :meth:`with_crm`)."""
        return self._crm

    def with_crm(self, crm: CrmNames) -> RuntimeConfig:
        """A copy that carries the TOML's ``[crm]`` names (see :mod:`daemon.config.crm`)."""
        copy = self.model_copy()
        copy._crm = crm
        return copy

    @property
    def identification_methods(self) -> frozenset[str]:
        """``{"messageId"}``, ``{"subject"}`` or both."""
        return frozenset(self.identification_method)

    def parent_for(self, account_id: str) -> ConversationParent | None:
        """The parent a new conversation of ``account_id`` hangs off.

        An entry listing the account wins; then the first with an empty ``accounts`` (every
        account); then, when only one entry exists, that one, so the reference example's
        ``"<account_id>"`` placeholder still serves every account. None when no entry
        applies.
        """
        parents = self.conversation_parents
        for parent in parents:
            if account_id in parent.accounts:
                return parent
        for parent in parents:
            if not parent.accounts:
                return parent
        return parents[0] if len(parents) == 1 else None

    @field_validator("identification_method", mode="before")
    @classmethod
    def _split_methods(cls, value: Any) -> Any:
        methods = [p.strip() for p in value.split(",")] if isinstance(value, str) else value
        if not isinstance(methods, list | tuple) or not methods:
            raise ValueError('must be "messageId", "subject", or both '
                             '(a list, or "messageId,subject")')
        for method in methods:
            if method not in IDENTIFICATION_METHODS:
                raise ValueError(f'{json.dumps(method)} is not an identification method; '
                                 'allowed: messageId, subject')
        return tuple(dict.fromkeys(methods))

    @field_serializer("identification_method")
    def _join_methods(self, value: tuple[str, ...]) -> str | list[str]:
        return value[0] if len(value) == 1 else list(value)

    @field_validator("conversation_parents")
    @classmethod
    def _at_least_one_parent(cls, value: tuple[ConversationParent, ...]) -> Any:
        if not value:
            raise ValueError("needs at least one conversation parent "
                             "(leave the key out for the default helpdesk parent)")
        return value


def expand_simplified_properties(properties: Mapping[str, Any],
                                 addresses: Mapping[str, str]) -> list[dict[str, Any]]:
    """The full ``properties`` entries for the reference's simplified form.

    Each ``"property": value`` becomes one entry, in order:

    * ``email_subject``, ``email_body``, ``sender_name``: that message value
      (``subject``, ``plainText``, ``fromName``);
    * ``sender_email``: the sender's address, or — on a property named after a follower
      parent limetype (``"person": "sender_email"``) — the object of that limetype with
      that address (``searchPath`` ``person.email``);
    * ``<relation>_from_<property>`` (``company_from_person``): follow ``relation`` from
      the object an earlier property found (``searchPath`` ``person.company``);
    * anything else (``"source": "email"``, a number, ``true``, ``null``): the literal value.

    Args:
        properties: the simplified object.
        addresses: each follower parent's limetype and address property.
    """
    entries: list[dict[str, Any]] = []
    for prop, value in properties.items():
        entry: dict[str, Any] = {"property": prop}
        follow = _FOLLOW.fullmatch(value) if isinstance(value, str) else None
        if value == "sender_email" and prop in addresses:
            entry |= {"messageProperty": "fromAddress",
                      "searchPath": f"{prop}.{addresses[prop]}"}
        elif isinstance(value, str) and value in SIMPLIFIED_VALUES:
            entry["messageProperty"] = SIMPLIFIED_VALUES[value]
        elif follow is not None:
            entry["searchPath"] = f"{follow['start']}.{follow['relation']}"
        else:
            entry["default"] = value
        entries.append(entry)
    return entries


def _expand_parents(data: Mapping[str, Any]) -> Mapping[str, Any]:
    """``data`` with every simplified ``conversationParents[].properties`` expanded."""
    key = next((k for k in ("conversationParents", "conversation_parents") if k in data),
               None)
    parents = data.get(key) if key else None
    if not isinstance(parents, list) or not any(
            isinstance(p, Mapping) and isinstance(p.get("properties"), Mapping)
            for p in parents):
        return data
    followers = data.get("followerParents", data.get("follower_parents"))
    addresses = {"person": "email", "coworker": "email"}
    if isinstance(followers, list):
        addresses = {f["limetype"]: str(f.get("propertyAddress",
                                              f.get("property_address", "email")))
                     for f in followers
                     if isinstance(f, Mapping) and isinstance(f.get("limetype"), str)}
    expanded = [
        {**p, "properties": expand_simplified_properties(p["properties"], addresses)}
        if isinstance(p, Mapping) and isinstance(p.get("properties"), Mapping) else p
        for p in parents]
    return {**data, str(key): expanded}


def parse_runtime(data: Any, *, file: str) -> RuntimeConfig:
    """Validate the decoded runtime JSON.

    Args:
        data: the decoded document (must be a JSON object).
        file: the file name as the user gave it, for error messages.

    Returns:
        The runtime configuration.

    Raises:
        ConfigError: every problem found, with camelCase paths such as
            ``conversationParents[0].properties[2].messageProperty``.
    """
    if not isinstance(data, Mapping):
        raise ConfigError([ConfigProblem(file, "", "must be a JSON object")])
    try:
        return RuntimeConfig.model_validate(_expand_parents(data))
    except ValidationError as exc:
        raise ConfigError(problems_from_validation_error(
            exc, file=file, model=RuntimeConfig, flavour="json")) from None


def load_runtime(path: str | Path) -> RuntimeConfig:
    """Read and validate a runtime configuration JSON file.

    Args:
        path: the file; its name appears in error messages as given.

    Raises:
        ConfigError: the file is missing, is not valid JSON (``line L, column C``), or
            does not validate.
    """
    return parse_runtime(read_json(path, file=str(path)), file=str(path))


def read_json(path: str | Path, *, file: str) -> Any:
    """Decode a JSON file, reporting a syntax error as ``file: line L, column C: reason``.

    Raises:
        ConfigError: the file cannot be read or is not valid JSON.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([ConfigProblem(file, "", f'no such file "{path}"')]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([ConfigProblem(file, "", f"cannot be read: {exc}")]) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno}, column {exc.colno}"
        raise ConfigError([ConfigProblem(file, where, exc.msg)]) from None
