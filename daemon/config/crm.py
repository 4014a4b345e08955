"""The ``[crm]`` table: :class:`CrmNames`, the property names the runtime JSON has no key for.

The runtime JSON (:mod:`daemon.config.runtime`) names most of what postroom writes, in the
reference's own keys. A few properties it has no key for: the message's subject, plain
text, sender, direction, kind, rules and account; the conversation's link to its previous
conversation and to its parent; an embedded file's Content-ID; a coworker's groups; an
error record's status, recipient and outbox item; a follower's ``failing`` mark; and the
human-facing number of a conversation parent. ``[crm]`` names them, with today's names
as defaults, so a CRM schema with other property names needs no code.

The names reach the code through the runtime configuration: ``load_config`` attaches them
(:meth:`daemon.config.runtime.RuntimeConfig.with_crm`), and code that has the runtime
reads ``runtime.crm.message_subject``. ``RuntimeConfig()`` on its own carries the defaults.
"""

from __future__ import annotations

__all__ = ["DEFAULT_PARENT_NUMBERS", "CrmNames"]

import re
from collections.abc import Mapping
from typing import Annotated

from pydantic import AfterValidator, Field, field_validator

from daemon.config.fields import _TomlModel

_NAME = re.compile(r"[A-Za-z0-9_]+")

#: ``parent_numbers`` when ``[crm]`` does not set it: a ticket's ``helpdesknumber``.
DEFAULT_PARENT_NUMBERS: Mapping[str, str] = {"helpdesk": "helpdesknumber"}


def _property_name(value: str) -> str:
    if not _NAME.fullmatch(value):
        raise ValueError(f'"{value}" is not a property name (letters, digits and _)')
    return value


Name = Annotated[str, AfterValidator(_property_name)]


class CrmNames(_TomlModel):
    """``[crm]``: CRM property names outside the runtime JSON, defaults as shipped.

    ``parent_numbers`` maps a conversation parent's limetype to the property that gets
    the parent's number from the per-limetype sequence (``{helpdesk = "helpdesknumber"}``);
    a limetype not listed gets no number. ``conversation_parent`` empty (the default)
    means the link from a conversation to its parent is the property named after the
    parent's limetype (``helpdesk``).
    """

    parent_numbers: dict[str, Name] = Field(
        default_factory=lambda: dict(DEFAULT_PARENT_NUMBERS))
    message_subject: Name = "subject"
    message_plaintext: Name = "plaintext"
    message_from_address: Name = "fromaddress"
    message_from_name: Name = "fromname"
    message_direction: Name = "direction"
    message_kind: Name = "kind"
    message_rules: Name = "rules"
    message_account: Name = "account"
    conversation_previous: Name = "previousconversation"
    conversation_parent: str = ""
    embedded_file_content_id: Name = "contentid"
    coworker_groups: Name = "groups"
    error_status: Name = "status"
    error_recipient: Name = "recipient"
    error_outbox: Name = "outbox"
    follower_failing: Name = "failing"

    @field_validator("conversation_parent")
    @classmethod
    def _empty_or_name(cls, value: str) -> str:
        return value if value == "" else _property_name(value)

    def parent_link(self, limetype: str) -> str:
        """The conversation's property holding its parent's id."""
        return self.conversation_parent or limetype

    def number_property(self, limetype: str) -> str | None:
        """The property of ``limetype`` that holds its number, or None (no numbering)."""
        return self.parent_numbers.get(limetype) or None
