"""The TOML configuration: one frozen :class:`Config`, built once at startup.

``load_config("postroom.toml")`` reads the file, follows every secret indirection
(:mod:`daemon.secrets`), loads the runtime configuration JSON it names
(:mod:`daemon.runtime`), cross-checks the sections against each other, and either returns a
:class:`Config` or raises one :class:`~daemon.errors.ConfigError` listing *every* problem
found, each as ``file: path: reason`` (``postroom.toml: accounts[2].auth: no oauth_app or
imap_connection named "onprem"``). Problems that do not stop the daemon (a runtime
parent naming an unknown account, a client secret about to expire) are collected in
:attr:`Config.warnings` for ``check-config`` and the startup log.

Layout of the file (every key is documented in docs/config.md)::

    [daemon]               store, runtime JSON, public URL, secret key, logging, plugins
    [http]                 the status/API/OAuth listener
    [[oauth_apps]]         Microsoft Entra or Google OAuth applications
    [[imap_connections]]   IMAP/SMTP servers for basic auth
    [[accounts]]           mailboxes; ``auth`` names an oauth app, a connection or "maildir"
    [plugins.<name>]       free-form settings for plugin <name>

Design choices, and why:

* Each section and each array entry is validated on its own, then cross-checked, so one
  broken account does not hide the errors in the next one.
* Unknown keys are errors with a "did you mean" hint: a typo must not silently become a
  default (hypercorn's ``from_mapping`` accepts unknown keys; we do not).
* A literal secret (``password = "..."``) is an error: secrets come from ``X_env`` or
  ``X_file``. Resolved secrets are :class:`~daemon.secrets.Secret` values whose repr is
  masked, and no error message quotes a value a user typed into a secret's place.
* Relative paths (``runtime``, ``maildir``, ``ca_file``, ``seed_objects``, secret files,
  ``sqlite:///relative.db``) are relative to the TOML file's folder, never to the working
  directory, so ``postroom run`` behaves the same from anywhere.
* Durations are seconds, sizes bytes, with defaults written in named units
  (``15 * SECONDS``).
"""

from __future__ import annotations

__all__ = [
    "HOURS",
    "MAILDIR",
    "MEGABYTES",
    "MINUTES",
    "SECONDS",
    "Account",
    "AutoReply",
    "Config",
    "DaemonSettings",
    "HttpSettings",
    "ImapConnection",
    "OAuthApp",
    "is_loopback",
    "load_config",
    "parse_config",
]

import ipaddress
import os
import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from daemon.errors import ConfigError, ConfigProblem
from daemon.runtime import RuntimeConfig, parse_runtime, read_json
from daemon.secrets import ENV_SUFFIX, FILE_SUFFIX, Secret, SecretError, resolve_secret
from daemon.validation import (
    fail_at,
    format_path,
    problems_from_validation_error,
    suggest,
)

SECONDS = 1.0
MINUTES = 60 * SECONDS
HOURS = 60 * MINUTES
MEGABYTES = 1_000_000

#: ``auth = "maildir"``: the account reads a local Maildir instead of a server.
MAILDIR = "maildir"

MICROSOFT_AUTHORITY = "https://login.microsoftonline.com"
GOOGLE_AUTHORITY = "https://oauth2.googleapis.com"
GRAPH_BASE_URL = "https://graph.microsoft.com/v1.0"

#: How long before ``client_secret_expires`` check-config starts warning (the reference
#: advises a reminder two weeks ahead).
SECRET_EXPIRY_WARNING_DAYS = 14

TlsMode = Literal["implicit", "starttls", "none"]

_ID = re.compile(r"[A-Za-z0-9_.-]+")
_EMAIL = re.compile(r"[^@\s<>(),;:\"\[\]]+@[^@\s<>(),;:\"\[\].]+(\.[^@\s<>(),;:\"\[\].]+)*")
_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?"
_DOMAIN = re.compile(rf"{_LABEL}(\.{_LABEL})*")
_LANGUAGE = re.compile(r"[a-z]{2,3}(-[A-Za-z0-9]{2,8})*")
_MODULE = re.compile(r"[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*(:[A-Za-z_][\w]*)?")
_SECRETISH = re.compile(r"(^|_)(password|passwd|secret|token|api_key|apikey|private_key)$")
_TOML_POSITION = re.compile(r"^(?P<reason>.*?) \(at line (?P<line>\d+), column (?P<col>\d+)\)$")

_SECTIONS = ("daemon", "http", "oauth_apps", "imap_connections", "accounts", "plugins")


# --------------------------------------------------------------------------------------
# Small validators shared by the models
# --------------------------------------------------------------------------------------

def is_loopback(host: str) -> bool:
    """True for ``localhost``, 127.0.0.0/8 and ::1 (brackets allowed)."""
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_email(value: str) -> str:
    if not _EMAIL.fullmatch(value):
        raise ValueError(f'"{value}" does not look like an email address')
    return value


def _check_id(value: str) -> str:
    if not _ID.fullmatch(value):
        raise ValueError(f'"{value}" may contain only letters, digits, "_", "." and "-"')
    return value


def _check_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f'"{value}" is not a time zone name (e.g. "Europe/Stockholm")') from None
    return value


Email = Annotated[str, AfterValidator(_check_email)]
Id = Annotated[str, AfterValidator(_check_id)]
NonEmpty = Annotated[str, Field(min_length=1)]


def _base_dir(info: ValidationInfo) -> Path:
    context = info.context or {}
    return Path(context.get("base_dir") or Path.cwd())


def _existing_file(value: Path | None, info: ValidationInfo) -> Path | None:
    """``value`` resolved against the TOML's folder; a ValueError unless it is a file."""
    if value is None:
        return None
    path = _resolve_path(value, info)
    if not path.is_file():
        raise ValueError(f'no such file "{path}"')
    return path


def _resolve_path(value: str | Path, info: ValidationInfo) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else _base_dir(info) / path


def _check_http_url(value: str, *, https_unless_loopback: bool) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f'"{value}" must be an http:// or https:// URL')
    if https_unless_loopback and parts.scheme == "http" and not is_loopback(parts.hostname):
        raise ValueError(f'"{value}" must use https:// (http:// only for loopback hosts)')
    return value.rstrip("/")


class _Unresolved:
    """Stands in for an ``X_env``/``X_file`` value whose secret could not be read."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


class _TomlModel(BaseModel):
    """Frozen, unknown keys rejected, secrets resolved from ``X_env``/``X_file``.

    ``resolved_secrets`` names the fields filled from an indirection; the user writes
    ``password_env``/``password_file``, never ``password``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)
    resolved_secrets: ClassVar[tuple[str, ...]] = ()

    @model_validator(mode="before")
    @classmethod
    def _resolve_secrets(cls, data: Any, info: ValidationInfo) -> Any:
        if not isinstance(data, dict) or not cls.resolved_secrets:
            return data
        data = dict(data)
        context = info.context or {}
        for key in cls.resolved_secrets:
            env, file = data.get(key + ENV_SUFFIX), data.get(key + FILE_SUFFIX)
            if key in data or not isinstance(env, str | None) or not isinstance(file, str | None):
                continue  # a literal, or a type error pydantic reports
            try:
                secret = resolve_secret(env, file, environ=context.get("environ", os.environ),
                                        base_dir=_base_dir(info))
            except SecretError as exc:
                data[key + ("_env" if exc.source == "env" else "_file")] = _Unresolved(exc.reason)
            else:
                if secret is not None:
                    data[key] = secret
        return data

    @field_validator("*", mode="before")
    @classmethod
    def _no_literal_secrets(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, _Unresolved):
            raise ValueError(value.reason)
        if info.field_name in cls.resolved_secrets and not isinstance(value, Secret | None):
            name = info.field_name
            raise ValueError(f"secrets come from {name}_env or {name}_file, "
                             "never from the file itself")
        return value


# --------------------------------------------------------------------------------------
# [daemon] and [http]
# --------------------------------------------------------------------------------------

class DaemonSettings(_TomlModel):
    """``[daemon]``: where state lives, how the daemon names itself, logs and plugins.

    ``store`` is normalised: ``sqlite:///relative.db`` (three slashes) is made absolute
    against the TOML file's folder and returned as ``sqlite:////abs/path.db`` (query
    options kept); ``postgresql://`` URLs pass through, but must not carry a password
    (libpq reads ``PGPASSWORD`` or a passfile instead).
    """

    resolved_secrets: ClassVar[tuple[str, ...]] = ("secret_key",)

    store: str = Field(default="sqlite:///var/lib/postroom/postroom.db", validate_default=True)
    runtime: Path | None = None
    public_base_url: str = "http://127.0.0.1:8025"
    secret_key_env: str | None = None
    secret_key_file: str | None = None
    secret_key: Secret | None = None
    installation_id: Id = "postroom"
    mail_domain: str | None = None
    shutdown_grace_seconds: float = Field(default=15 * SECONDS, ge=0)
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: Literal["debug", "info", "warning", "error", "critical"] = "info"
    plugins_disabled: tuple[str, ...] = ()
    plugins: tuple[str, ...] = ()
    seed_objects: Path | None = None

    @property
    def sqlite_path(self) -> Path | None:
        """The SQLite file (absolute), or None for PostgreSQL and ``:memory:``."""
        if not self.store.startswith("sqlite:///"):
            return None
        path = self.store.removeprefix("sqlite:///").partition("?")[0]
        return None if path == ":memory:" else Path(path)

    @property
    def message_id_domain(self) -> str:
        """``mail_domain``, or the host of ``public_base_url`` when it is not set."""
        return self.mail_domain or urlsplit(self.public_base_url).hostname or "localhost"

    @model_validator(mode="before")
    @classmethod
    def _store_in_state_directory(cls, data: Any, info: ValidationInfo) -> Any:
        """No ``store`` under systemd's ``StateDirectory=``: ``$STATE_DIRECTORY/postroom.db``.

        systemd sets ``STATE_DIRECTORY`` (colon-separated when the unit names several; the
        first is ours) and makes it writable despite ``ProtectSystem=strict``.
        """
        if not isinstance(data, dict) or "store" in data:
            return data
        state = (info.context or {}).get("environ", os.environ).get("STATE_DIRECTORY")
        if not state:
            return data
        return {**data, "store": f"sqlite:///{Path(state.split(':')[0]) / 'postroom.db'}"}

    @field_validator("store")
    @classmethod
    def _normalise_store(cls, value: str, info: ValidationInfo) -> str:
        if value.startswith("sqlite:///"):
            path, mark, query = value.removeprefix("sqlite:///").partition("?")
            if not path:
                raise ValueError('"sqlite:///" needs a file name, e.g. "sqlite:///postroom.db"')
            if path != ":memory:":
                path = str(_resolve_path(path, info))
            return f"sqlite:///{path}{mark}{query}"
        parts = urlsplit(value)
        if parts.scheme in ("postgresql", "postgres"):
            if parts.password is not None or "password=" in parts.query.lower():
                raise ValueError("the URL must not contain a password: set PGPASSWORD "
                                 "or use a passfile (libpq reads both)")
            return value
        scheme = parts.scheme or "no"
        raise ValueError(f'must be "sqlite:///path" or "postgresql://...", not a {scheme} URL')

    @field_validator("runtime", "seed_objects")
    @classmethod
    def _existing_file(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        return _existing_file(value, info)

    @field_validator("public_base_url")
    @classmethod
    def _public_url(cls, value: str) -> str:
        return _check_http_url(value, https_unless_loopback=False)

    @field_validator("secret_key")
    @classmethod
    def _long_enough(cls, value: Secret | None) -> Secret | None:
        if value is not None and len(value.reveal()) < 32:
            raise ValueError("must be at least 32 characters long")
        return value

    @field_validator("mail_domain")
    @classmethod
    def _domain(cls, value: str | None) -> str | None:
        if value is not None and not _DOMAIN.fullmatch(value):
            raise ValueError(f'"{value}" is not a domain name')
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @field_validator("plugins")
    @classmethod
    def _module_paths(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            if not _MODULE.fullmatch(name):
                raise ValueError(f'"{name}" is not a module path (e.g. "mycompany.postroom" '
                                 'or "mycompany.postroom:plugin")')
        return value


class HttpSettings(_TomlModel):
    """``[http]``: the listener for /status, /metrics, OAuth callbacks, webhooks and the API.

    Port 0 in ``bind`` asks the OS for a free port (tests).
    """

    resolved_secrets: ClassVar[tuple[str, ...]] = ("api_token",)

    enabled: bool = True
    bind: str = "127.0.0.1:8025"
    api_token_env: str | None = None
    api_token_file: str | None = None
    api_token: Secret | None = None

    @property
    def host(self) -> str:
        """The host part of ``bind``, without IPv6 brackets."""
        return self.bind.rpartition(":")[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.bind.rpartition(":")[2])

    @field_validator("bind")
    @classmethod
    def _host_port(cls, value: str) -> str:
        host, _, port = value.rpartition(":")
        if not host or not port.isdigit() or not 0 <= int(port) < 65536:
            raise ValueError(f'"{value}" must be "host:port", e.g. "127.0.0.1:8025" '
                             'or "[::1]:8025"')
        return value


# --------------------------------------------------------------------------------------
# [[oauth_apps]] and [[imap_connections]]
# --------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------
# [[accounts]]
# --------------------------------------------------------------------------------------

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
    closed_parent: ClosedParent | None = None

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


# --------------------------------------------------------------------------------------
# The whole file
# --------------------------------------------------------------------------------------

Connection = OAuthApp | ImapConnection


@dataclass(frozen=True)
class Config:
    """Everything the daemon was told, validated, with secrets resolved and masked.

    Built by :func:`load_config` (or :func:`parse_config` from a mapping). Plugin tables
    are kept as written and left out of the repr (they are free-form and might hold
    anything).

    Attributes:
        daemon, http: the ``[daemon]`` and ``[http]`` tables.
        oauth_apps, imap_connections, accounts: the arrays of tables, in file order.
        plugins: ``[plugins.<name>]`` tables by plugin name.
        runtime: the runtime configuration JSON (built-in defaults when
            ``daemon.runtime`` is not set).
        path: the TOML file (absolute); base_dir: its folder, against which relative
            paths were resolved.
        warnings: problems that do not stop the daemon; check-config prints them and
            ``run`` logs them.
    """

    daemon: DaemonSettings
    http: HttpSettings
    oauth_apps: tuple[OAuthApp, ...]
    imap_connections: tuple[ImapConnection, ...]
    accounts: tuple[Account, ...]
    plugins: Mapping[str, dict[str, Any]] = field(repr=False)
    runtime: RuntimeConfig = field(repr=False)
    path: Path
    base_dir: Path
    warnings: tuple[ConfigProblem, ...] = ()

    from_toml: ClassVar[Any]

    def account(self, account_id: str) -> Account:
        """The account with ``id == account_id``.

        Raises:
            KeyError: no such account.
        """
        for account in self.accounts:
            if account.id == account_id:
                return account
        raise KeyError(f"no account named {account_id!r}")

    def connection_for(self, account: Account | str) -> OAuthApp | ImapConnection | None:
        """The oauth app or IMAP connection ``account.auth`` names; None for maildir."""
        if isinstance(account, str):
            account = self.account(account)
        if account.auth == MAILDIR:
            return None
        for connection in (*self.oauth_apps, *self.imap_connections):
            if connection.id == account.auth:
                return connection
        raise KeyError(f"no oauth_app or imap_connection named {account.auth!r}")

    def intake_kind(self, account: Account | str) -> Literal["graph", "imap", "maildir"]:
        """How mail reaches ``account``: Graph (an ``api`` oauth app), IMAP, or Maildir."""
        connection = self.connection_for(account)
        if connection is None:
            return "maildir"
        if isinstance(connection, OAuthApp) and connection.base_scope == "api":
            return "graph"
        return "imap"


def load_config(path: str | Path, *, environ: Mapping[str, str] | None = None,
                today: date | None = None) -> Config:
    """Read, validate and cross-check a postroom TOML file and its runtime JSON.

    Args:
        path: the TOML file; its name appears in error messages as given.
        environ: where ``X_env`` secrets are read (default ``os.environ``).
        today: the date secret expiry warnings are computed against (default: today).

    Returns:
        The frozen configuration, with ``warnings`` filled in.

    Raises:
        ConfigError: every problem in the TOML and the runtime JSON, one per line.
    """
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([ConfigProblem(file, "", "no such file")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([ConfigProblem(file, "", f"cannot be read: {exc}")]) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([_toml_syntax_problem(file, exc)]) from None
    absolute = Path(path).resolve()
    return parse_config(data, file=file, base_dir=absolute.parent, environ=environ,
                        today=today, path=absolute)


Config.from_toml = staticmethod(load_config)


def parse_config(data: Mapping[str, Any], *, file: str, base_dir: Path,
                 environ: Mapping[str, str] | None = None, today: date | None = None,
                 path: Path | None = None) -> Config:
    """Validate an already-decoded TOML document (tests build configs this way).

    Args:
        data: the decoded TOML.
        file: the name to put in problems.
        base_dir: the folder relative paths are resolved against.
        environ: where ``X_env`` secrets are read (default ``os.environ``).
        today: for secret expiry warnings (default: today).
        path: the TOML file, if there is one (default: ``base_dir / file``).

    Raises:
        ConfigError: every problem found.
    """
    checker = _Checker(file, base_dir.resolve(),
                       os.environ if environ is None else environ, today or date.today())
    return checker.run(data, path or base_dir.resolve() / file)


def _toml_syntax_problem(file: str, exc: tomllib.TOMLDecodeError) -> ConfigProblem:
    message = str(exc)
    match = _TOML_POSITION.match(message)
    if match:
        where = f"line {match['line']}, column {match['col']}"
        return ConfigProblem(file, where, match["reason"])
    return ConfigProblem(file, "", message)


class _Checker:
    """One validation run: collects problems and warnings across sections."""

    def __init__(self, file: str, base_dir: Path, environ: Mapping[str, str],
                 today: date) -> None:
        self.file = file
        self.base_dir = base_dir
        self.context = {"base_dir": base_dir, "environ": environ}
        self.today = today
        self.problems: list[ConfigProblem] = []
        self.warnings: list[ConfigProblem] = []

    def error(self, loc: tuple[str | int, ...], reason: str) -> None:
        self.problems.append(ConfigProblem(self.file, format_path(loc), reason))

    def warn(self, loc: tuple[str | int, ...], reason: str, *, file: str | None = None) -> None:
        self.warnings.append(ConfigProblem(file or self.file, format_path(loc), reason))

    def run(self, data: Mapping[str, Any], path: Path) -> Config:
        for key in data:
            if key not in _SECTIONS:
                self.error((key,), "unknown key" + suggest(key, _SECTIONS))
        daemon = self.table(DaemonSettings, data, "daemon")
        http = self.table(HttpSettings, data, "http")
        apps = self.array(OAuthApp, data, "oauth_apps")
        connections = self.array(ImapConnection, data, "imap_connections")
        accounts = self.array(Account, data, "accounts")
        plugins = self.plugin_tables(data.get("plugins", {}))
        runtime, runtime_file = self.runtime(daemon, data.get("daemon"))
        self.check_secret_key(daemon)
        self.check_ids(apps, connections, accounts)
        self.check_accounts(_raw_ids(data, "oauth_apps"), _raw_ids(data, "imap_connections"),
                            accounts)
        self.check_runtime_accounts(runtime, runtime_file, accounts)
        self.warn_about(daemon, http, apps, connections)
        if self.problems or daemon is None or http is None:
            raise ConfigError(self.problems)
        return Config(
            daemon=daemon, http=http, oauth_apps=_values(apps),
            imap_connections=_values(connections), accounts=_values(accounts),
            plugins=plugins, runtime=runtime, path=path, base_dir=self.base_dir,
            warnings=tuple(self.warnings),
        )

    # -- validation, one section or entry at a time ------------------------------------

    def validate(self, model: type[BaseModel], value: Any, loc: tuple[str | int, ...]) -> Any:
        try:
            return model.model_validate(value, context=self.context)
        except ValidationError as exc:
            self.problems += problems_from_validation_error(
                exc, file=self.file, model=model, prefix=loc, flavour="toml")
            return None

    def table(self, model: type[BaseModel], data: Mapping[str, Any], key: str) -> Any:
        value = data.get(key, {})
        if not isinstance(value, dict):
            self.error((key,), "must be a table")
            return None
        return self.validate(model, value, (key,))

    def array(self, model: type[BaseModel], data: Mapping[str, Any],
              key: str) -> dict[int, Any]:
        """Valid entries by index (invalid ones are reported and left out)."""
        value = data.get(key, [])
        if not isinstance(value, list):
            self.error((key,), f"must be an array of tables: write [[{key}]]")
            return {}
        valid = {}
        for index, entry in enumerate(value):
            item = self.validate(model, entry, (key, index))
            if item is not None:
                valid[index] = item
        return valid

    def plugin_tables(self, value: Any) -> dict[str, dict[str, Any]]:
        if not isinstance(value, dict):
            self.error(("plugins",), "must be a table of [plugins.<name>] tables")
            return {}
        tables = {}
        for name, table in value.items():
            if not isinstance(table, dict):
                self.error(("plugins", name), "must be a table: write [plugins.<name>]")
                continue
            for key in _literal_secrets(table):
                self.error(("plugins", name, key), f"secrets come from {key}_env or "
                           f"{key}_file, never from the file itself")
            tables[name] = table
        return tables

    def runtime(self, daemon: DaemonSettings | None,
                raw: Any) -> tuple[RuntimeConfig, str | None]:
        """The runtime JSON named by ``daemon.runtime``; built-in defaults without one."""
        label = raw.get("runtime") if isinstance(raw, dict) else None
        if not isinstance(label, str):
            return RuntimeConfig(), None
        # Even when [daemon] has other errors, check the JSON it names (if it exists:
        # a missing file is reported at daemon.runtime).
        path = daemon.runtime if daemon is not None else self.base_dir / label
        if path is None or not path.is_file():
            return RuntimeConfig(), None
        try:
            return parse_runtime(read_json(path, file=label), file=label), label
        except ConfigError as exc:
            self.problems += exc.problems
            return RuntimeConfig(), None

    # -- cross-checks ---------------------------------------------------------------

    def check_ids(self, apps: dict[int, OAuthApp], connections: dict[int, ImapConnection],
                  accounts: dict[int, Account]) -> None:
        for section, entries in (("oauth_apps", apps), ("imap_connections", connections),
                                 ("accounts", accounts)):
            first: dict[str, int] = {}
            for index, entry in entries.items():
                if entry.id in first:
                    self.error((section, index, "id"), f'duplicate id "{entry.id}" '
                               f"(also {section}[{first[entry.id]}])")
                first.setdefault(entry.id, index)
        app_ids = {app.id: index for index, app in apps.items()}
        for index, connection in connections.items():
            if connection.id in app_ids:
                self.error(("imap_connections", index, "id"),
                           f'"{connection.id}" is also the id of '
                           f"oauth_apps[{app_ids[connection.id]}]; accounts could not tell "
                           "them apart")
        for section, entries in (("oauth_apps", apps), ("imap_connections", connections)):
            for index, entry in entries.items():
                if entry.id == MAILDIR:
                    self.error((section, index, "id"), f'"{MAILDIR}" is reserved for '
                               "accounts that read a local Maildir")

    def check_secret_key(self, daemon: DaemonSettings | None) -> None:
        """Only the SQLite store can keep a generated key next to its database."""
        if daemon is not None and daemon.secret_key is None \
                and not daemon.store.startswith("sqlite:"):
            self.error(("daemon", "secret_key_env"), "required when the store is not SQLite "
                       "(or set secret_key_file)")

    def check_accounts(self, app_ids: set[str], connection_ids: set[str],
                       accounts: dict[int, Account]) -> None:
        """``auth`` names something, and the password fits it.

        The ids come from the raw file, so an account naming an app that has its own
        errors is not also told that the app does not exist.
        """
        owner: dict[str, int] = {}
        for index, account in accounts.items():
            loc = ("accounts", index)
            if account.auth == MAILDIR or account.auth in app_ids:
                if account.password is not None:
                    key = "password_env" if account.password_env else "password_file"
                    self.error((*loc, key), "only used when auth names an imap_connection")
            elif account.auth in connection_ids:
                if account.password is None:
                    self.error((*loc, "password_env"), "required when auth names an "
                               "imap_connection (or set password_file)")
            else:
                self.error((*loc, "auth"), "no oauth_app or imap_connection named "
                           f'"{account.auth}"')
            self.check_addresses(index, account, owner)

    def check_addresses(self, index: int, account: Account, owner: dict[str, int]) -> None:
        """An address (email or alias) may belong to one account only, once."""
        places: list[tuple[tuple[str | int, ...], str]] = [(("email",), account.email)]
        places += [(("aliases", n), alias) for n, alias in enumerate(account.aliases)]
        for key, address in places:
            other = owner.setdefault(address.lower(), index)
            if other != index or (key != ("email",) and address.lower() == account.email.lower()):
                whose = "this account" if other == index else f"accounts[{other}]"
                self.error(("accounts", index, *key),
                           f'"{address}" is already an address of {whose}')

    def check_runtime_accounts(self, runtime: RuntimeConfig, runtime_file: str | None,
                               accounts: dict[int, Account]) -> None:
        if runtime_file is None:
            return
        ids = {account.id for account in accounts.values()}
        for p, parent in enumerate(runtime.conversation_parents):
            for a, name in enumerate(parent.accounts):
                if name not in ids:
                    self.warn(("conversationParents", p, "accounts", a),
                              f'no account named "{name}" in {self.file}', file=runtime_file)
        for index, account in accounts.items():
            if runtime.parent_for(account.id) is None:
                self.warn(("accounts", index), f"no conversationParents entry in "
                          f"{runtime_file} serves \"{account.id}\": its mail cannot start "
                          "conversations")

    def warn_about(self, daemon: DaemonSettings | None, http: HttpSettings | None,
                   apps: dict[int, OAuthApp], connections: dict[int, ImapConnection]) -> None:
        for index, app in apps.items():
            self.warn_expiry(index, app)
        for index, connection in connections.items():
            if not connection.verify_certificates:
                self.warn(("imap_connections", index, "verify_certificates"),
                          "false: the server's certificate is not checked")
        if http is not None and http.enabled and http.api_token is None \
                and not is_loopback(http.host):
            self.warn(("http", "bind"), f'"{http.bind}" is not a loopback address and no '
                      "api_token is set: the API is open to the network")

    def warn_expiry(self, index: int, app: OAuthApp) -> None:
        expires = app.client_secret_expires
        if expires is None:
            return
        days = (expires - self.today).days
        loc = ("oauth_apps", index, "client_secret_expires")
        if days < 0:
            self.warn(loc, f"the client secret expired on {expires}; create a new one")
        elif days <= SECRET_EXPIRY_WARNING_DAYS:
            self.warn(loc, f"the client secret expires on {expires} (in {days} days); "
                      "renew it now")


def _raw_ids(data: Mapping[str, Any], section: str) -> set[str]:
    entries = data.get(section)
    if not isinstance(entries, list):
        return set()
    return {e["id"] for e in entries if isinstance(e, dict) and isinstance(e.get("id"), str)}


def _values(entries: dict[int, Any]) -> tuple[Any, ...]:
    return tuple(entries[index] for index in sorted(entries))


def _literal_secrets(table: Mapping[str, Any]) -> Iterator[str]:
    for key, value in table.items():
        if isinstance(key, str) and _SECRETISH.search(key) and not isinstance(value, dict):
            yield key
