"""A sender whitelist for automatic mail: which bots may open conversations.

The reference's "Filtering Bot Senders": with ``allowAutomaticEmails`` false, automatic
mail only joins existing conversations; this plugin lets chosen senders through anyway
(and, with ``block``, keeps chosen senders out even when automatic mail is allowed).

Configure it in the TOML file::

    [plugins.whitelist]
    allow = ["alerts@monitoring.example.com", "*@status.example.org"]
    block = ["noreply@marketing.example.com"]

Patterns are shell-style (``fnmatch``), compared case-insensitively with the sender's
address. ``block`` wins over ``allow``. Senders matching neither get no opinion, so the
runtime setting decides.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from fnmatch import fnmatchcase
from typing import Any

from daemon import Classification, ParsedMessage, hookimpl


class SenderWhitelist:
    """The plugin object; the entry point ``postroom.plugins: whitelist`` loads it."""

    def __init__(self, allow: Iterable[str] = (), block: Iterable[str] = ()) -> None:
        self.configure(allow, block)

    def configure(self, allow: Iterable[str], block: Iterable[str]) -> None:
        self.allow = tuple(p.lower() for p in allow)
        self.block = tuple(p.lower() for p in block)

    @hookimpl
    def postroom_configure(self, settings: Mapping[str, Any]) -> None:
        unknown = set(settings) - {"allow", "block"}
        if unknown:
            raise ValueError(f"[plugins.whitelist]: unknown keys {sorted(unknown)}")
        self.configure(settings.get("allow", ()), settings.get("block", ()))

    @hookimpl
    def postroom_allow_sender(self, message: ParsedMessage,
                              classification: Classification) -> bool | None:
        if message.from_ is None:
            return None
        sender = message.from_.email.lower()
        if any(fnmatchcase(sender, pattern) for pattern in self.block):
            return False
        if any(fnmatchcase(sender, pattern) for pattern in self.allow):
            return True
        return None


plugin = SenderWhitelist()
