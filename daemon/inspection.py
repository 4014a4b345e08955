"""``postroom inspect``: what the pipeline sees in a message, without storing anything.

The tool an administrator reaches for when asking "why did this mail not become a
ticket?": parsed fields, the sender with the header it came from and what had to be
repaired, attachments and inline images, the classification and every rule that fired,
every recipient of a delivery report (action, status, reason, diagnostic, remote MTA), and
— with a configuration whose store exists — whether the message is a duplicate and which
conversation it would join, and why.

Everything it prints comes from the message, that is from a stranger: control characters
(an escape sequence in a subject, a carriage return in a file name) are escaped in the
readable report (:func:`daemon.terminal.escape_controls`), and in ``--json`` the few that
JSON leaves raw (DEL, C1, Unicode line separators and bidi overrides) are ``\\u`` escapes.

``outcome`` is the real verdict: the message goes through the processor's own steps
(classification with the ``postroom_classify`` and ``postroom_allow_sender`` hooks, then
:func:`daemon.crm.importer.import_message`) in a store transaction that is then rolled
back, so "discarded, and why" is exactly what the daemon would do, and nothing is kept
(not even a parent number).
"""

from __future__ import annotations

__all__ = ["inspect_files", "inspect_message"]

import json
import re
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from daemon.crm.identify import find_candidates
from daemon.crm.importer import ImportJob, import_message
from daemon.mail.bounces import detect_bounce
from daemon.mail.classify import classify
from daemon.mail.ids import parse_message_id
from daemon.mail.model import BounceInfo, MessageKind, ParsedMessage
from daemon.mail.parse import parse_message
from daemon.messages import RawMessage
from daemon.plugins.manager import call_hook
from daemon.terminal import escape_controls

if TYPE_CHECKING:
    from daemon.config import Config
    from daemon.mail.ids import MessageToken
    from daemon.store.base import Store, Tx

TEXT_PREVIEW = 300


def inspect_message(raw: bytes, *, config: Config | None = None, store: Store | None = None,
                    secret: bytes | None = None, account: str | None = None) -> dict[str, Any]:
    """Everything the pipeline decides about ``raw``, as a JSON-able dict."""
    parsed = parse_message(raw)
    own = frozenset(a.lower() for acc in (config.accounts if config else ())
                    for a in (acc.email, *acc.aliases))
    installation = config.daemon.installation_id if config else None

    def ours(message_id: str) -> MessageToken | None:
        if secret is None:
            return None
        return parse_message_id(secret, message_id, installation=installation)

    verdict = classify(parsed, own_addresses=own, loop_token=installation,
                       verify_message_id=lambda mid: ours(mid) is not None)
    report: dict[str, Any] = {
        **_fields(parsed),
        "classification": {"kind": verdict.kind.value, "rules": list(verdict.rules),
                           "out_of_office": verdict.out_of_office},
        "bounce": _bounce(verdict.bounce),
        "report": _report(parsed),
    }
    if config is not None and store is not None:
        report["would_join"] = _would_join(config, store, parsed, account, ours)
        if config.accounts and secret is not None:
            report["outcome"] = _dry_run(config, store, raw, secret,
                                         account or config.accounts[0].id)
            if report["outcome"]["status"] == "discarded":
                report["would_join"] = {"conversation": None, "method": "discarded",
                                        "reason": report["outcome"]["reason"]}
    return report


class _RollBack(Exception):
    """Ends the dry run's transaction without committing it."""


def _dry_run(config: Any, store: Any, raw: bytes, secret: bytes,
             account: str) -> dict[str, Any]:
    """What importing ``raw`` for ``account`` would do, computed and rolled back."""
    import hashlib

    from daemon.actors.processor import Processor
    from daemon.app import build_plugin_manager

    pm = build_plugin_manager(config)
    processor = Processor(config, store, pm, secret=secret)
    message = RawMessage(account=account, raw=raw,
                         source_key=f"inspect:{account}:{hashlib.sha256(raw).hexdigest()}")
    parsed = parse_message(raw)
    verdict = processor.classify(parsed, account)
    job = ImportJob(message, parsed, verdict,
                    _may_create_parent(pm, config, parsed, verdict, account))
    found: dict[str, Any] = {}
    try:
        with store.transaction() as tx:
            result = import_message(tx, processor.ctx, job)
            found = {"status": result.outcome.status.value, "reason": result.outcome.reason}
            if result.event is not None:
                found |= {"new_conversation": result.event.new_conversation,
                          "conversation": (None if result.event.new_conversation
                                           else result.event.conversation_id),
                          "parent_limetype": result.event.parent_limetype or None}
            raise _RollBack
    except _RollBack:
        pass
    except Exception as exc:  # the daemon would record a failure
        found = {"status": "failed", "reason": f"{type(exc).__name__}: {exc}"}
    return found


def _may_create_parent(pm: Any, config: Any, parsed: ParsedMessage, verdict: Any,
                       account: str) -> bool:
    """The processor's verdict on an automatic message that matches no conversation."""
    if verdict.kind is not MessageKind.AUTOMATIC:
        return verdict.kind is MessageKind.NORMAL
    allowed = call_hook(pm, "postroom_allow_sender", message=parsed, classification=verdict,
                        account=config.account(account))
    return bool(config.runtime.allow_automatic_emails if allowed is None else allowed)


def _fields(parsed: ParsedMessage) -> dict[str, Any]:
    return {
        "message_id": parsed.message_id,
        "subject": parsed.subject,
        "from": str(parsed.from_) if parsed.from_ else None,
        "sender": {
            "address": parsed.from_.email if parsed.from_ else None,
            "name": parsed.from_.name if parsed.from_ else None,
            "source": parsed.from_source,
            "defects": [d for d in parsed.defects if d.startswith(_SENDER_DEFECTS)],
        },
        "to": [str(a) for a in parsed.to],
        "cc": [str(a) for a in parsed.cc],
        "date": parsed.date.isoformat() if parsed.date else None,
        "in_reply_to": list(parsed.in_reply_to),
        "references": list(parsed.references),
        "size": parsed.size,
        "text": parsed.text[:TEXT_PREVIEW],
        "has_html": parsed.html is not None,
        "attachments": [{"filename": a.filename, "content_type": a.content_type,
                         "size": a.size, "origin": a.origin} for a in parsed.attachments],
        "inline_images": [{"filename": a.filename, "content_id": a.content_id,
                           "size": a.size} for a in parsed.inline_images],
        "defects": list(parsed.defects),
    }


_SENDER_DEFECTS = ("sender-repaired:", "bad-address:from", "bad-address:sender",
                   "bad-address:reply-to", "bad-address:return-path", "missing-header:from",
                   "multiple-from")


def _bounce(bounce: BounceInfo | None) -> dict[str, Any] | None:
    if bounce is None:
        return None
    return {"recipient": bounce.recipient, "action": bounce.action, "status": bounce.status,
            "reason": bounce.reason, "diagnostic": bounce.diagnostic,
            "remote_mta": bounce.remote_mta, "reporting_mta": bounce.reporting_mta,
            "original_message_id": bounce.original_message_id,
            "permanent": bounce.permanent}


def _report(parsed: ParsedMessage) -> dict[str, Any] | None:
    """Every recipient of a delivery report (failed, delayed or delivered), or None."""
    report = detect_bounce(parsed)
    if report is None:
        return None
    return {"kind": report.kind.value, "format": report.format, "rules": list(report.rules),
            "recipients": [_bounce(r) for r in report.recipients]}


def _would_join(config: Config, store: Store, parsed: ParsedMessage, account: str | None,
                ours: Callable[[str], MessageToken | None]) -> dict[str, Any]:
    runtime = config.runtime

    def look(tx: Tx) -> dict[str, Any]:
        accounts = [account] if account else [a.id for a in config.accounts]
        for acc in accounts:
            found = (tx.find_raw_by_message_id(acc, parsed.message_id) if parsed.message_id
                     else tx.find_raw_by_sha256(acc, parsed.sha256))
            if found is not None and found.status != "failed":
                return {"duplicate_of": found.source_key, "status": found.status}
        candidates = find_candidates(
            tx, runtime, parsed, methods=runtime.identification_methods,
            conversation_of_token=lambda mid: getattr(ours(mid), "conversation_id", None))
        if candidates:
            best = candidates[0]
            return {"conversation": best.conversation_id, "method": best.method,
                    "candidates": [[c.conversation_id, c.method] for c in candidates]}
        return {"conversation": None, "method": "new conversation"}

    with store.transaction() as tx:
        return look(tx)


def inspect_files(paths: Iterable[Path], *, config: Config | None = None, as_json: bool = False,
                  out: TextIO | None = None) -> int:
    """Inspect each file; print JSON lines or a readable report. Returns the exit code."""
    out = out or sys.stdout
    store, secret = _open_store(config)
    code = 0
    try:
        for path in paths:
            try:
                raw = Path(path).read_bytes()
            except OSError as exc:
                print(f"{path}: {exc.strerror}", file=sys.stderr)
                code = 1
                continue
            report = {"file": str(path), **inspect_message(raw, config=config, store=store,
                                                           secret=secret)}
            if as_json:
                out.write(_json_line(report) + "\n")
            else:
                _print_report(_escaped(report), out)
    finally:
        if store is not None:
            store.close()
    return code


def _open_store(config: Config | None) -> tuple[Store | None, bytes | None]:
    """The configured store, read for lookups only, if it already exists."""
    if config is None:
        return None, None
    from daemon.config import load_secret_key
    from daemon.store import open_store

    path = config.daemon.sqlite_path
    if path is not None and not Path(path).exists():
        return None, None
    return open_store(config.daemon.store), load_secret_key(config)


_RAW_IN_JSON = re.compile("[\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _json_line(report: dict[str, Any]) -> str:
    """One JSON object; the controls JSON allows unescaped are escaped too."""
    text = json.dumps(report, ensure_ascii=False, default=str)
    return _RAW_IN_JSON.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def _escaped(value: Any, key: str = "") -> Any:
    """``value`` with every string's control characters escaped (the text preview keeps
    its line breaks)."""
    if isinstance(value, str):
        return escape_controls(value, keep_newlines=key == "text")
    if isinstance(value, dict):
        return {k: _escaped(v, k) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_escaped(v) for v in value]
    return value


def _print_report(report: dict[str, Any], out: TextIO) -> None:
    c = report["classification"]
    lines = [
        f"== {report['file']}",
        f"  subject:        {report['subject']}",
        f"  from:           {report['from']}",
        f"  to:             {', '.join(report['to'])}",
        f"  cc:             {', '.join(report['cc'])}",
        f"  date:           {report['date']}",
        f"  message-id:     {report['message_id']}",
        f"  in-reply-to:    {' '.join(report['in_reply_to'])}",
        f"  references:     {' '.join(report['references'])}",
        f"  classification: {c['kind']}"
        + (" (out of office)" if c["out_of_office"] else ""),
        f"  rules fired:    {', '.join(c['rules']) or '-'}",
    ]
    sender = report["sender"]
    if sender["source"] not in (None, "from") or sender["defects"]:
        lines.append(f"  sender from:    {sender['source']} ({'; '.join(sender['defects'])})")
    if report["report"]:
        r = report["report"]
        lines.append(f"  report:         {r['kind']} ({r['format'] or 'no known format'})")
        for b in r["recipients"]:
            lines.append(f"  recipient:      {b['recipient']} {b['action']} {b['status']} "
                         f"[{b['reason']}] via {b['remote_mta']} "
                         f"(original {b['original_message_id']}): {b['diagnostic']}")
    for a in report["attachments"]:
        lines.append(f"  attachment:     {a['filename']} ({a['content_type']}, "
                     f"{a['size']} bytes, {a['origin']})")
    for a in report["inline_images"]:
        lines.append(f"  inline image:   {a['filename']} cid:{a['content_id']}")
    if report["defects"]:
        lines.append(f"  repaired:       {'; '.join(report['defects'])}")
    if "would_join" in report:
        lines.append(f"  would join:     {json.dumps(report['would_join'])}")
    if "outcome" in report:
        o = report["outcome"]
        lines.append(f"  outcome:        {o['status']}"
                     + (f": {o['reason']}" if o.get("reason") else ""))
    lines.append("  text:           " + report["text"].strip().replace("\n", "\n" + " " * 18))
    out.write("\n".join(lines) + "\n")
