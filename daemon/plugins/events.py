"""Values handed to plugin hooks (see :mod:`daemon.plugins.hookspecs`)."""

from __future__ import annotations

__all__ = ["ActionContext", "Candidate", "MessageImported"]

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Candidate:
    """A conversation that identification found, and how."""

    conversation_id: int
    method: str  # signed-id | body-marker | references | subject-tag


@dataclass(frozen=True, slots=True)
class MessageImported:
    """What ``postroom_message_imported`` receives after a commit."""

    account: str
    source_key: str
    conversation_id: int
    conversation_message_id: int
    parent_limetype: str
    parent_id: int | None
    new_conversation: bool
    kind: str
    rules: tuple[str, ...]
    follower_ids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class ActionContext:
    """What ``postroom_message_action`` receives.

    ``update_parent(props)`` changes the parent's properties in its own transaction.
    """

    account: str
    conversation_id: int
    conversation_message_id: int
    parent_limetype: str
    parent_id: int
    update_parent: Callable[[dict[str, Any]], Awaitable[None]]
