"""Microsoft Graph plumbing below the Graph actor (as ``daemon/imap/`` is below IMAP's).

Modules, one concept each:

* :mod:`~daemon.graph.client` — one mailbox's HTTP client: tokens (a Protocol), the
  immutable-id header, at most 4 requests in flight, Retry-After, error translation;
* :mod:`~daemon.graph.folders` — folder names to ids, the failure folder created;
* :mod:`~daemon.graph.delta` — delta rounds, the source of truth for intake;
* :mod:`~daemon.graph.subscriptions` — the change-notification subscription's lifecycle;
* :mod:`~daemon.graph.notifications` — what the webhook routes check and whom they wake;
* :mod:`~daemon.graph.send` — the outbox's Graph transport.

Nothing here imports ``daemon.actors``.
"""

from daemon.graph.client import GraphClient, TokenProvider, static_token

__all__ = ["GraphClient", "TokenProvider", "static_token"]
