"""What every TOML section model shares: field types, small validators, the base model.

Every section model in :mod:`daemon.config` derives from :class:`_TomlModel`: frozen,
unknown keys rejected, and each secret field filled from its ``X_env``/``X_file``
indirection (:mod:`daemon.config.secret_values`) before validation, so a literal secret
in the file is an error. Relative paths are resolved against the TOML file's folder, which
the loader passes in the validation context (``base_dir``), never the working directory.

The underscored names here are shared by the section modules of this package only;
outside it, use :func:`is_loopback` and the field types.
"""

from __future__ import annotations

__all__ = ["Email", "Id", "NonEmpty", "is_loopback"]

import ipaddress
import os
import re
from pathlib import Path
from typing import Annotated, Any, ClassVar
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from daemon.config.secret_values import (
    ENV_SUFFIX,
    FILE_SUFFIX,
    Secret,
    SecretError,
    resolve_secret,
)

_ID = re.compile(r"[A-Za-z0-9_.-]+")
_EMAIL = re.compile(r"[^@\s<>(),;:\"\[\]]+@[^@\s<>(),;:\"\[\].]+(\.[^@\s<>(),;:\"\[\].]+)*")


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
