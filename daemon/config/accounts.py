"""The ``[[accounts]]`` array: one mailbox each, with its ``auto_reply`` and ``closed_parent``.

:class:`Account` checks what one entry can check on its own (addresses, time zone,
language, the Maildir path exactly when ``auth = "maildir"``); whether ``auth`` names a
configured connection and whether two accounts share an address are cross-checks done by
:mod:`daemon.config.load`.
"""

from __future__ import annotations

__all__ = ["MAILDIR", "Account", "AutoReply", "ClosedParent"]

import re
from datetime import date
from pathlib import Path
from typing import Annotated, ClassVar, Literal
from zoneinfo import ZoneInfo

from pydantic import AfterValidator, Field, ValidationInfo, field_validator, model_validator

from daemon.config.fields import Email, Id, NonEmpty, _check_zone, _resolve_path, _TomlModel
from daemon.config.problems import fail_at
from daemon.config.secret_values import Secret
from daemon.config.units import MEGABYTES, MINUTES, SECONDS

#: ``auth = "maildir"``: the account reads a local Maildir instead of a server.
MAILDIR = "maildir"

_LANGUAGE = re.compile(r"[a-z]{2,3}(-[A-Za-z0-9]{2,8})*")


class AutoReply(_TomlModel):
    """``auto_reply``: the welcome message sent when a mail starts a new conversation.

    An empty ``subject`` means ``"Re: "`` plus the original subject. ``body`` may use merge
    codes such as ``{{helpdesk.helpdesknumber}}``.
    """

    enabled: bool = False
    max_age_hours: float = Field(default=24.0, gt=0)
    subject: str = ""
    body: str = ""
    rate_limit_per_hour: int = Field(default=5, ge=1)

    @model_validator(mode="after")
    def _body_when_enabled(self) -> AutoReply:
        if self.enabled and not self.body.strip():
            fail_at("AutoReply", (("body",), "required when enabled = true"))
        return self


class ClosedParent(_TomlModel):
    """``closed_parent``: what a reply to a conversation whose parent is closed does.

    The parent counts as closed when its ``property`` holds one of ``values``. Then a
    person's reply either reopens it (``action = "reopen"``: ``property`` is set to
    ``reopen_value``) or starts a new conversation and parent (``action = "new"``), linked
    to the old conversation through ``previousconversation``. Automatic mail (out-of-office
    replies, bounces) joins the old conversation and never reopens anything.
    """

    property: NonEmpty
    values: tuple[str, ...] = ("closed",)
    action: Literal["reopen", "new"] = "reopen"
    reopen_value: str = "open"


class Account(_TomlModel):
    """``[[accounts]]``: one mailbox postroom reads and sends from.

    ``auth`` names an ``[[oauth_apps]]`` id, an ``[[imap_connections]]`` id, or
    ``"maildir"``. ``username`` defaults to ``email``. ``password`` is required for
    IMAP connections and unused otherwise; ``maildir`` is required exactly when
    ``auth = "maildir"``.
    """

    resolved_secrets: ClassVar[tuple[str, ...]] = ("password",)

    id: Id
    name: str | None = None
    email: Email
    auth: NonEmpty
    username: str | None = None
    password_env: str | None = None
    password_file: str | None = None
    password: Secret | None = None
    maildir: Path | None = None
    folder: NonEmpty = "INBOX"
    failure_folder: NonEmpty = "postroom-failed"
    sent_folder: str | None = None
    aliases: tuple[Email, ...] = ()
    groups: tuple[str, ...] = ()
    enabled: bool = True
    template: NonEmpty = "default"
    language: str = "en"
    timezone: Annotated[str, AfterValidator(_check_zone)] = "UTC"
    print_timezone: bool = False
    max_outgoing_bytes: int = Field(default=25 * MEGABYTES, gt=0)
    max_message_bytes: int = Field(default=25 * MEGABYTES, gt=0)
    signature: str = ""
    reply_from_alias: bool = False
    import_since: date | None = None
    idle: bool = True
    idle_renew_seconds: float = Field(default=10 * MINUTES, gt=0)
    poll_interval_seconds: float = Field(default=60 * SECONDS, gt=0)
    backoff_cap_seconds: float = Field(default=5 * MINUTES, gt=0)
    stable_after_seconds: float = Field(default=5 * MINUTES, ge=0)
    auth_failures_before_park: int = Field(default=3, ge=1)
    auto_reply: AutoReply = AutoReply()
    # The hub on the open internet (docs/sending.md, "Strangers").
    max_new_followers_per_message: int = Field(default=20, ge=0)
    notify_known_people: bool = True
    automatic_mail_per_hour: int = Field(default=300, ge=1)
    closed_parent: ClosedParent | None = None
    # Microsoft Graph intake (auth names an oauth_apps entry with base_scope = "api").
    graph_mode: Literal["auto", "webhook", "polling"] = "auto"
    graph_poll_interval_seconds: float = Field(default=30 * SECONDS, gt=0)
    graph_backstop_seconds: float = Field(default=5 * MINUTES, gt=0)
    graph_subscription_minutes: int = Field(default=4230, ge=45, le=10070)

    @property
    def addresses(self) -> frozenset[str]:
        """The account's email and aliases, lower-cased: what "our own address" means."""
        return frozenset(a.lower() for a in (self.email, *self.aliases))

    @property
    def zone(self) -> ZoneInfo:
        """``timezone`` as a ZoneInfo."""
        return ZoneInfo(self.timezone)

    @property
    def login(self) -> str:
        """The IMAP/SMTP login: ``username``, or ``email`` when it is not set."""
        return self.username or self.email

    @field_validator("maildir")
    @classmethod
    def _maildir_path(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        return None if value is None else _resolve_path(value, info)

    @field_validator("language")
    @classmethod
    def _language_tag(cls, value: str) -> str:
        if not _LANGUAGE.fullmatch(value):
            raise ValueError(f'"{value}" is not a language tag (e.g. "en", "sv", "pt-BR")')
        return value

    @field_validator("idle_renew_seconds")
    @classmethod
    def _under_29_minutes(cls, value: float) -> float:
        if value > 29 * MINUTES:
            raise ValueError("must be at most 1740 (29 minutes): RFC 2177 servers may end "
                             "an IDLE after 30 minutes")
        return value

    @model_validator(mode="after")
    def _maildir_iff_auth(self) -> Account:
        problems = []
        if self.auth == MAILDIR and self.maildir is None:
            problems.append((("maildir",), 'required when auth = "maildir"'))
        if self.auth != MAILDIR and self.maildir is not None:
            problems.append((("maildir",), 'only used when auth = "maildir"'))
        if self.failure_folder == self.folder:
            problems.append((("failure_folder",), "must differ from folder"))
        if problems:
            fail_at("Account", *problems)
        return self
