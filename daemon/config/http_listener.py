"""The ``[http]`` table: :class:`HttpSettings`, the listener for probes, the API and OAuth.

The module is not called ``http`` so that no postroom module carries the name of a
standard-library module.
"""

from __future__ import annotations

__all__ = ["HttpSettings"]

from typing import ClassVar

from pydantic import Field, field_validator

from daemon.config.fields import _TomlModel
from daemon.config.secret_values import Secret
from daemon.config.units import SECONDS


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
    # Limits against slow or flooding clients (daemon/http/server.py, daemon/http/guard.py).
    max_connections: int = Field(default=512, ge=1)
    body_timeout_seconds: float = Field(default=30 * SECONDS, gt=0)

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
