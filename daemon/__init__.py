"""postroom: an email integration daemon for CRM and helpdesk systems.

The package layout (one concept per module)::

    daemon/
      app.py            the root nursery: store, processor, actors, HTTP
      supervisor.py     one-for-one restarts with backoff; parking on auth errors
      settings.py       the TOML configuration; runtime.py the runtime JSON
      messages.py       values between actors (RawMessage, Outcome)
      errors.py         the exception tree
      actors/           maildir.py, imap.py (intake), processor.py, status.py
      mail/             parse, classify, bounces, signed ids (bytes -> values)
      crm/              mapping, followers, identify, importer (values -> objects)
      store/            the store protocol; SQLite and PostgreSQL
      http/             the Quart-Trio app
      plugins/          hookspecs and the tolerant plugin manager

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
