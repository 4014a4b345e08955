"""The ``[[oauth_apps]]`` and ``[[imap_connections]]`` arrays: how postroom reaches a server.

An account's ``auth`` names one entry of either array (or ``"maildir"``);
:meth:`daemon.config.load.Config.connection_for` follows the name. The OAuth and Graph
base URLs are settings so tests can point them at an emulator on loopback.
"""

from __future__ import annotations

__all__ = [
    "GOOGLE_AUTHORITY",
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

TlsMode = Literal["implicit", "starttls", "none"]


class OAuthApp(_TomlModel):
    """``[[oauth_apps]]``: a Microsoft Entra or Google OAuth application.

    ``base_scope`` and ``authority_base_url`` default by provider (Microsoft: ``api`` and
    login.microsoftonline.com; Google: ``imap_smtp`` and oauth2.googleapis.com). The base
    URLs are settings so tests can point them at an emulator on loopback; plain http is
    accepted for loopback hosts only.
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

    @model_validator(mode="before")
    @classmethod
    def _provider_defaults(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("provider") == "google":
            data = {"base_scope": "imap_smtp", "authority_base_url": GOOGLE_AUTHORITY, **data}
        return data

    @field_validator("authority_base_url", "graph_base_url")
    @classmethod
    def _https(cls, value: str) -> str:
        return _check_http_url(value, https_unless_loopback=True)

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
        if problems:
            fail_at("OAuthApp", *problems)
        return self


def _loopback_only(value: str, info: ValidationInfo, host_key: str) -> str:
    host = info.data.get(host_key)
    if value == "none" and isinstance(host, str) and not is_loopback(host):
        raise ValueError(f'"none" is only allowed for loopback hosts, not "{host}"')
    return value


class ImapConnection(_TomlModel):
    """``[[imap_connections]]``: an IMAP server and its SMTP server, for basic auth.

    ``"none"`` TLS (plain text, no STARTTLS) is accepted only towards a loopback host.
    """

    id: Id
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

    @field_validator("imap_tls")
    @classmethod
    def _imap_tls(cls, value: str, info: ValidationInfo) -> str:
        return _loopback_only(value, info, "imap_host")

    @field_validator("smtp_tls")
    @classmethod
    def _smtp_tls(cls, value: str, info: ValidationInfo) -> str:
        return _loopback_only(value, info, "smtp_host")

    @field_validator("ca_file")
    @classmethod
    def _ca_exists(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        return _existing_file(value, info)


Connection = OAuthApp | ImapConnection
