"""postroom's configuration: the TOML file, the runtime JSON it names, and their checks.

``load_config("postroom.toml")`` returns one frozen :class:`Config` or raises one
:class:`~daemon.errors.ConfigError` listing every problem; ``postroom check-config``
(:func:`check_config`) prints the same verdict. Every key is documented in docs/config.md.

Layout of the file, and the module that validates each part (as synapse's
``synapse/config/`` does, one module per section)::

    [daemon]               daemon.py         store, runtime JSON, public URL, secret key,
                                             logging, plugins
    [http]                 http_listener.py  the status/API/OAuth listener
    [[oauth_apps]]         connections.py    Microsoft Entra or Google OAuth applications
    [[imap_connections]]   connections.py    IMAP/SMTP servers for basic auth
    [[accounts]]           accounts.py       mailboxes; ``auth`` names an oauth app, a
                                             connection or "maildir"
    [crm]                  crm.py            CRM property names the runtime JSON has no
                                             key for, parent numbers
    [plugins.<name>]       load.py           free-form settings for plugin <name>
    runtime JSON           runtime.py        which CRM objects a message becomes

and what they share:

* ``load.py``: reading the file, the cross-checks between sections (ids, ``auth``
  references, addresses, runtime parents), warnings, and :class:`Config` itself;
* ``fields.py``: the base model (frozen, unknown keys rejected, secrets resolved), field
  types and small validators; ``units.py``: ``SECONDS``, ``MINUTES``, ``HOURS``,
  ``MEGABYTES``;
* ``secret_values.py``: :class:`Secret` and the ``X_env``/``X_file`` indirections;
  ``secretkey.py``: the installation's secret key (configured, or generated next to a
  SQLite store);
* ``problems.py``: pydantic errors turned into ``file: path: reason`` lines;
* ``check.py``: ``postroom check-config``; ``templates.py``: its deeper checks (every
  template compiles and renders against sample data; runtime names the store accepts).

No module here is named after a standard-library module (hence ``secret_values``, not
``secrets``, and ``http_listener``, not ``http``), so none can shadow one when a script
runs from this folder. Import the public names from ``daemon.config``; the section
modules are for code that needs something they do not re-export.
"""

from __future__ import annotations

__all__ = [
    "ENV_SUFFIX",
    "FILE_SUFFIX",
    "HOURS",
    "MAILDIR",
    "MEGABYTES",
    "MINUTES",
    "SECONDS",
    "Account",
    "AutoReply",
    "ClosedParent",
    "Config",
    "CrmNames",
    "DaemonSettings",
    "HttpSettings",
    "ImapConnection",
    "OAuthApp",
    "RuntimeConfig",
    "Secret",
    "SecretError",
    "check_config",
    "is_loopback",
    "load_config",
    "load_runtime",
    "load_secret_key",
    "parse_config",
    "parse_runtime",
    "resolve_secret",
]

from daemon.config.accounts import MAILDIR, Account, AutoReply, ClosedParent
from daemon.config.check import check_config
from daemon.config.connections import ImapConnection, OAuthApp
from daemon.config.crm import CrmNames
from daemon.config.daemon import DaemonSettings
from daemon.config.fields import is_loopback
from daemon.config.http_listener import HttpSettings
from daemon.config.load import Config, load_config, parse_config
from daemon.config.runtime import RuntimeConfig, load_runtime, parse_runtime
from daemon.config.secret_values import (
    ENV_SUFFIX,
    FILE_SUFFIX,
    Secret,
    SecretError,
    resolve_secret,
)
from daemon.config.secretkey import load_secret_key
from daemon.config.units import HOURS, MEGABYTES, MINUTES, SECONDS
