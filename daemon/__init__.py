"""postroom: an email integration daemon for CRM and helpdesk systems.

The package layout (one concept per module; docs/architecture.md maps each concept to
its file)::

    daemon/
      app.py            the root nursery: store, processor, actors, HTTP; shutdown
      cli.py            the ``postroom`` command; inspection.py ``postroom inspect``
      supervisor.py     one-for-one restarts with backoff; parking on auth errors
      messages.py       values between actors (RawMessage, Outcome, Submit)
      errors.py         the exception tree
      log.py            structlog setup and redaction; terminal.py safe terminal text
      limiters.py       worker-thread limits shared per kind; sdnotify.py systemd
      backup.py         ``postroom backup``; starter.py ``postroom init``; shipped.py
                        the example files in the wheel (share/)
      config/           the TOML configuration, one module per section; the runtime
                        JSON (runtime.py), secrets, check-config
      actors/           maildir.py, imap.py, graph.py (intake), processor.py,
                        outbox.py, status.py
      imap/             IMAP plumbing below the actors: session, login, IDLE, folder
                        sync, the Sent folder
      mail/             MIME, charsets, headers, sender, parse, classify, bounces/,
                        signed ids
                        (bytes -> values)
      crm/              mapping, followers, identify, importer, bounces, errors
                        (values -> objects)
      outbox/           queueing (queue, recipients, content, copies), composing,
                        templates, SMTP / Maildir transports, delivery bookkeeping,
                        the Sent copy
      store/            the store protocol; statements once (transaction.py);
                        SQLite and PostgreSQL dialects; migrations
      http/             the Quart-Trio app behind Hypercorn, routes per resource
      graph/            Microsoft Graph plumbing below the actors: client (throttling),
                        delta, folders, subscriptions, webhook registry, sending
      oauth/            Microsoft (msal) and Google sign-in, tokens sealed at rest,
                        refresh, secret-expiry warnings
      plugins/          hookspecs, events, the tolerant plugin manager
      templates/        the shipped default mail template

What plugins (``plugins_contrib/``) and tests may import is re-exported here.
"""

from daemon.errors import (
    AuthError,
    ConfigError,
    PermanentError,
    PostroomError,
    TransientError,
)
from daemon.mail.model import (
    Address,
    Attachment,
    BounceInfo,
    Classification,
    MessageKind,
    ParsedMessage,
)
from daemon.messages import Outcome, OutcomeStatus, RawMessage
from daemon.plugins.events import ActionContext, Candidate, MessageImported
from daemon.plugins.hookspecs import hookimpl

__all__ = [
    "ActionContext",
    "Address",
    "Attachment",
    "AuthError",
    "BounceInfo",
    "Candidate",
    "Classification",
    "ConfigError",
    "MessageImported",
    "MessageKind",
    "Outcome",
    "OutcomeStatus",
    "ParsedMessage",
    "PermanentError",
    "PostroomError",
    "RawMessage",
    "TransientError",
    "hookimpl",
]

__version__ = "0.1.0"
