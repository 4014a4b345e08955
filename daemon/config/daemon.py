"""The ``[daemon]`` table: :class:`DaemonSettings`.

Where state lives (the store URL, the runtime JSON, seed objects), how the installation
names itself (public URL, installation id, mail domain, secret key), how it logs, and
which plugins it loads.
"""

from __future__ import annotations

__all__ = ["DaemonSettings"]

import os
import re
from pathlib import Path
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import Field, ValidationInfo, field_validator, model_validator

from daemon.config.fields import (
    Id,
    _check_http_url,
    _existing_file,
    _resolve_path,
    _TomlModel,
)
from daemon.config.secret_values import Secret
from daemon.config.units import SECONDS

_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?"
_DOMAIN = re.compile(rf"{_LABEL}(\.{_LABEL})*")
_MODULE = re.compile(r"[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*(:[A-Za-z_][\w]*)?")


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
    webhook_base_url: str | None = None
    secret_key_env: str | None = None
    secret_key_file: str | None = None
    secret_key: Secret | None = None
    installation_id: Id = "postroom"
    # This node among several on one PostgreSQL store (daemon/nodes.py); None: hostname:pid.
    node_id: str | None = Field(default=None, min_length=1, max_length=200)
    # Account leases between nodes (daemon/leases.py); PostgreSQL only.
    lease_seconds: float = Field(default=30 * SECONDS, gt=0)
    lease_renew_seconds: float = Field(default=10 * SECONDS, gt=0)
    mail_domain: str | None = None
    shutdown_grace_seconds: float = Field(default=15 * SECONDS, ge=0)
    #: Retention (daemon.retention): raw bytes of imported messages and events older
    #: than this many days are purged daily; None keeps everything.
    retain_days: float | None = Field(default=None, gt=0)
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: Literal["debug", "info", "warning", "error", "critical"] = "info"
    plugins_disabled: tuple[str, ...] = ()
    plugins: tuple[str, ...] = ()
    seed_objects: Path | None = None
    # Template budget (daemon.outbox.sandbox): per render of an account template.
    template_max_output_chars: int = Field(default=1_000_000, gt=0)
    template_max_loop_iterations: int = Field(default=100_000, gt=0)
    template_timeout_seconds: float = Field(default=2 * SECONDS, gt=0)

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

    @model_validator(mode="after")
    def _renew_within_lease(self) -> DaemonSettings:
        if self.lease_renew_seconds >= self.lease_seconds / 2:
            raise ValueError("lease_renew_seconds must be less than half of lease_seconds")
        return self

    @field_validator("runtime", "seed_objects")
    @classmethod
    def _existing_file(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        return _existing_file(value, info)

    @field_validator("public_base_url")
    @classmethod
    def _public_url(cls, value: str) -> str:
        return _check_http_url(value, https_unless_loopback=False)

    @field_validator("webhook_base_url")
    @classmethod
    def _webhook_url(cls, value: str | None) -> str | None:
        return None if value is None else _check_http_url(value, https_unless_loopback=False)

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
