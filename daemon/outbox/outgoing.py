"""The composer of one account: what queueing its mail needs that is not in the store.

:class:`Outgoing` is built once per account (by the processor's
:func:`~daemon.outbox.queue.mail_queuer`, by the API) and handed to
:func:`daemon.outbox.queue.queue_to_followers` and the modules it calls
(:mod:`~daemon.outbox.recipients`, :mod:`~daemon.outbox.content`,
:mod:`~daemon.outbox.copies`).
"""

from __future__ import annotations

__all__ = ["Outgoing"]

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import jinja2

from daemon.outbox.compose import environment_for


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Outgoing:
    """Everything composing mail for one account needs that is not in the store.

    Build it with :meth:`from_config`; the processor and the API keep one per account.

    Attributes:
        config: the whole :class:`~daemon.config.Config` (accounts, runtime, daemon).
        secret: the installation's key (:func:`daemon.config.load_secret_key`), which
            signs Message-IDs.
        account_id: the sending account.
        now: the clock for the Date header (tests pass a fixed one).
        templates: the template environment; by default the one for ``config.base_dir``.
    """

    config: Any
    secret: bytes = field(repr=False)
    account_id: str
    now: Callable[[], datetime] = _utcnow
    templates: jinja2.Environment | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.templates is None:
            object.__setattr__(self, "templates",
                               environment_for(self.config))

    @classmethod
    def from_config(cls, config: Any, secret: bytes, account_id: str, *,
                    now: Callable[[], datetime] | None = None) -> Outgoing:
        """The composer for ``account_id``.

        Raises:
            KeyError: no such account.
            ValueError: ``secret`` is shorter than 16 bytes.
        """
        config.account(account_id)
        if len(secret) < 16:
            raise ValueError("secret: at least 16 bytes are required")
        return cls(config=config, secret=secret, account_id=account_id, now=now or _utcnow,
                   templates=environment_for(config))

    @property
    def account(self) -> Any:
        return self.config.account(self.account_id)

    @property
    def runtime(self) -> Any:
        return self.config.runtime

    @property
    def own_addresses(self) -> frozenset[str]:
        """Every account's address and aliases, lower-cased."""
        return frozenset(a for account in self.config.accounts for a in account.addresses)
