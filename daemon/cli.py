"""The ``postroom`` command (also ``python -m daemon``).

::

    postroom run            --config FILE        run the daemon in the foreground
    postroom check-config   FILE                 validate; print OK or every error
    postroom accounts       --config FILE        state of each account, OAuth app warnings
    postroom authenticate ACCOUNT --config FILE  a one-time OAuth sign-in link for ACCOUNT
    postroom rekey-oauth --old-key-file FILE --config FILE   re-encrypt OAuth tokens
    postroom sync ACCOUNT   --config FILE        wake an account's actor in the running daemon
    postroom objects LIMETYPE [--where k=v]... [--json] --config FILE
    postroom deliver ACCOUNT --config FILE < message.eml
    postroom send CONVERSATION --coworker ID (--html FILE | --text TEXT) [--attach FILE]...
    postroom inspect FILE.eml... [--json] [--config FILE]
    postroom events [--after ID] [--follow] --config FILE
    postroom init DIR                            a starter postroom.toml, runtime JSON, key
    postroom backup FILE [--config FILE]         online copy of the SQLite store, checked
    postroom backup --check FILE                 check an existing backup
    postroom files [NAME]                        where the shipped example/service files are
    postroom --version

    postroom failed [--account A]  --config FILE      failed messages, with their ids
    postroom retry FAILED_ID       --config FILE      import a failed message again
    postroom purge --older-than 90d --config FILE     drop old raw bytes and events

Every command finds its configuration the same way (:mod:`daemon.config_lookup`):
``--config``, then ``$POSTROOM_CONFIG``, then ``./postroom.toml``, then
``/etc/postroom/postroom.toml``. Commands that talk to the running daemon exit 1 when it
cannot be reached.

``deliver`` is for MTA pipes (Postfix ``mailbox_command``, ``.forward``): exit 0 when the
message is stored, 1 only when the message itself is refused (recorded as a failure), and
75 (EX_TEMPFAIL: the MTA keeps the mail and retries) for everything else: the store cannot
be written (read-only, locked, disk full, its directory missing or not creatable), a bad
configuration, an unexpected error. The reason goes to stderr.
"""

from __future__ import annotations

__all__ = ["main"]

import argparse
import hashlib
import json
import os
import sys
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import httpx
import trio

if TYPE_CHECKING:
    from daemon.config import Config
    from daemon.messages import Outcome

EX_TEMPFAIL = 75
_UNREACHABLE = "the daemon is not running (or its HTTP API is disabled or unreachable)"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    args = _parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="postroom", description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", action="version", version=f"postroom {_version()}")
    sub = parser.add_subparsers(required=True, metavar="COMMAND")

    def command(name: str, func: Callable[[argparse.Namespace], int], help: str,
                config: bool = True) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        p.set_defaults(func=func)
        if config:
            p.add_argument("--config", type=Path, default=None,
                           help="the TOML file (default: $POSTROOM_CONFIG, ./postroom.toml, "
                                "/etc/postroom/postroom.toml)")
        return p

    p = command("run", _run, "run the daemon in the foreground")
    p.add_argument("--bind", metavar="HOST:PORT",
                   help="listen here instead of [http] bind (several nodes, one config)")
    p = command("check-config", _check_config, "validate a TOML or runtime JSON file")
    p.add_argument("file", type=Path, nargs="?", help="the file (default: as --config)")
    command("accounts", _accounts, "show each account's state")
    p = command("authenticate", _authenticate, "print a one-time link that signs an OAuth "
                                               "account in (the \"Authenticate\" button)")
    p.add_argument("account")
    p = command("rekey-oauth", _rekey_oauth, "re-encrypt the stored OAuth tokens after the "
                                             "secret key changed (daemon stopped)")
    p.add_argument("--old-key-file", type=Path, required=True,
                   help="a file holding the previous secret key (or the old <db>.key file)")
    p = command("sync", _sync, "make the running daemon sync an account now")
    p.add_argument("account")
    p = command("objects", _objects, "list CRM objects of a limetype")
    p.add_argument("limetype")
    p.add_argument("--where", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--json", action="store_true", help="print a JSON array")
    p.add_argument("--limit", type=int, default=1000)
    p = command("deliver", _deliver, "import one message from standard input (MTA pipe)")
    p.add_argument("account")
    p = command("send", _send, "send an agent's reply through the running daemon")
    p.add_argument("conversation", type=int)
    p.add_argument("--coworker", type=int, required=True, help="the author's coworker id")
    body = p.add_mutually_exclusive_group(required=True)
    body.add_argument("--html", type=Path, help="the body as an HTML file (- for stdin)")
    body.add_argument("--text", help="the body as plain text")
    p.add_argument("--account", help="the sending account (default: the conversation's)")
    p.add_argument("--attach", type=Path, action="append", default=[], metavar="FILE")
    p.add_argument("--snippet", type=int, action="append", default=[], metavar="ID",
                   help="a text snippet used in the body (counts its use)")
    p.add_argument("--action", help="a sendMessageAction id to run after queueing")
    p = command("events", _events, "print the event log as JSON lines")
    p.add_argument("--after", type=int, default=0, metavar="ID",
                   help="only events with a higher id")
    p.add_argument("--follow", action="store_true", help="keep printing new events")
    p = command("failed", _failed, "list the messages whose processing failed")
    p.add_argument("--account", help="only this account's")
    p.add_argument("--after", type=int, default=0, metavar="ID", help="only higher ids")
    p = command("retry", _retry, "import a failed message again (after fixing the cause)")
    p.add_argument("failed_id", type=int, metavar="FAILED_ID",
                   help="the id `postroom failed` prints")
    p = command("purge", _purge, "remove old raw message bytes and events now")
    p.add_argument("--older-than", required=True, metavar="AGE",
                   help="e.g. 90d, 12w or 36h; failed, unresolved messages are always kept")
    p = command("inspect", _inspect, "show what the pipeline sees in .eml files; stores "
                                     "nothing")
    p.add_argument("files", nargs="+", type=Path)
    p.add_argument("--json", action="store_true", help="one JSON object per file per line")
    p = command("init", _init, "write a starter postroom.toml, runtime JSON and secret key "
                               "into DIR", config=False)
    p.add_argument("dir", type=Path)
    p = command("backup", _backup, "copy the SQLite store while it runs, then check the copy")
    p.add_argument("file", type=Path)
    p.add_argument("--check", action="store_true",
                   help="only check an existing backup FILE (no --config needed)")
    p = command("files", _files, "print where the shipped example and service files are",
                config=False)
    p.add_argument("name", nargs="?", help="print only this file's path")
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("postroom")
    except PackageNotFoundError:
        from daemon import __version__

        return __version__



def _config_path(args: argparse.Namespace) -> Path:
    """``--config``, ``$POSTROOM_CONFIG``, ./postroom.toml, /etc/postroom (exit 1 if none)."""
    from daemon.config_lookup import NoConfigError, locate_config

    try:
        return locate_config(args.config, os.environ)
    except NoConfigError as exc:
        print(f"postroom: {exc}", file=sys.stderr)
        raise SystemExit(1) from None


def _load(args: argparse.Namespace) -> Any:
    from daemon.config import load_config
    from daemon.errors import ConfigError

    try:
        return load_config(_config_path(args))
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        raise SystemExit(1) from None


# -- commands -------------------------------------------------------------------------


def _run(args: argparse.Namespace) -> int:
    """Run the daemon; a fatal start-up error is one ``daemon.failed`` line and exit 1."""
    from daemon.startup import run_or_report

    if args.bind is not None:
        _check_bind(args.bind)  # a bad --bind is refused before anything starts
        return run_or_report(_config_path(args), adjust=partial(_with_bind, bind=args.bind))
    return run_or_report(_config_path(args))


def _check_bind(bind: str) -> None:
    """Exit 2 when ``--bind`` is not ``HOST:PORT`` (checked as the TOML's bind is)."""
    from daemon.nodes import parse_bind

    try:
        parse_bind(bind)
    except ValueError as exc:
        print(f"--bind: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def _with_bind(config: Config, bind: str) -> Config:
    """``config`` with ``[http] bind`` replaced by ``--bind``."""
    import dataclasses

    return dataclasses.replace(config, http=config.http.model_copy(update={"bind": bind}))


def _check_config(args: argparse.Namespace) -> int:
    from daemon.config import check_config
    from daemon.plugins.actions import plugin_warnings

    return check_config(args.file if args.file is not None else _config_path(args),
                        plugin_checks=plugin_warnings)


def _accounts(args: argparse.Namespace) -> int:
    config = _load(args)
    live = _daemon_get(config, "/status")
    states = {a["account"]: a for a in live["accounts"]} if live else {}
    print(f"{'ACCOUNT':<20} {'AUTH':<12} {'STATE':<12} {'IMPORTED':>8} {'FAILED':>6}  "
          "LAST ERROR")
    for account in config.accounts:
        s = states.get(account.id, {})
        counts = s.get("counts", {})
        state = s.get("state", "not running" if live is None else "unknown")
        print(f"{account.id:<20} {account.auth:<12} {state:<12} "
              f"{counts.get('imported', '-'):>8} {counts.get('failed', '-'):>6}  "
              f"{s.get('last_error') or ''}")
    from daemon.oauth.commands import accounts_warnings

    for line in accounts_warnings(config):
        print(line)
    if live is None:
        print(_UNREACHABLE, file=sys.stderr)
        return 1
    return 0


def _authenticate(args: argparse.Namespace) -> int:
    from daemon.oauth.commands import authenticate

    return authenticate(_load(args), args.account)


def _rekey_oauth(args: argparse.Namespace) -> int:
    from daemon.oauth.commands import rekey

    return rekey(_load(args), args.old_key_file)


def _sync(args: argparse.Namespace) -> int:
    config = _load(args)
    response = _daemon_request(config, "POST", f"/api/v1/accounts/{args.account}/sync")
    if response is None:
        print(_UNREACHABLE, file=sys.stderr)
        return 1
    if response.status_code != 202:
        print(response.json().get("error", response.text), file=sys.stderr)
        return 1
    print(f"{args.account}: sync requested")
    return 0


def _objects(args: argparse.Namespace) -> int:
    from daemon.http.app import filter_value
    from daemon.store import open_store

    config = _load(args)
    where = {}
    for item in args.where:
        key, sep, value = item.partition("=")
        if not sep:
            print(f"--where {item!r}: expected KEY=VALUE", file=sys.stderr)
            return 2
        where[key] = filter_value(value)
    from daemon.crm.limetypes import is_known_limetype, runtime_limetypes

    store = open_store(config.daemon.store)
    try:
        with store.transaction() as tx:
            known = is_known_limetype(tx, config.runtime, args.limetype)
            found = tx.find(args.limetype, where, limit=args.limit) if known else []
    finally:
        store.close()
    if not known:
        names = ", ".join(sorted(runtime_limetypes(config.runtime)))
        print(f"postroom objects: unknown limetype {args.limetype!r} (known: {names})",
              file=sys.stderr)
        return 2
    rows = [obj.as_json() for obj in found]
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=2, default=str))
    else:
        for row in rows:
            print(json.dumps(row, ensure_ascii=False, default=str))
    return 0


def _deliver(args: argparse.Namespace) -> int:
    try:
        config = _load(args)
    except SystemExit:
        return EX_TEMPFAIL
    accounts = {a.id: a for a in config.accounts}
    if args.account not in accounts:
        print(f"postroom deliver: no account named {args.account!r}", file=sys.stderr)
        return EX_TEMPFAIL
    if not config.account(args.account).enabled:
        print(f"postroom deliver: account {args.account!r} is disabled (enabled = false): "
              "nothing is imported for it", file=sys.stderr)
        return 1
    limit = accounts[args.account].max_message_bytes
    raw = sys.stdin.buffer.read(limit + 1)
    if len(raw) > limit:
        size = len(raw) + _drain(sys.stdin.buffer)  # read to the end so the MTA sees us exit
        print(f"postroom deliver: message of {size} bytes exceeds max_message_bytes "
              f"({limit}); not stored", file=sys.stderr)
        return 1
    try:
        outcome = trio.run(_deliver_one, config, args.account, raw)
    except Exception as exc:  # nothing was stored: never make the MTA bounce the mail
        print(f"postroom deliver: temporary failure: {type(exc).__name__}: {exc}",
              file=sys.stderr)
        return EX_TEMPFAIL
    if outcome.failed:
        print(f"postroom deliver: {outcome.reason} (raw message kept as "
              f"{outcome.source_key})", file=sys.stderr)
        return 1
    return 0


def _drain(stream: BinaryIO) -> int:
    """Read ``stream`` to its end in 1 MiB pieces, keeping nothing; the bytes read."""
    total = 0
    while chunk := stream.read(1 << 20):
        total += len(chunk)
    return total


async def _deliver_one(config: Config, account: str, raw: bytes) -> Outcome:
    from daemon.actors.processor import Processor
    from daemon.app import build_plugin_manager, open_daemon_store
    from daemon.config import load_secret_key
    from daemon.messages import RawMessage, source_key
    from daemon.outbox.queue import mail_queuer

    store = await open_daemon_store(config)
    try:
        secret = load_secret_key(config)
        processor = Processor(config, store, build_plugin_manager(config), secret=secret,
                              queue_mail=mail_queuer(config, secret))
        key = source_key("deliver", account, hashlib.sha256(raw).hexdigest())
        return await processor.process(RawMessage(account=account, source_key=key, raw=raw))
    finally:
        await store.aclose()


def _send(args: argparse.Namespace) -> int:
    """Upload attachments, then POST the reply; print where it was queued."""
    import html
    import mimetypes

    config = _load(args)
    if args.text is not None:
        body = "<p>" + html.escape(args.text).replace("\n", "<br>\n") + "</p>"
    else:
        body = (sys.stdin.read() if str(args.html) == "-"
                else args.html.read_text(encoding="utf-8"))
    files = []
    for path in args.attach:
        kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        uploaded = _daemon_request(config, "POST", "/api/v1/files",
                                   params={"filename": path.name}, content=path.read_bytes(),
                                   headers={"Content-Type": kind})
        if uploaded is None or uploaded.status_code != 201:
            return _send_failed(uploaded)
        files.append(uploaded.json()["id"])
    request: dict[str, Any] = {"coworker": args.coworker, "html": body, "attachments": files,
                               "textSnippets": args.snippet}
    for key, value in (("account", args.account), ("sendMessageAction", args.action)):
        if value is not None:
            request[key] = value
    response = _daemon_request(config, "POST",
                               f"/api/v1/conversations/{args.conversation}/messages",
                               json=request)
    if response is None or response.status_code != 202:
        return _send_failed(response)
    answer = response.json()
    print(f"message {answer['conversationMessage']} queued from {answer['account']} to "
          + ", ".join(answer["recipients"]))
    return 0


def _send_failed(response: httpx.Response | None) -> int:
    if response is None:
        print(_UNREACHABLE, file=sys.stderr)
    else:
        try:
            reason = response.json().get("error", response.text)
        except ValueError:
            reason = response.text
        print(f"postroom send: {response.status_code}: {reason}", file=sys.stderr)
    return 1


def _events(args: argparse.Namespace) -> int:
    """Print the event log; ``--follow`` streams it from the daemon's ``/events``
    websocket (:mod:`daemon.event_follow`), reading the store when that is not possible."""
    from daemon.event_follow import follow, print_event, read_store

    config = _load(args)
    if not args.follow:
        read_store(config, args.after, follow=False, emit=print_event)
        return 0
    return follow(config, args.after, emit=print_event)


def _failed(args: argparse.Namespace) -> int:
    """Print the failed messages (``id account created error``) from the running daemon."""
    config = _load(args)
    params: dict[str, Any] = {"_after": args.after, "_limit": 1000}
    if args.account:
        params["account"] = args.account
    response = _daemon_request(config, "GET", "/api/v1/failed", params=params)
    if response is None:
        print(_UNREACHABLE, file=sys.stderr)
        return 1
    if response.status_code != 200:
        return _refused("failed", response)
    for item in response.json():
        print(f"{item['id']:>8}  {item['account']:<16} {item['createdAt'] or '':<32} "
              f"{item['error'] or ''}")
    return 0


def _retry(args: argparse.Namespace) -> int:
    """Ask the running daemon to import failed message ``FAILED_ID`` again."""
    config = _load(args)
    response = _daemon_request(config, "POST", f"/api/v1/failed/{args.failed_id}/retry",
                               timeout=60.0)
    if response is None:
        print(_UNREACHABLE, file=sys.stderr)
        return 1
    if response.status_code != 200:
        return _refused("retry", response)
    answer = response.json()
    print(f"{args.failed_id}: {answer['status']}"
          + (f" ({answer['error']})" if answer.get("error") else ""))
    return 1 if answer["status"] == "failed" else 0


def _purge(args: argparse.Namespace) -> int:
    """Purge old raw bytes and events in the store (the daemon may be running)."""
    from daemon.retention import parse_age, purge
    from daemon.store import open_store

    try:
        days = parse_age(args.older_than)
    except ValueError as exc:
        print(f"postroom purge: --older-than {exc}", file=sys.stderr)
        return 2
    config = _load(args)
    store = open_store(config.daemon.store)
    try:
        with store.transaction() as tx:
            done = purge(tx, days)
    finally:
        store.close()
    print(f"purged the bytes of {done.raw_messages} raw messages and {done.events} events "
          f"older than {days:g} days")
    return 0


def _refused(command: str, response: httpx.Response) -> int:
    try:
        reason = response.json().get("error", response.text)
    except ValueError:
        reason = response.text
    print(f"postroom {command}: {response.status_code}: {reason}", file=sys.stderr)
    return 1


def _inspect(args: argparse.Namespace) -> int:
    from daemon.config_lookup import NoConfigError, locate_config
    from daemon.inspection import inspect_files

    try:
        located: Path | None = locate_config(args.config, os.environ)
    except NoConfigError:
        located = None
    config = _load(args) if located is not None and located.exists() else None
    return inspect_files(args.files, config=config, as_json=args.json)


def _init(args: argparse.Namespace) -> int:
    from daemon.starter import StarterExists, write_starter

    try:
        written = write_starter(args.dir)
    except StarterExists as exc:
        print(f"postroom init: {exc}", file=sys.stderr)
        return 1
    for path in written:
        print(f"wrote {path}")
    print(f"next: postroom check-config {written[0]}")
    return 0


def _backup(args: argparse.Namespace) -> int:
    from daemon.backup import backup_sqlite, check_backup
    from daemon.errors import StoreError

    try:
        if args.check:
            report = check_backup(args.file)
        else:
            database = _load(args).daemon.sqlite_path
            if database is None:
                print("postroom backup: the store is not a SQLite file; back up PostgreSQL "
                      "with pg_dump (docs/operations.md)", file=sys.stderr)
                return 2
            report = backup_sqlite(database, args.file)
    except (StoreError, OSError) as exc:
        print(f"postroom backup: {exc}", file=sys.stderr)
        return 1
    print(f"OK: {report.path} ({report.summary()})")
    return 0


def _files(args: argparse.Namespace) -> int:
    from daemon.shipped import SHIPPED, shipped_file

    if args.name is not None:
        if args.name not in SHIPPED:
            print(f"postroom files: no shipped file {args.name!r}; one of: "
                  + ", ".join(SHIPPED), file=sys.stderr)
            return 1
        print(shipped_file(args.name))
        return 0
    for name, what in SHIPPED.items():
        print(f"{shipped_file(name)}\t{what}")
    return 0


# -- talking to the running daemon ----------------------------------------------------


def _daemon_request(config: Config, method: str, path: str, **kwargs: Any
                    ) -> httpx.Response | None:
    from daemon.event_follow import listener_address

    address = listener_address(config)
    if address is None:
        return None
    port = address.rpartition(":")[2]
    headers = dict(kwargs.pop("headers", {}))
    if config.http.api_token is not None:
        headers["Authorization"] = f"Bearer {config.http.api_token.reveal()}"
    else:  # the token-less API answers only a loopback Host (the bind may be another IP)
        headers.setdefault("Host", f"localhost:{port}")
    try:
        return httpx.request(method, f"http://{address}{path}", headers=headers,
                             timeout=kwargs.pop("timeout", 5.0), **kwargs)
    except httpx.TransportError:
        return None


def _daemon_get(config: Config, path: str) -> Any:
    response = _daemon_request(config, "GET", path)
    return response.json() if response is not None and response.status_code == 200 else None


if __name__ == "__main__":
    raise SystemExit(main())
