"""The ``[[oauth_apps]]`` and ``[[imap_connections]]`` arrays: how postroom reaches a server.

An account's ``auth`` names one entry of either array (or ``"maildir"``);
:meth:`daemon.config.load.Config.connection_for` follows the name. The OAuth and Graph
base URLs are settings so tests can point them at an emulator on loopback.

An ``imap_smtp`` app also says where its mailboxes are read and sent from: the provider's
servers (:data:`PROVIDER_MAIL_SERVERS`) unless the app overrides them with the keys
``[[imap_connections]]`` uses; :meth:`OAuthApp.mail_servers` turns them into the
:class:`ImapConnection` the IMAP session and the SMTP transport read.
"""

from __future__ import annotations

__all__ = [
    "GOOGLE_AUTHORITY",
    "GOOGLE_AUTHORIZE_URL",
    "GOOGLE_TOKEN_URL",
    "PROVIDER_MAIL_SERVERS",
    "GRAPH_BASE_URL",
    "MICROSOFT_AUTHORITY",
    "Connection",
    "ImapConnection",
    "OAuthApp",
    "TlsMode",
]

from datetime import date
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from daemon.config.fields import (
    Id,
    NonEmpty,
    _check_http_url,
    _existing_file,
    _TomlModel,
    is_loopback,
)
from daemon.config.problems import fail_at
from daemon.config.secret_values import Secret
from daemon.config.units import SECONDS

MICROSOFT_AUTHORITY = "https://login.microsoftonline.com"
GOOGLE_AUTHORITY = "https://oauth2.googleapis.com"
GRAPH_BASE_URL = "https://graph.microsoft.com/v1.0"
GOOGLE_AUTHORIZE_URL = "https://accounts.google.com/o/oauth2/v2/auth"
GOOGLE_TOKEN_URL = "https://oauth2.googleapis.com/token"

#: The IMAP and SMTP servers of an ``imap_smtp`` app, by provider (host, port, TLS mode).
PROVIDER_MAIL_SERVERS: dict[str, dict[str, Any]] = {
    "microsoft": {"imap_host": "outlook.office365.com", "imap_port": 993,
                  "imap_tls": "implicit", "smtp_host": "smtp.office365.com",
                  "smtp_port": 587, "smtp_tls": "starttls"},
    "google": {"imap_host": "imap.gmail.com", "imap_port": 993, "imap_tls": "implicit",
               "smtp_host": "smtp.gmail.com", "smtp_port": 465, "smtp_tls": "implicit"},
}

TlsMode = Literal["implicit", "starttls", "none"]


class _MailServers(_TomlModel):
    """The checks shared by everything that names IMAP and SMTP servers (an IMAP
    connection, an ``imap_smtp`` OAuth app): ``"none"`` TLS only towards a loopback host,
    and a ``ca_file`` that exists. The subclasses declare the fields."""

    @field_validator("imap_tls", check_fields=False)
    @classmethod
    def _imap_tls(cls, value: str, info: ValidationInfo) -> str:
        return _loopback_only(value, info, "imap_host")

    @field_validator("smtp_tls", check_fields=False)
    @classmethod
    def _smtp_tls(cls, value: str, info: ValidationInfo) -> str:
        return _loopback_only(value, info, "smtp_host")

    @field_validator("ca_file", check_fields=False)
    @classmethod
    def _ca_exists(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        return _existing_file(value, info)


class OAuthApp(_MailServers):
    """``[[oauth_apps]]``: a Microsoft Entra or Google OAuth application.

    ``base_scope`` and ``authority_base_url`` default by provider (Microsoft: ``api`` and
    login.microsoftonline.com; Google: ``imap_smtp`` and oauth2.googleapis.com). Google's
    two endpoints live on different hosts, hence ``authorize_url`` and ``token_url``. The
    URLs are settings so tests can point them at an emulator on loopback; plain http is
    accepted for loopback hosts only; ``ca_file`` trusts a private CA for them (and for
    the app's IMAP and SMTP servers). ``redirect_uri`` (default
    ``<public_base_url>/oauth/callback``) is served at its path. ``publishing_status =
    "testing"`` says a Google app is in "Testing", whose refresh tokens die after 7 days.
    """

    resolved_secrets: ClassVar[tuple[str, ...]] = ("client_secret",)

    id: Id
    provider: Literal["microsoft", "google"]
    client_id: NonEmpty
    client_secret_env: str | None = None
    client_secret_file: str | None = None
    client_secret: Secret | None = None
    client_secret_expires: date | None = None
    tenant_id: str | None = None
    base_scope: Literal["api", "imap_smtp"] = "api"
    authority_base_url: str = MICROSOFT_AUTHORITY
    graph_base_url: str = GRAPH_BASE_URL
    authorize_url: str = GOOGLE_AUTHORIZE_URL
    token_url: str = GOOGLE_TOKEN_URL
    redirect_uri: str | None = None
    ca_file: Path | None = None
    name: str | None = None
    publishing_status: Literal["production", "testing"] = "production"
    imap_host: NonEmpty = "outlook.office365.com"
    imap_port: int = Field(default=993, gt=0, lt=65536)
    imap_tls: TlsMode = "implicit"
    smtp_host: NonEmpty = "smtp.office365.com"
    smtp_port: int = Field(default=587, gt=0, lt=65536)
    smtp_tls: TlsMode = "starttls"
    connect_timeout_seconds: float = Field(default=15 * SECONDS, gt=0)
    read_timeout_seconds: float = Field(default=60 * SECONDS, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _provider_defaults(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("provider") == "google":
            data = {"base_scope": "imap_smtp", "authority_base_url": GOOGLE_AUTHORITY,
                    **PROVIDER_MAIL_SERVERS["google"], **data}
        return data

    @field_validator("authority_base_url", "graph_base_url", "authorize_url", "token_url",
                     "redirect_uri")
    @classmethod
    def _https(cls, value: str | None) -> str | None:
        if value is None:
            return None
        return _check_http_url(value, https_unless_loopback=True)

    @property
    def display_name(self) -> str:
        """``name``, or the id when no name is set."""
        return self.name or self.id

    def mail_servers(self) -> ImapConnection:
        """The app's IMAP and SMTP servers as the :class:`ImapConnection` sessions read."""
        return ImapConnection.model_construct(
            id=self.id, name=self.name, imap_host=self.imap_host, imap_port=self.imap_port,
            imap_tls=self.imap_tls, smtp_host=self.smtp_host, smtp_port=self.smtp_port,
            smtp_tls=self.smtp_tls, ca_file=self.ca_file, verify_certificates=True,
            connect_timeout_seconds=self.connect_timeout_seconds,
            read_timeout_seconds=self.read_timeout_seconds)

    @model_validator(mode="after")
    def _provider_rules(self) -> OAuthApp:
        problems = []
        if self.client_secret is None:
            problems.append((("client_secret_env",), "required (or client_secret_file)"))
        if self.provider == "microsoft" and not self.tenant_id:
            problems.append((("tenant_id",), 'required for provider "microsoft"'))
        if self.provider == "google" and self.tenant_id is not None:
            problems.append((("tenant_id",), 'only used with provider "microsoft"'))
        if self.provider == "google" and self.base_scope != "imap_smtp":
            problems.append((("base_scope",), 'must be "imap_smtp" for provider "google"'))
        if self.provider == "microsoft" and self.publishing_status != "production":
            problems.append((("publishing_status",), 'only used with provider "google"'))
        if problems:
            fail_at("OAuthApp", *problems)
        return self


def _loopback_only(value: str, info: ValidationInfo, host_key: str) -> str:
    host = info.data.get(host_key)
    if value == "none" and isinstance(host, str) and not is_loopback(host):
        raise ValueError(f'"none" is only allowed for loopback hosts, not "{host}"')
    return value


class ImapConnection(_MailServers):
    """``[[imap_connections]]``: an IMAP server and its SMTP server, for basic auth.

    ``"none"`` TLS (plain text, no STARTTLS) is accepted only towards a loopback host.
    ``name`` is a display name (default: the id).
    """

    id: Id
    name: str | None = None
    imap_host: NonEmpty
    imap_port: int = Field(default=993, gt=0, lt=65536)
    imap_tls: TlsMode = "implicit"
    smtp_host: NonEmpty
    smtp_port: int = Field(default=587, gt=0, lt=65536)
    smtp_tls: TlsMode = "starttls"
    ca_file: Path | None = None
    verify_certificates: bool = True
    connect_timeout_seconds: float = Field(default=15 * SECONDS, gt=0)
    read_timeout_seconds: float = Field(default=60 * SECONDS, gt=0)


Connection = OAuthApp | ImapConnection
