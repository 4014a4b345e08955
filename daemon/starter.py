"""``postroom init DIR``: a starter installation that passes ``check-config`` as written.

It writes four things into ``DIR`` and nothing else:

* ``postroom.toml``: a short configuration (SQLite store, one Maildir account, the
  HTTP listener on loopback) that points at the three below;
* ``runtime.json``: the shipped runtime example, its ``"<account_id>"`` placeholder
  replaced by the starter account;
* ``secret-key``: a fresh random key, created with mode 0600 (never readable by others,
  not even for an instant);
* ``Maildir/``: the account's empty Maildir (``cur``, ``new``, ``tmp``).

The trade-off: a starter that runs at once (a local Maildir, no server, no secret to
fill in) rather than a copy of the full example, which needs five secrets and real mail
servers before it validates. The full example stays one command away
(``postroom files postroom.example.toml``). Existing files are never overwritten: the
command refuses before writing anything.
"""

from __future__ import annotations

__all__ = ["STARTER_ACCOUNT", "StarterExists", "write_starter"]

import os
import secrets
from pathlib import Path

from daemon.shipped import shipped_file

#: The id of the starter's one account (also put into the runtime JSON).
STARTER_ACCOUNT = "support"

_CONFIG = f"""\
# postroom: a starter configuration, written by `postroom init`.
#
#   postroom check-config postroom.toml      validate (prints OK)
#   postroom run --config postroom.toml      run; mail dropped into Maildir/new is imported
#
# Relative paths are relative to this file's folder. Every key is in docs/config.md; the
# full example with comments: `postroom files postroom.example.toml`.

[daemon]
# The embedded SQLite store. Under systemd with StateDirectory=, leave `store` out: it
# then defaults to $STATE_DIRECTORY/postroom.db.
store = "sqlite:///postroom.db"
runtime = "runtime.json"
# Signs our Message-IDs: a random key made by `postroom init` (mode 0600). Back it up
# with the database. Under systemd: secret_key_file = "%d/secret-key" (LoadCredential=).
secret_key_file = "secret-key"
public_base_url = "http://127.0.0.1:8025"

[http]
bind = "127.0.0.1:8025"

[[accounts]]
id = "{STARTER_ACCOUNT}"
name = "Support"
email = "support@example.com"
auth = "maildir"
maildir = "Maildir"
"""

_FILES = ("postroom.toml", "runtime.json", "secret-key", "Maildir")


class StarterExists(FileExistsError):
    """``DIR`` already holds one of the starter's files; nothing was written."""


def write_starter(directory: Path) -> list[Path]:
    """Write the starter installation into ``directory`` (created if missing).

    Returns:
        The paths written, in order.

    Raises:
        StarterExists: one of the files is already there (nothing is changed).
    """
    taken = [directory / name for name in _FILES if (directory / name).exists()]
    if taken:
        raise StarterExists(", ".join(str(p) for p in taken) + " already exist(s); "
                            "nothing written")
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "postroom.toml"
    config.write_text(_CONFIG, encoding="utf-8")
    runtime = directory / "runtime.json"
    example = shipped_file("runtime.example.json").read_text(encoding="utf-8")
    runtime.write_text(example.replace('"<account_id>"', f'"{STARTER_ACCOUNT}"'),
                       encoding="utf-8")
    key = directory / "secret-key"
    _write_private(key, secrets.token_urlsafe(48) + "\n")
    maildir = directory / "Maildir"
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True)
    return [config, runtime, key, maildir]


def _write_private(path: Path, text: str) -> None:
    """Create ``path`` with mode 0600 from the start (O_EXCL: never follow or replace)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
