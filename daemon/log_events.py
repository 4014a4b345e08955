"""The event catalogue: every event name the daemon logs, with its one level and its fields.

Log lines are for machines first (``jq``, Loki, alerting), so an event name is a contract:
it must not change quietly, and one condition logs at one level wherever it happens.
This registry is the single list; ``docs/events.md`` is generated from it
(``python -m daemon.log_events > docs/events.md``), and ``tests/test_log_events.py`` scans
the source with :mod:`ast` and fails when code logs a name that is not here, logs it at
another level, or when the generated page is out of date.

Fields listed are those the call sites pass; every line also has ``timestamp``, ``level``,
``logger`` and whatever the task bound (``account``, ``folder`` in a mailbox actor).

Lines from the standard library's loggers (Hypercorn, imapclient, msal) get stable names
too (:func:`daemon.log.stable_library_event`): ``http.listening`` for Hypercorn's "Running
on" line, ``library.log`` with the text in ``message`` for everything else.
"""

from __future__ import annotations

__all__ = ["EVENTS", "EventSpec", "by_name", "markdown"]

from dataclasses import dataclass


@dataclass(frozen=True)
class EventSpec:
    """One event: its name, its level, the fields its call sites pass, what it means."""

    name: str
    level: str
    fields: tuple[str, ...]
    meaning: str
    alert: bool = False  # worth an alert (listed first in docs/operations.md)


def _e(name: str, level: str, fields: str, meaning: str, alert: bool = False) -> EventSpec:
    return EventSpec(name, level, tuple(fields.split()), meaning, alert)


EVENTS: tuple[EventSpec, ...] = (
    # -- the daemon -----------------------------------------------------------------
    _e("daemon.started", "info", "accounts http store",
       "everything runs: actors started, the listener bound"),
    _e("daemon.failed", "error", "reason error",
       "the daemon could not start (port in use, unreadable config, store unopenable); "
       "exit status 1", alert=True),
    _e("daemon.signal", "info", "signal", "SIGINT or SIGTERM received"),
    _e("daemon.stopping", "info", "grace_seconds", "the graceful stop began"),
    _e("daemon.grace_exceeded", "warning", "grace_seconds http_in_flight",
       "work was still running at the shutdown deadline and was cancelled"),
    _e("daemon.processor_drain_failed", "warning", "error",
       "waiting for the processor during shutdown failed"),
    _e("daemon.stopped", "info", "", "the store is closed; the process ends"),
    _e("daemon.purged", "info", "raw_messages events older_than_days",
       "retention removed old raw message bytes and events ([daemon] retain_days)"),
    _e("daemon.purge_failed", "warning", "error", "a retention purge failed; tried again "
       "the next day"),
    # -- supervision ----------------------------------------------------------------
    _e("actor.auth_failed", "warning", "account attempt error auth_failures",
       "credentials refused; retried with backoff", alert=True),
    _e("actor.backoff", "warning", "account attempt error",
       "a transient failure (server unreachable, out of file descriptors); restarted "
       "with backoff, no traceback"),
    _e("actor.crashed", "warning", "account attempt error",
       "an actor failed unexpectedly; restarted with backoff, with a traceback",
       alert=True),
    _e("account.parked", "error", "account state reason",
       "the account stopped retrying until a human acts (credentials refused repeatedly: "
       "state auth_error; UIDVALIDITY changed too often: state disabled)", alert=True),
    _e("account.unparked", "info", "account", "a wake-up restarted a parked account"),
    # -- mailboxes ------------------------------------------------------------------
    _e("mailbox.idle", "info", "imported failed", "a Maildir scan finished"),
    _e("imap.connected", "info", "host port tls idle condstore", "logged in"),
    _e("imap.tls.unverified", "warning", "host",
       "TLS certificate verification is off for this connection"),
    _e("imap.logout.failed", "debug", "error", "LOGOUT failed (the connection is dropped)"),
    _e("imap.sync.done", "info", "handled last_uid", "a sync round finished"),
    _e("imap.folder.first_sync", "info", "uidvalidity initial_until",
       "first sync of a folder (or after a UIDVALIDITY change)"),
    _e("imap.folder.created", "info", "target", "a missing target folder was created"),
    _e("imap.fetch.batch", "debug", "first last found", "one FETCH batch"),
    _e("imap.message.done", "debug", "uid status size", "one message handled"),
    _e("imap.message.moved", "info", "uids target", "messages moved to a folder"),
    _e("imap.message.too_large", "warning", "uid size limit",
       "a message over max_message_bytes was not downloaded; recorded as failed"),
    _e("imap.message.vanished", "info", "uid", "a message disappeared before its fetch"),
    _e("imap.move.failed", "error", "uids target error", "moving messages failed"),
    _e("imap.flags.finished", "info", "first last seen moved", "flags set after a batch"),
    _e("imap.flags.failed", "warning", "uids error", "setting flags failed (retried)"),
    _e("imap.uidvalidity.changed", "warning", "old new resyncs",
       "the server renumbered the folder; it is synced again"),
    _e("imap.idle.thread_fallback", "warning", "reason",
       "IDLE runs in a worker thread (the socket cannot be watched from Trio)"),
    _e("imap.idle.wake", "debug", "reason", "IDLE ended: new mail or a wake-up"),
    _e("imap.idle.renew", "debug", "reason", "IDLE renewed before the server's timeout"),
    # -- the pipeline ---------------------------------------------------------------
    _e("message.imported", "info",
       "account source_key message_id conversationmessage kind reason",
       "a message became a conversationmessage"),
    _e("message.duplicate", "info",
       "account source_key message_id conversationmessage kind reason",
       "a message was already imported"),
    _e("message.discarded", "info",
       "account source_key message_id conversationmessage kind reason",
       "automatic mail nobody asked for, or a loop"),
    _e("message.failed", "error", "account source_key error where",
       "a message could not be processed; its raw bytes and the error are stored and it "
       "is in the failure folder", alert=True),
    _e("message.retried", "info", "account source_key status",
       "a failed message was imported again (postroom retry, the status page)"),
    _e("processor.batch_fallback", "warning", "count reason error",
       "a batch could not be imported in one transaction; each message gets its own"),
    _e("processor.store_full", "warning", "account source_key size",
       "the disk (or PostgreSQL) is full: this message did not fit on its own; it is "
       "fetched again later", alert=True),
    _e("processor.reply_dropped", "info", "count", "the actor that submitted a batch left"),
    # -- the outbox -----------------------------------------------------------------
    _e("outbox.sent", "info", "account outbox message_id kind reply",
       "the server accepted a message"),
    _e("outbox.retry", "warning",
       "account outbox message_id attempts error next_attempt_at",
       "a transient failure; the message is tried again later"),
    _e("outbox.failed", "error", "account outbox message_id error",
       "a message was given up on (permanent failure or too many attempts)", alert=True),
    _e("outbox.send_crashed", "error", "outbox account error",
       "a bug while sending one message; retried later"),
    _e("outbox.mark_sent_failed", "error", "outbox error",
       "the store refused to record a send: the message may go out again after a restart"),
    _e("outbox.batch_failed", "error", "account error",
       "the bookkeeping of one account's round failed; retried at the next poll"),
    _e("outbox.round_failed", "warning", "error", "a whole outbox round failed"),
    _e("outbox.sent_copy_failed", "warning", "account count error",
       "the copy to the IMAP sent folder failed (the mail itself was sent)"),
    _e("outbox.template_fallback", "warning", "template error line",
       "an account template failed or exceeded its budget; the shipped default was used",
       alert=True),
    _e("outbox.text_template_failed", "warning", "error line",
       "the plain-text template failed; the text part was made from the HTML"),
    _e("outbox.retried", "info", "outbox", "an operator asked to send a failed item again"),
    _e("outbox.cancelled", "info", "outbox", "an operator cancelled an outbox item"),
    # -- plugins --------------------------------------------------------------------
    _e("plugin.loaded", "info", "plugin", "a plugin was registered"),
    _e("plugin.load_failed", "error", "plugin error",
       "a plugin could not be loaded; postroom carries on without it", alert=True),
    _e("plugin.hook_failed", "error", "plugin hook error",
       "a plugin hook raised; postroom carries on", alert=True),
    _e("plugin.hook_timeout", "error", "plugin hook timeout",
       "a plugin hook exceeded its time", alert=True),
    # -- HTTP -----------------------------------------------------------------------
    _e("http.unhandled", "error", "path method error",
       "a request failed unexpectedly: a JSON 500 without the traceback went out"),
    _e("http.listening", "info", "message",
       "Hypercorn's \"Running on ...\" line (the listener is bound)"),
    _e("library.log", "info", "message",
       "any other line of a library's standard-library logger (hypercorn, imapclient, "
       "msal); its own level, the logger in logger"),
    # -- added with OAuth, Graph, several nodes, packaging ---------------------------
    _e("config.warning", "warning", "problem",
       "what check-config prints as a warning, logged once at start"),
    _e("graph.delta.resync", "warning", "account reason",
       "Graph dropped the delta state (410 syncStateNotFound): a fresh delta, "
       "deduplicated"),
    _e("graph.delta.settle", "info", "account pending",
       "a delta round finishes marking read / moving what it committed"),
    _e("graph.flag.failed", "warning", "account request status",
       "marking a committed Graph message read or moving it failed; retried next round"),
    _e("graph.lifecycle.coalesced", "warning", "lifecycle_event",
       "a lifecycle event arrived while one was pending; they are handled once"),
    _e("graph.lifecycle.handling", "info", "account lifecycle_event",
       "the actor handles a lifecycle event (reauthorize, recreate, catch up)"),
    _e("graph.lifecycle.received", "info", "account lifecycle_event",
       "the lifecycle route accepted a Graph lifecycle event"),
    _e("graph.message.gone", "info", "account id",
       "a message listed by delta was deleted before download; skipped"),
    _e("graph.message.too_large", "warning", "account id limit size",
       "a Graph message above max_message_bytes was not downloaded; recorded as failed"),
    _e("graph.subscription.create_failed", "warning", "account error",
       "creating the change-notification subscription failed; retried later, delta keeps"
       " running", alert=True),
    _e("graph.subscription.created", "info", "account expires subscription",
       "a change-notification subscription was created"),
    _e("graph.subscription.expiry_clamped", "info", "account minutes",
       "Graph refused the requested expiry; the subscription was created with a shorter "
       "one"),
    _e("graph.subscription.gone", "warning", "account subscription",
       "the subscription no longer exists at Graph; it is recreated"),
    _e("graph.subscription.reauthorized", "info", "account subscription",
       "the subscription was reauthorized (reauthorizationRequired)"),
    _e("graph.subscription.renewed", "info", "account expires subscription",
       "the subscription was renewed at about half its life"),
    _e("graph.sync.done", "info", "handled mode",
       "a Graph delta round committed what it found"),
    _e("graph.throttled", "warning", "account retry_after status",
       "Graph answered 429/503; the mailbox waits Retry-After"),
    _e("graph.webhook.unrecorded", "warning", "error",
       "a valid notification could not be recorded as a kick; Graph retries, the "
       "backstop round catches up"),
    _e("kicks.listen_failed", "warning", "error",
       "LISTEN for cross-node kicks failed; the timed poll stays"),
    _e("kicks.take_failed", "warning", "error",
       "reading recorded kicks failed; tried at the next poll"),
    _e("kicks.woken", "info", "account",
       "another node's kick (a webhook or API call) woke this account's actor"),
    _e("lease.announce_failed", "warning", "error",
       "this node could not announce itself to the others; retried at the next heartbeat"),
    _e("lease.gained", "info", "account epoch",
       "this node took an account's lease (a new epoch)"),
    _e("lease.heartbeat_failed", "warning", "error held",
       "renewing this node's leases failed; its accounts stop before the leases expire",
       alert=True),
    _e("lease.heartbeat_too_slow", "warning", "seconds",
       "a heartbeat took longer than the renewal interval", alert=True),
    _e("lease.lost", "info", "account epoch reason",
       "this node stopped serving an account (expired, shed or taken over)"),
    _e("lease.release_failed", "warning", "accounts error",
       "releasing leases at a graceful stop failed; they expire instead"),
    _e("lease.released", "info", "accounts",
       "leases given back at a graceful stop or when shedding"),
    _e("maildir.message.too_large", "warning", "file limit size",
       "a Maildir file above max_message_bytes was set aside unread and recorded"),
    _e("oauth.account.needs_authentication", "warning", "account start",
       "an OAuth account has no grant yet: it waits for a sign-in at the start link", alert=True),
    _e("oauth.app.failing", "error", "accounts app reason",
       "the OAuth app's credentials are refused (secret expired or wrong): every account"
       " on it stops", alert=True),
    _e("oauth.app.warning", "warning", "app warning",
       "an OAuth app needs attention soon (client secret expiry, Google Testing status);"
       " daily", alert=True),
    _e("oauth.grant.dead", "warning", "account app reason",
       "the provider refused the refresh token (consent revoked...): the account needs a"
       " new sign-in", alert=True),
    _e("oauth.signin.done", "info", "account app user",
       "a sign-in completed and the grant was stored sealed"),
    _e("oauth.signin.started", "info", "account app",
       "a sign-in started (redirect to the provider)"),
    _e("oauth.token.refreshed", "info", "account app expires_in",
       "an access token was refreshed ahead of expiry"),
    _e("outbox.reconciled", "info", "account message_id outbox",
       "an item left 'sending' by a dead node was found in the Sent folder and marked "
       "sent"),
    _e("outbox.resend_risk", "warning", "account message_id outbox",
       "an item left 'sending' by a dead node is sent again: the documented at-least-"
       "once window", alert=True),
    _e("plugin.already_loaded", "info", "plugin registered_as",
       "a plugin named in [daemon] plugins is already registered by its entry point"),
    _e("sdnotify.failed", "warning", "error socket state",
       "a systemd notification could not be sent (a stale NOTIFY_SOCKET); logged once, "
       "never fatal"),
)

_BY_NAME = {spec.name: spec for spec in EVENTS}
assert len(_BY_NAME) == len(EVENTS), "an event is registered twice"


def by_name(name: str) -> EventSpec | None:
    """The registered event ``name``, or None."""
    return _BY_NAME.get(name)


def markdown() -> str:
    """``docs/events.md``: the catalogue as tables, by the part of the daemon."""
    lines = ["# Log events", "",
             "<!-- Generated by `python -m daemon.log_events > docs/events.md`; edit "
             "daemon/log_events.py, not this file. -->", "",
             "Every line is one JSON object with `timestamp`, `level`, `logger` and `event`;",
             "the fields below come on top (a mailbox actor's lines also carry `account` and",
             "`folder`). One event has one level. ⚠ marks events worth an alert.", ""]
    group = None
    for spec in EVENTS:
        prefix = spec.name.split(".")[0]
        if prefix != group:
            group = prefix
            lines += ["", f"## {prefix}", "", "| event | level | fields | meaning |",
                      "|---|---|---|---|"]
        fields = ", ".join(f"`{f}`" for f in spec.fields)
        mark = "⚠ " if spec.alert else ""
        lines.append(f"| `{spec.name}` | {spec.level} | {fields} | {mark}{spec.meaning} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(markdown(), end="")
