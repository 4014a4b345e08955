"""The ``postroom`` command (also ``python -m daemon``).

::

    postroom run            --config FILE        run the daemon in the foreground
    postroom check-config   FILE                 validate; print OK or every error
    postroom accounts       --config FILE        state of each account
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

``--config`` defaults to ``$POSTROOM_CONFIG``, then ``./postroom.toml``.

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
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import trio

EX_TEMPFAIL = 75


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

    def command(name: str, func: Any, help: str, config: bool = True) -> Any:
        p = sub.add_parser(name, help=help, description=help)
        p.set_defaults(func=func)
        if config:
            p.add_argument("--config", type=Path, default=_default_config(),
                           help="the TOML file (default: $POSTROOM_CONFIG or postroom.toml)")
        return p

    p = command("run", _run, "run the daemon in the foreground")
    p.add_argument("--bind", metavar="HOST:PORT",
                   help="listen here instead of [http] bind (several nodes, one config)")
    p = command("check-config", _check_config, "validate a TOML or runtime JSON file",
                config=False)
    p.add_argument("file", type=Path)
    command("accounts", _accounts, "show each account's state")
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


def _default_config() -> Path:
    return Path(os.environ.get("POSTROOM_CONFIG", "postroom.toml"))


def _load(path: Path) -> Any:
    from daemon.config import load_config
    from daemon.errors import ConfigError

    try:
        return load_config(path)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        raise SystemExit(1) from None


# -- commands -------------------------------------------------------------------------


def _run(args: argparse.Namespace) -> int:
    from daemon.app import run_daemon
    from daemon.log import configure_logging

    config = _load(args.config)
    if args.bind is not None:
        config = _with_bind(config, args.bind)
    configure_logging(config.daemon.log_format, config.daemon.log_level)
    trio.run(run_daemon, config)
    return 0


def _with_bind(config: Any, bind: str) -> Any:
    """``config`` with ``[http] bind`` replaced by ``--bind`` (checked as the TOML is)."""
    import dataclasses

    from daemon.nodes import parse_bind

    try:
        parse_bind(bind)
    except ValueError as exc:
        print(f"--bind: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    return dataclasses.replace(config, http=config.http.model_copy(update={"bind": bind}))


def _check_config(args: argparse.Namespace) -> int:
    from daemon.config import check_config

    return check_config(args.file)


def _accounts(args: argparse.Namespace) -> int:
    config = _load(args.config)
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
    return 0


def _sync(args: argparse.Namespace) -> int:
    config = _load(args.config)
    response = _daemon_request(config, "POST", f"/api/v1/accounts/{args.account}/sync")
    if response is None:
        print("the daemon is not running (or its HTTP API is disabled)", file=sys.stderr)
        return 1
    if response.status_code != 202:
        print(response.json().get("error", response.text), file=sys.stderr)
        return 1
    print(f"{args.account}: sync requested")
    return 0


def _objects(args: argparse.Namespace) -> int:
    from daemon.http.app import filter_value
    from daemon.store import open_store

    config = _load(args.config)
    where = {}
    for item in args.where:
        key, sep, value = item.partition("=")
        if not sep:
            print(f"--where {item!r}: expected KEY=VALUE", file=sys.stderr)
            return 2
        where[key] = filter_value(value)
    store = open_store(config.daemon.store)
    try:
        with store.transaction() as tx:
            found = tx.find(args.limetype, where, limit=args.limit)
    finally:
        store.close()
    rows = [obj.as_json() for obj in found]
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=2, default=str))
    else:
        for row in rows:
            print(json.dumps(row, ensure_ascii=False, default=str))
    return 0


def _deliver(args: argparse.Namespace) -> int:
    raw = sys.stdin.buffer.read()
    try:
        config = _load(args.config)
    except SystemExit:
        return EX_TEMPFAIL
    if args.account not in {a.id for a in config.accounts}:
        print(f"postroom deliver: no account named {args.account!r}", file=sys.stderr)
        return EX_TEMPFAIL
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


async def _deliver_one(config: Any, account: str, raw: bytes) -> Any:
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

    config = _load(args.config)
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
        print("the daemon is not running (or its HTTP API is disabled)", file=sys.stderr)
    else:
        try:
            reason = response.json().get("error", response.text)
        except ValueError:
            reason = response.text
        print(f"postroom send: {response.status_code}: {reason}", file=sys.stderr)
    return 1


def _events(args: argparse.Namespace) -> int:
    import time

    from daemon.store import open_store

    config = _load(args.config)
    store = open_store(config.daemon.store)
    after = args.after
    try:
        while True:
            with store.transaction() as tx:
                events = tx.events_since(after, limit=500)
            for event in events:
                print(json.dumps({"id": event.id, "event": event.kind,
                                  "account": event.account, "at": event.created_at,
                                  **event.data}, default=str), flush=True)
                after = event.id
            if not args.follow:
                return 0
            if not events:
                time.sleep(0.5)  # a CLI polling the store; the daemon is not involved
    finally:
        store.close()


def _inspect(args: argparse.Namespace) -> int:
    from daemon.inspection import inspect_files

    config = _load(args.config) if args.config.exists() else None
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
            database = _load(args.config).daemon.sqlite_path
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


def _daemon_request(config: Any, method: str, path: str, **kwargs: Any
                    ) -> httpx.Response | None:
    if not config.http.enabled:
        return None
    host, _, port = config.http.bind.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    if host in ("0.0.0.0", "::"):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    headers = dict(kwargs.pop("headers", {}))
    if config.http.api_token is not None:
        headers["Authorization"] = f"Bearer {config.http.api_token.reveal()}"
    try:
        return httpx.request(method, f"http://{host}:{port}{path}", headers=headers,
                             timeout=kwargs.pop("timeout", 5.0), **kwargs)
    except httpx.TransportError:
        return None


def _daemon_get(config: Any, path: str) -> Any:
    response = _daemon_request(config, "GET", path)
    return response.json() if response is not None and response.status_code == 200 else None


if __name__ == "__main__":
    raise SystemExit(main())
