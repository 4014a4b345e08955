"""Loading the TOML configuration: one frozen :class:`Config`, built once at startup.

``load_config("postroom.toml")`` reads the file, follows every secret indirection
(:mod:`daemon.config.secret_values`), loads the runtime configuration JSON it names
(:mod:`daemon.config.runtime`), cross-checks the sections against each other, and either
returns a :class:`Config` or raises one :class:`~daemon.errors.ConfigError` listing *every*
problem found, each as ``file: path: reason`` (``postroom.toml: accounts[2].auth: no
oauth_app or imap_connection named "onprem"``). Problems that do not stop the daemon (a
runtime parent naming an unknown account, a client secret about to expire) are collected
in :attr:`Config.warnings` for ``check-config`` and the startup log.

Design choices, and why:

* Each section and each array entry is validated on its own (by the section modules of
  :mod:`daemon.config`), then cross-checked here, so one broken account does not hide the
  errors in the next one.
* Unknown keys are errors with a "did you mean" hint: a typo must not silently become a
  default (hypercorn's ``from_mapping`` accepts unknown keys; we do not).
* A literal secret (``password = "..."``) is an error: secrets come from ``X_env`` or
  ``X_file``. Resolved secrets are :class:`~daemon.config.secret_values.Secret` values
  whose repr is masked, and no error message quotes a value a user typed into a secret's
  place.
* Relative paths (``runtime``, ``maildir``, ``ca_file``, ``seed_objects``, secret files,
  ``sqlite:///relative.db``) are relative to the TOML file's folder, never to the working
  directory, so ``postroom run`` behaves the same from anywhere.
* Durations are seconds, sizes bytes, with defaults written in named units
  (``15 * SECONDS``, :mod:`daemon.config.units`).
"""

from __future__ import annotations

__all__ = ["SECRET_EXPIRY_WARNING_DAYS", "Config", "load_config", "parse_config"]

import os
import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from daemon.config.accounts import MAILDIR, Account
from daemon.config.connections import ImapConnection, OAuthApp
from daemon.config.crm import CrmNames
from daemon.config.daemon import DaemonSettings
from daemon.config.fields import is_loopback
from daemon.config.http_listener import HttpSettings
from daemon.config.problems import format_path, problems_from_validation_error, suggest
from daemon.config.runtime import RuntimeConfig, parse_runtime, read_json
from daemon.errors import ConfigError, ConfigProblem
from daemon.outbox.phrases import CATALOGUE, has_phrases

#: How long before ``client_secret_expires`` check-config starts warning (the reference
#: advises a reminder two weeks ahead).
SECRET_EXPIRY_WARNING_DAYS = 14

_SECRETISH = re.compile(r"(^|_)(password|passwd|secret|token|api_key|apikey|private_key)$")
_TOML_POSITION = re.compile(r"^(?P<reason>.*?) \(at line (?P<line>\d+), column (?P<col>\d+)\)$")

#: The templates shipped with postroom (``daemon/templates``; the same folder as
#: ``daemon.outbox.compose``'s fallback), searched after ``templates/`` next to the TOML.
_SHIPPED_TEMPLATES = Path(__file__).resolve().parents[1] / "templates"

_SECTIONS = ("daemon", "http", "oauth_apps", "imap_connections", "accounts", "crm",
             "plugins")


@dataclass(frozen=True)
class Config:
    """Everything the daemon was told, validated, with secrets resolved and masked.

    Built by :func:`load_config` (or :func:`parse_config` from a mapping). Plugin tables
    are kept as written and left out of the repr (they are free-form and might hold
    anything).

    Attributes:
        daemon, http: the ``[daemon]`` and ``[http]`` tables.
        oauth_apps, imap_connections, accounts: the arrays of tables, in file order.
        plugins: ``[plugins.<name>]`` tables by plugin name.
        runtime: the runtime configuration JSON (built-in defaults when
            ``daemon.runtime`` is not set).
        path: the TOML file (absolute); base_dir: its folder, against which relative
            paths were resolved.
        warnings: problems that do not stop the daemon; check-config prints them and
            ``run`` logs them.
        crm: the ``[crm]`` table (also reachable as ``runtime.crm``).
    """

    daemon: DaemonSettings
    http: HttpSettings
    oauth_apps: tuple[OAuthApp, ...]
    imap_connections: tuple[ImapConnection, ...]
    accounts: tuple[Account, ...]
    plugins: Mapping[str, dict[str, Any]] = field(repr=False)
    runtime: RuntimeConfig = field(repr=False)
    path: Path
    base_dir: Path
    warnings: tuple[ConfigProblem, ...] = ()
    crm: CrmNames = field(default_factory=CrmNames)

    @classmethod
    def from_toml(cls, path: str | Path, *, environ: Mapping[str, str] | None = None,
                  today: date | None = None) -> Config:
        """Read, validate and cross-check a postroom TOML file: :func:`load_config`.

        Hypercorn's habit (``Config.from_toml``) for callers that start from the class.
        """
        return load_config(path, environ=environ, today=today)

    def account(self, account_id: str) -> Account:
        """The account with ``id == account_id``.

        Raises:
            KeyError: no such account.
        """
        for account in self.accounts:
            if account.id == account_id:
                return account
        raise KeyError(f"no account named {account_id!r}")

    def connection_for(self, account: Account | str) -> OAuthApp | ImapConnection | None:
        """The oauth app or IMAP connection ``account.auth`` names; None for maildir."""
        if isinstance(account, str):
            account = self.account(account)
        if account.auth == MAILDIR:
            return None
        connections: tuple[OAuthApp | ImapConnection, ...] = (*self.oauth_apps,
                                                               *self.imap_connections)
        for connection in connections:
            if connection.id == account.auth:
                return connection
        raise KeyError(f"no oauth_app or imap_connection named {account.auth!r}")


def load_config(path: str | Path, *, environ: Mapping[str, str] | None = None,
                today: date | None = None) -> Config:
    """Read, validate and cross-check a postroom TOML file and its runtime JSON.

    Args:
        path: the TOML file; its name appears in error messages as given.
        environ: where ``X_env`` secrets are read (default ``os.environ``).
        today: the date secret expiry warnings are computed against (default: today).

    Returns:
        The frozen configuration, with ``warnings`` filled in.

    Raises:
        ConfigError: every problem in the TOML and the runtime JSON, one per line.
    """
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([ConfigProblem(file, "", "no such file")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([ConfigProblem(file, "", f"cannot be read: {exc}")]) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([_toml_syntax_problem(file, exc)]) from None
    absolute = Path(path).resolve()
    return parse_config(data, file=file, base_dir=absolute.parent, environ=environ,
                        today=today, path=absolute)


def parse_config(data: Mapping[str, Any], *, file: str, base_dir: Path,
                 environ: Mapping[str, str] | None = None, today: date | None = None,
                 path: Path | None = None) -> Config:
    """Validate an already-decoded TOML document (tests build configs this way).

    Args:
        data: the decoded TOML.
        file: the name to put in problems.
        base_dir: the folder relative paths are resolved against.
        environ: where ``X_env`` secrets are read (default ``os.environ``).
        today: for secret expiry warnings (default: today).
        path: the TOML file, if there is one (default: ``base_dir / file``).

    Raises:
        ConfigError: every problem found.
    """
    checker = _Checker(file, base_dir.resolve(),
                       os.environ if environ is None else environ, today or date.today())
    return checker.run(data, path or base_dir.resolve() / file)


def _toml_syntax_problem(file: str, exc: tomllib.TOMLDecodeError) -> ConfigProblem:
    message = str(exc)
    match = _TOML_POSITION.match(message)
    if match:
        where = f"line {match['line']}, column {match['col']}"
        return ConfigProblem(file, where, match["reason"])
    return ConfigProblem(file, "", message)


class _Checker:
    """One validation run: collects problems and warnings across sections."""

    def __init__(self, file: str, base_dir: Path, environ: Mapping[str, str],
                 today: date) -> None:
        self.file = file
        self.base_dir = base_dir
        self.context = {"base_dir": base_dir, "environ": environ}
        self.today = today
        self.problems: list[ConfigProblem] = []
        self.warnings: list[ConfigProblem] = []

    def error(self, loc: tuple[str | int, ...], reason: str) -> None:
        self.problems.append(ConfigProblem(self.file, format_path(loc), reason))

    def warn(self, loc: tuple[str | int, ...], reason: str, *, file: str | None = None) -> None:
        self.warnings.append(ConfigProblem(file or self.file, format_path(loc), reason))

    def run(self, data: Mapping[str, Any], path: Path) -> Config:
        for key in data:
            if key not in _SECTIONS:
                self.error((key,), "unknown key" + suggest(key, _SECTIONS))
        daemon = self.table(DaemonSettings, data, "daemon")
        http = self.table(HttpSettings, data, "http")
        apps = self.array(OAuthApp, data, "oauth_apps")
        connections = self.array(ImapConnection, data, "imap_connections")
        accounts = self.array(Account, data, "accounts")
        plugins = self.plugin_tables(data.get("plugins", {}))
        crm = self.table(CrmNames, data, "crm") or CrmNames()
        runtime, runtime_file = self.runtime(daemon, data.get("daemon"))
        runtime = runtime.with_crm(crm)
        self.check_secret_key(daemon)
        self.check_ids(apps, connections, accounts)
        self.check_accounts(_raw_ids(data, "oauth_apps"), _raw_ids(data, "imap_connections"),
                            accounts)
        self.check_runtime_accounts(runtime, runtime_file, accounts)
        self.check_outgoing(accounts)
        self.warn_about(daemon, http, apps, connections)
        if self.problems or daemon is None or http is None:
            raise ConfigError(self.problems)
        return Config(
            daemon=daemon, http=http, oauth_apps=_values(apps),
            imap_connections=_values(connections), accounts=_values(accounts),
            plugins=plugins, runtime=runtime, path=path, base_dir=self.base_dir,
            warnings=tuple(self.warnings), crm=crm,
        )

    # -- validation, one section or entry at a time ------------------------------------

    def validate(self, model: type[BaseModel], value: Any, loc: tuple[str | int, ...]) -> Any:
        try:
            return model.model_validate(value, context=self.context)
        except ValidationError as exc:
            self.problems += problems_from_validation_error(
                exc, file=self.file, model=model, prefix=loc, flavour="toml")
            return None

    def table(self, model: type[BaseModel], data: Mapping[str, Any], key: str) -> Any:
        value = data.get(key, {})
        if not isinstance(value, dict):
            self.error((key,), "must be a table")
            return None
        return self.validate(model, value, (key,))

    def array(self, model: type[BaseModel], data: Mapping[str, Any],
              key: str) -> dict[int, Any]:
        """Valid entries by index (invalid ones are reported and left out)."""
        value = data.get(key, [])
        if not isinstance(value, list):
            self.error((key,), f"must be an array of tables: write [[{key}]]")
            return {}
        valid = {}
        for index, entry in enumerate(value):
            item = self.validate(model, entry, (key, index))
            if item is not None:
                valid[index] = item
        return valid

    def plugin_tables(self, value: Any) -> dict[str, dict[str, Any]]:
        if not isinstance(value, dict):
            self.error(("plugins",), "must be a table of [plugins.<name>] tables")
            return {}
        tables = {}
        for name, table in value.items():
            if not isinstance(table, dict):
                self.error(("plugins", name), "must be a table: write [plugins.<name>]")
                continue
            for key in _literal_secrets(table):
                self.error(("plugins", name, key), f"secrets come from {key}_env or "
                           f"{key}_file, never from the file itself")
            tables[name] = table
        return tables

    def runtime(self, daemon: DaemonSettings | None,
                raw: Any) -> tuple[RuntimeConfig, str | None]:
        """The runtime JSON named by ``daemon.runtime``; built-in defaults without one."""
        label = raw.get("runtime") if isinstance(raw, dict) else None
        if not isinstance(label, str):
            return RuntimeConfig(), None
        # Even when [daemon] has other errors, check the JSON it names (if it exists:
        # a missing file is reported at daemon.runtime).
        path = daemon.runtime if daemon is not None else self.base_dir / label
        if path is None or not path.is_file():
            return RuntimeConfig(), None
        try:
            return parse_runtime(read_json(path, file=label), file=label), label
        except ConfigError as exc:
            self.problems += exc.problems
            return RuntimeConfig(), None

    # -- cross-checks ---------------------------------------------------------------

    def check_ids(self, apps: dict[int, OAuthApp], connections: dict[int, ImapConnection],
                  accounts: dict[int, Account]) -> None:
        for section, entries in (("oauth_apps", apps), ("imap_connections", connections),
                                 ("accounts", accounts)):
            first: dict[str, int] = {}
            for index, entry in entries.items():
                if entry.id in first:
                    self.error((section, index, "id"), f'duplicate id "{entry.id}" '
                               f"(also {section}[{first[entry.id]}])")
                first.setdefault(entry.id, index)
        app_ids = {app.id: index for index, app in apps.items()}
        for index, connection in connections.items():
            if connection.id in app_ids:
                self.error(("imap_connections", index, "id"),
                           f'"{connection.id}" is also the id of '
                           f"oauth_apps[{app_ids[connection.id]}]; accounts could not tell "
                           "them apart")
        for section, entries in (("oauth_apps", apps), ("imap_connections", connections)):
            for index, entry in entries.items():
                if entry.id == MAILDIR:
                    self.error((section, index, "id"), f'"{MAILDIR}" is reserved for '
                               "accounts that read a local Maildir")

    def check_secret_key(self, daemon: DaemonSettings | None) -> None:
        """Only the SQLite store can keep a generated key next to its database."""
        if daemon is not None and daemon.secret_key is None \
                and not daemon.store.startswith("sqlite:"):
            self.error(("daemon", "secret_key_env"), "required when the store is not SQLite "
                       "(or set secret_key_file)")

    def check_accounts(self, app_ids: set[str], connection_ids: set[str],
                       accounts: dict[int, Account]) -> None:
        """``auth`` names something, and the password fits it.

        The ids come from the raw file, so an account naming an app that has its own
        errors is not also told that the app does not exist.
        """
        owner: dict[str, int] = {}
        for index, account in accounts.items():
            loc = ("accounts", index)
            if account.auth == MAILDIR or account.auth in app_ids:
                if account.password is not None:
                    key = "password_env" if account.password_env else "password_file"
                    self.error((*loc, key), "only used when auth names an imap_connection")
            elif account.auth in connection_ids:
                if account.password is None:
                    self.error((*loc, "password_env"), "required when auth names an "
                               "imap_connection (or set password_file)")
            else:
                self.error((*loc, "auth"), "no oauth_app or imap_connection named "
                           f'"{account.auth}"')
            self.check_addresses(index, account, owner)

    def check_addresses(self, index: int, account: Account, owner: dict[str, int]) -> None:
        """An address (email or alias) may belong to one account only, once."""
        places: list[tuple[tuple[str | int, ...], str]] = [(("email",), account.email)]
        places += [(("aliases", n), alias) for n, alias in enumerate(account.aliases)]
        for key, address in places:
            other = owner.setdefault(address.lower(), index)
            if other != index or (key != ("email",) and address.lower() == account.email.lower()):
                whose = "this account" if other == index else f"accounts[{other}]"
                self.error(("accounts", index, *key),
                           f'"{address}" is already an address of {whose}')

    def check_runtime_accounts(self, runtime: RuntimeConfig, runtime_file: str | None,
                               accounts: dict[int, Account]) -> None:
        if runtime_file is None:
            return
        ids = {account.id for account in accounts.values()}
        for p, parent in enumerate(runtime.conversation_parents):
            for a, name in enumerate(parent.accounts):
                if name not in ids:
                    self.warn(("conversationParents", p, "accounts", a),
                              f'no account named "{name}" in {self.file}', file=runtime_file)
        self.warn_shared_accounts(runtime, runtime_file)
        for index, account in accounts.items():
            if runtime.parent_for(account.id) is None:
                self.warn(("accounts", index), f"no conversationParents entry in "
                          f"{runtime_file} serves \"{account.id}\": its mail cannot start "
                          "conversations")

    def warn_shared_accounts(self, runtime: RuntimeConfig, runtime_file: str) -> None:
        """An account listed by two conversation parents: the first wins (a warning).

        A warning, not an error: the reference itself allows an account on several
        parents (it then hides the message actions). The warning names the winner.
        """
        first: dict[str, int] = {}
        for p, parent in enumerate(runtime.conversation_parents):
            for a, name in enumerate(parent.accounts):
                if name in first and first[name] != p:
                    winner = runtime.conversation_parents[first[name]]
                    self.warn(("conversationParents", p, "accounts", a),
                              f'"{name}" is also listed by conversationParents[{first[name]}] '
                              f"({winner.limetype}), which wins: its new conversations get "
                              f"a {winner.limetype}, never a {parent.limetype}",
                              file=runtime_file)
                first.setdefault(name, p)

    def check_outgoing(self, accounts: dict[int, Account]) -> None:
        """Automatic mail needs phrases in the account's language and a template that exists.

        Both used to fall back silently at send time (to English, to the default template).
        """
        for index, account in accounts.items():
            if not has_phrases(account.language):
                self.error(("accounts", index, "language"),
                           f'no phrases for automatic mail in "{account.language}" '
                           f"(available: {', '.join(sorted(CATALOGUE))})")
            name = f"{account.template}.html"
            if not ((self.base_dir / "templates" / name).is_file()
                    or (_SHIPPED_TEMPLATES / name).is_file()):
                shipped = ", ".join(sorted(p.stem for p in _SHIPPED_TEMPLATES.glob("*.html")))
                self.error(("accounts", index, "template"),
                           f'no template "{account.template}": neither templates/{name} '
                           f"next to {self.file} nor a shipped one ({shipped})")

    def warn_about(self, daemon: DaemonSettings | None, http: HttpSettings | None,
                   apps: dict[int, OAuthApp], connections: dict[int, ImapConnection]) -> None:
        for index, app in apps.items():
            self.warn_expiry(index, app)
            self.warn_testing(index, app)
        for index, connection in connections.items():
            if not connection.verify_certificates:
                self.warn(("imap_connections", index, "verify_certificates"),
                          "false: the server's certificate is not checked")
        if http is not None and http.enabled and http.api_token is None \
                and not is_loopback(http.host):
            self.warn(("http", "bind"), f'"{http.bind}" is not a loopback address and no '
                      "api_token is set: the API is open to the network")

    def warn_expiry(self, index: int, app: OAuthApp) -> None:
        expires = app.client_secret_expires
        if expires is None:
            return
        days = (expires - self.today).days
        loc = ("oauth_apps", index, "client_secret_expires")
        if days < 0:
            self.warn(loc, f"the client secret expired on {expires}; create a new one")
        elif days <= SECRET_EXPIRY_WARNING_DAYS:
            self.warn(loc, f"the client secret expires on {expires} (in {days} days); "
                      "renew it now")

    def warn_testing(self, index: int, app: OAuthApp) -> None:
        if app.publishing_status == "testing":
            self.warn(("oauth_apps", index, "publishing_status"), '"testing": Google lets '
                      "refresh tokens of apps in Testing die after 7 days; publish the app")


def _raw_ids(data: Mapping[str, Any], section: str) -> set[str]:
    entries = data.get(section)
    if not isinstance(entries, list):
        return set()
    return {e["id"] for e in entries if isinstance(e, dict) and isinstance(e.get("id"), str)}


def _values(entries: dict[int, Any]) -> tuple[Any, ...]:
    return tuple(entries[index] for index in sorted(entries))


def _literal_secrets(table: Mapping[str, Any]) -> Iterator[str]:
    for key, value in table.items():
        if isinstance(key, str) and _SECRETISH.search(key) and not isinstance(value, dict):
            yield key
