"""What the HTTP routes need from the running daemon, and nothing more.

The routes used to take the whole :class:`daemon.app.Daemon` (imported under
``TYPE_CHECKING``) and probe it with ``getattr``. This Protocol names the parts they use,
so the HTTP package does not depend on the daemon's assembly, and a test can hand the app
any object with these attributes (``tests/outbox/test_api.py`` hands it a real ``Daemon``
whose actors are not running).
"""

from __future__ import annotations

__all__ = ["DaemonContext"]

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

import pluggy

from daemon.actors.status import AccountHandle
from daemon.config import Config, Secret
from daemon.messages import Outcome
from daemon.store import AsyncStore

if TYPE_CHECKING:
    from daemon.oauth.manager import OAuthManager


class DaemonContext(Protocol):
    """The running daemon as the HTTP app sees it (all read from the Trio thread)."""

    @property
    def config(self) -> Config:
        """The frozen configuration the daemon was started with."""

    @property
    def store(self) -> AsyncStore:
        """The open store; ``await store.run(fn, ...)`` runs ``fn(tx)`` in its thread."""

    @property
    def pm(self) -> pluggy.PluginManager:
        """The plugin manager (blueprints, message actions)."""

    @property
    def handles(self) -> Mapping[str, AccountHandle]:
        """Each account's status and wake-up channel, by account id."""

    @property
    def api_token(self) -> Secret | None:
        """The bearer token ``/api/`` requires; None: loopback requests only."""

    @property
    def stopping(self) -> bool:
        """True once shutdown began: ``/readyz`` answers 503, new API requests too."""

    @property
    def oauth(self) -> OAuthManager:
        """Sign-ins, grants and the apps' health (``/oauth/*``, refusals of the send API)."""

    def readiness_problems(self) -> list[str]:
        """Why ``/readyz`` is 503 (empty when ready)."""

    def readiness_notes(self) -> list[str]:
        """What ``/readyz`` reports without failing: accounts waiting for a human."""

    def status(self) -> dict[str, Any]:
        """The ``/status`` document."""

    async def retry_message(self, source_key: str) -> Outcome:
        """Import a failed message again from its stored bytes; idempotent."""

    async def metrics_text(self) -> str:
        """The ``/metrics`` page (Prometheus text format)."""

    def mail_queued(self) -> None:
        """Mail was committed to the outbox: wake the outbox actor. Never blocks."""
