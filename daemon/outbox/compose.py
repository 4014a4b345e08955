"""Composing one outgoing email: the account's template, its merge codes, the MIME bytes.

Everything here is pure: values in, bytes out. :mod:`daemon.outbox.queue` reads the store
and calls these functions once per recipient.

Templates are Jinja2 in an immutable sandbox with autoescaping, rendered under a budget
(:mod:`daemon.outbox.sandbox`: output size, loop iterations, time): a template (written
by an administrator) cannot reach Python internals nor exhaust memory, and every merge code
that holds text (names, addresses, subjects written by customers) is escaped. The merge
codes that *are* HTML (``conversation_messages``, ``follower_addresses_mailto``,
``marker``) are :class:`~markupsafe.Markup` built here from escaped parts and from message
bodies that went through :func:`daemon.mail.html.sanitize_html`.

The template named by the account (``template = "default"``) is looked up as
``<name>.html`` in ``templates/`` next to the TOML file, then among the templates shipped
in ``daemon/templates/`` ("Use default template"). A template that is missing, fails to
render for any reason or exceeds its budget falls back to the shipped default, so a typo
in a template never stops mail; the problem is logged and returned to the caller, which
records it.

MIME layout (RFC 2046, RFC 2387)::

    multipart/mixed                       only when there are attachments
    ├── multipart/alternative
    │   ├── text/plain                    derived from the rendered HTML
    │   └── multipart/related             only when the HTML shows inline images
    │       ├── text/html
    │       └── image/* (Content-ID)      embedded files
    └── application/... (attachment)      documents

Headers: From, Reply-To, To, Subject, Date, Message-ID, In-Reply-To, References,
Content-Language, and our loop header ``X-Postroom-Loop: <installation_id>`` on every
message, so our own mail coming back is recognised (``own.loop-header``). Automatic mail
(automatic replies, hub notifications) also carries ``Auto-Submitted`` (RFC 3834:
``auto-replied`` or ``auto-generated``), ``X-Auto-Response-Suppress: All`` (Exchange) and
``Precedence: bulk`` (Unix vacation programs), so other robots do not answer it; an agent's
reply carries none of those, because it is a person's mail.
"""

from __future__ import annotations

__all__ = [
    "DEFAULT_TEMPLATE",
    "HISTORY_LIMIT",
    "LOOP_HEADER",
    "FilePart",
    "Headers",
    "Mailbox",
    "OutgoingTooLarge",
    "ThreadEntry",
    "build_message",
    "conversation_html",
    "ensure_marker",
    "environment_for",
    "format_time",
    "merge_codes",
    "render_html",
    "render_text",
    "template_budget",
    "template_environment",
    "template_line",
    "text_to_html",
]

import functools
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import jinja2
import structlog
from jinja2.sandbox import SandboxedEnvironment
from markupsafe import Markup, escape

from daemon.errors import MessageTooLarge
from daemon.mail.html import html_to_text, sanitize_html, without_remote_resources
from daemon.mail.ids import body_marker, text_marker
from daemon.outbox.phrases import phrases_for
from daemon.outbox.sandbox import (
    DEFAULT_BUDGET,
    TemplateBudget,
    budgeted_environment,
    render_budgeted,
)

if TYPE_CHECKING:
    # Not daemon.config: its check-config imports this module (tests/test_imports.py).
    from daemon.config.load import Config

log = structlog.get_logger("postroom.outbox")

#: Our loop header; the same name :mod:`daemon.mail.classify` looks for.
LOOP_HEADER = "X-Postroom-Loop"
#: The shipped template ("Use default template").
DEFAULT_TEMPLATE = "default"
#: Older messages quoted below a new one, newest first.
HISTORY_LIMIT = 20

_PACKAGE_TEMPLATES = Path(__file__).resolve().parent.parent / "templates"


class OutgoingTooLarge(MessageTooLarge):
    """The composed message is larger than the account's ``max_outgoing_bytes``.

    Attributes:
        size: the composed size in bytes.
        limit: the account's limit.
    """

    def __init__(self, size: int, limit: int, *, account: str) -> None:
        super().__init__(
            f"the message would be {size} bytes, more than the {limit} bytes account "
            f"{account!r} allows (max_outgoing_bytes); remove attachments or send them "
            "another way", account=account)
        self.size = size
        self.limit = limit


@dataclass(frozen=True, slots=True)
class Mailbox:
    """An address and a display name (may be empty)."""

    address: str
    name: str = ""

    @property
    def label(self) -> str:
        """``name (address)``, or the bare address without a name."""
        return f"{self.name} ({self.address})" if self.name else self.address


@dataclass(frozen=True, slots=True)
class FilePart:
    """An attachment, or (with ``content_id``) an image the HTML shows inline."""

    filename: str
    content_type: str
    data: bytes
    content_id: str | None = None


@dataclass(frozen=True, slots=True)
class ThreadEntry:
    """One message of the conversation as the history shows it.

    ``ours`` marks our own mail (an agent's reply, our automatic text): its HTML may load
    remote images; anyone else's is shown without remote resources.
    """

    sender: Mailbox
    date: datetime | None
    html: str
    ours: bool = False


@dataclass(frozen=True, slots=True)
class Headers:
    """The header fields of one message to one recipient.

    Attributes:
        sender: From (the account address or alias, with the display name).
        reply_to: Reply-To (the mailbox, so answers come back to us).
        recipient: To.
        subject: the final subject (prefix and ticket tag included).
        message_id: our signed Message-ID, without ``<>``.
        in_reply_to: the recipient's last message in the conversation, without ``<>``.
        references: oldest first, without ``<>``.
        date: the Date header.
        language: Content-Language.
        loop_token: the installation id for ``X-Postroom-Loop``.
        auto_submitted: ``auto-replied`` or ``auto-generated`` for automatic mail; None for
            a person's reply.
    """

    sender: Mailbox
    reply_to: Mailbox
    recipient: Mailbox
    subject: str
    message_id: str
    in_reply_to: str | None
    references: tuple[str, ...]
    date: datetime
    language: str
    loop_token: str
    auto_submitted: str | None = None


# -- templates --------------------------------------------------------------------------


@functools.lru_cache(maxsize=16)
def template_environment(config_dir: Path | None, budget: TemplateBudget = DEFAULT_BUDGET
                         ) -> jinja2.Environment:
    """The sandboxed, autoescaping environment for ``templates/`` under ``config_dir``.

    Cached per folder and budget: templates are compiled once and reloaded when their file
    changes. Every render is bounded by ``budget`` (:mod:`daemon.outbox.sandbox`).
    """
    search = [_PACKAGE_TEMPLATES]
    if config_dir is not None:
        search.insert(0, config_dir / "templates")
    return budgeted_environment(
        budget, loader=jinja2.FileSystemLoader([str(p) for p in search]),
        autoescape=True, undefined=jinja2.ChainableUndefined, keep_trailing_newline=True)


def environment_for(config: Config) -> jinja2.Environment:
    """:func:`template_environment` for a :class:`~daemon.settings.Config`: its folder and
    its ``[daemon] template_*`` budget (defaults for a config without them)."""
    return template_environment(getattr(config, "base_dir", None), template_budget(config))


def template_budget(config: Config) -> TemplateBudget:
    """The ``[daemon] template_max_output_chars`` / ``template_max_loop_iterations`` /
    ``template_timeout_seconds`` budget of ``config``; :data:`DEFAULT_BUDGET` without."""
    daemon = getattr(config, "daemon", None)
    return TemplateBudget(
        max_output_chars=getattr(daemon, "template_max_output_chars",
                                 DEFAULT_BUDGET.max_output_chars),
        max_loop_iterations=getattr(daemon, "template_max_loop_iterations",
                                    DEFAULT_BUDGET.max_loop_iterations),
        max_seconds=getattr(daemon, "template_timeout_seconds", DEFAULT_BUDGET.max_seconds))


@functools.lru_cache(maxsize=1)
def _shipped_environment() -> jinja2.Environment:
    """Only the shipped templates, for the fallback: a ``templates/default.html`` next to
    the TOML file is the administrator's and may be the one that failed."""
    return SandboxedEnvironment(
        loader=jinja2.FileSystemLoader(str(_PACKAGE_TEMPLATES)), autoescape=True,
        undefined=jinja2.ChainableUndefined, keep_trailing_newline=True)


@functools.lru_cache(maxsize=4)
def _text_environment(budget: TemplateBudget = DEFAULT_BUDGET) -> jinja2.Environment:
    return budgeted_environment(budget, autoescape=False, undefined=jinja2.ChainableUndefined)


def render_html(env: jinja2.Environment, template: str, context: Mapping[str, Any]
                ) -> tuple[str, str | None]:
    """Render ``<template>.html``; fall back to the shipped default if it cannot be.

    Any exception while loading or rendering the account's template counts (a syntax
    error, ``{{ 1/0 }}``, a refused budget, an unsafe attribute): it is logged as
    ``outbox.template_fallback`` and the shipped ``default.html`` (ours, trusted, rendered
    without a budget) is used instead, so a template never stops mail.

    Returns:
        The HTML, and None or a description of why the default was used instead.

    Raises:
        jinja2.TemplateError: only if the shipped default itself fails (a bug).
    """
    try:
        return render_budgeted(env.get_template(f"{template}.html"), context), None
    except Exception as exc:
        problem = f"template {template!r} could not be used ({type(exc).__name__}: {exc})"
        log.warning("outbox.template_fallback", template=template,
                    error=f"{type(exc).__name__}: {exc}", line=template_line(exc))
    shipped = _shipped_environment().get_template(f"{DEFAULT_TEMPLATE}.html")
    return shipped.render(context), problem


def render_text(source: str, context: Mapping[str, Any], *,
                budget: TemplateBudget = DEFAULT_BUDGET) -> str:
    """Render a short text with merge codes (``{{helpdesk.helpdesknumber}}``), sandboxed.

    Unknown merge codes render empty. A text that is not a valid template, or fails or
    exceeds ``budget`` while rendering, is returned as written rather than losing the
    message (logged as ``outbox.text_template_failed``).
    """
    if "{" not in source:
        return source
    try:
        return render_budgeted(_text_environment(budget).from_string(source), context)
    except Exception as exc:
        log.warning("outbox.text_template_failed", error=f"{type(exc).__name__}: {exc}",
                    line=template_line(exc))
        return source


def template_line(exc: BaseException) -> int | None:
    """The template line an exception was raised at, if Jinja2 could tell.

    Syntax errors carry ``lineno``; for runtime errors Jinja2 rewrites the traceback so the
    template's frames name the template file and line, and the innermost one is taken.
    """
    if isinstance(exc, jinja2.TemplateSyntaxError):
        return exc.lineno
    line = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename.endswith(".html") or frame.filename == "<template>":
            line = frame.lineno
    return line


# -- merge codes ------------------------------------------------------------------------


def format_time(when: datetime | None, zone: ZoneInfo, *, print_zone: bool) -> str:
    """``2026-11-24 13:00`` in ``zone``, with `` (Europe/Stockholm)`` when asked."""
    if when is None:
        return ""
    local = when.astimezone(zone).strftime("%Y-%m-%d %H:%M")
    return f"{local} ({zone.key})" if print_zone else local


def text_to_html(text: str) -> Markup:
    """Plain text as HTML: escaped, paragraphs for blank lines, ``<br>`` for line breaks."""
    paragraphs = [p for p in text.replace("\r\n", "\n").strip().split("\n\n") if p.strip()]
    return Markup("").join(
        Markup('<p style="margin:0 0 12px 0;">{}</p>').format(
            Markup("<br>\n").join(escape(line) for line in p.strip().split("\n")))
        for p in paragraphs)


def conversation_html(entries: Sequence[ThreadEntry], *, zone: ZoneInfo, print_zone: bool,
                      language: str) -> Markup:
    """The ``conversation_messages`` merge code: the newest message, then the history.

    ``entries`` is newest first; the first is shown as the message itself, the others
    (up to :data:`HISTORY_LIMIT`) quoted below it, each under a "On <date>, <sender>
    wrote:" line with the date in the account's time zone. HTML that is not
    :attr:`~ThreadEntry.ours` loses its remote resources (no tracking pixel is relayed).
    """
    if not entries:
        return Markup("")
    words = phrases_for(language)
    parts = [Markup('<div class="postroom-message">{}</div>').format(
        Markup(_quotable(entries[0])))]
    for entry in entries[1:HISTORY_LIMIT + 1]:
        line = words.wrote.format(date=format_time(entry.date, zone, print_zone=print_zone),
                                  sender=entry.sender.label)
        parts.append(Markup(
            '<div class="postroom-history" style="margin:16px 0 0 0;">'
            '<p style="margin:0 0 8px 0;color:#6a737d;font-size:12px;">{}</p>'
            '<blockquote style="margin:0 0 0 4px;padding:0 0 0 12px;'
            'border-left:3px solid #d0d7de;color:#57606a;">{}</blockquote></div>'
        ).format(line, Markup(_quotable(entry))))
    return Markup("\n").join(parts)


def _quotable(entry: ThreadEntry) -> str:
    return sanitize_html(entry.html) if entry.ours else without_remote_resources(entry.html)


def merge_codes(*, kind: str, subject: str, recipient: Mailbox, others: Sequence[Mailbox],
                followers: Sequence[Mailbox], sender: Mailbox, language: str
                ) -> dict[str, Any]:
    """Every merge code of the reference's table except ``conversation_messages``.

    Args:
        kind: ``reply``, ``notification`` or ``auto_reply``.
        subject: the conversation's subject, as customers wrote it.
        recipient: who this copy goes to.
        others: who else gets a copy of the same message.
        followers: everyone following the conversation.
        sender: who wrote the message (the agent, the follower, or the account).
        language: the account's language tag.
    """
    words = phrases_for(language)
    update = {
        "reply": words.update_reply,
        "notification": words.update_notification,
        "auto_reply": words.update_auto_reply,
    }[kind].format(sender=sender.name or sender.address, address=sender.address,
                   subject=subject)
    mailto = Markup(", ").join(
        Markup('<a href="mailto:{0}">{0}</a>').format(f.address) for f in followers)
    return {
        "conversation_update_info": update,
        "other_followers_info": (words.others.format(names=", ".join(o.label for o in others))
                                 if others else ""),
        "reply_info": words.reply_info_auto if kind == "auto_reply" else words.reply_info,
        "followers": ", ".join(f.label for f in followers),
        "follower_addresses": ", ".join(f.address for f in followers),
        "follower_addresses_mailto": mailto,
        "follower_names": ", ".join(f.name or f.address for f in followers),
        "num_followers": len(followers),
        "recipient_address": recipient.address,
        "recipient_name": recipient.name,
        "sender_address": sender.address,
        "sender_name": sender.name,
    }


def ensure_marker(html: str, message_id: str) -> str:
    """Make sure the rendered HTML carries the hidden threading marker (a custom template
    may have left ``{{ marker }}`` out): insert it before ``</body>`` or append it."""
    if text_marker(message_id) in html:
        return html
    marker = body_marker(message_id)
    at = html.lower().rfind("</body>")
    return html[:at] + marker + html[at:] if at >= 0 else html + marker


# -- MIME -------------------------------------------------------------------------------


def build_message(headers: Headers, html: str, *, attachments: Sequence[FilePart] = (),
                  inline: Sequence[FilePart] = ()) -> bytes:
    """The complete RFC 5322 message, CRLF line endings, 7-bit clean.

    The text part is derived from ``html`` (:func:`daemon.mail.html.html_to_text`); inline
    parts are added as ``multipart/related`` to the HTML only when the HTML refers to
    their Content-ID.
    """
    message = EmailMessage(policy=SMTP)
    _set_headers(message, headers)
    message.set_content(html_to_text(html) or "\n", subtype="plain", charset="utf-8")
    message.add_alternative(html, subtype="html", charset="utf-8")
    shown = [p for p in inline if p.content_id and f"cid:{p.content_id}" in html]
    if shown:
        html_part = list(message.iter_parts())[1]
        for part in shown:
            maintype, subtype, params = _split_type(part.content_type)
            html_part.add_related(part.data, maintype, subtype, cid=f"<{part.content_id}>",
                                  filename=part.filename, disposition="inline",
                                  params=params)
    for part in attachments:
        maintype, subtype, params = _split_type(part.content_type)
        message.add_attachment(part.data, maintype, subtype, filename=part.filename,
                               params=params)
    message["Content-Language"] = headers.language  # after the body: set_content clears it
    return message.as_bytes()


def _set_headers(message: EmailMessage, h: Headers) -> None:
    message["From"] = _address(h.sender)
    message["Reply-To"] = _address(h.reply_to)
    message["To"] = _address(h.recipient)
    message["Subject"] = _one_line(h.subject)
    message["Date"] = format_datetime(h.date)
    message["Message-ID"] = f"<{h.message_id}>"
    if h.in_reply_to:
        message["In-Reply-To"] = f"<{h.in_reply_to}>"
    if h.references:
        message["References"] = " ".join(f"<{r}>" for r in h.references)
    message[LOOP_HEADER] = h.loop_token
    if h.auto_submitted:
        message["Auto-Submitted"] = h.auto_submitted
        message["X-Auto-Response-Suppress"] = "All"
        message["Precedence"] = "bulk"


def _address(mailbox: Mailbox) -> Address:
    return Address(display_name=_one_line(mailbox.name), addr_spec=mailbox.address)


def _one_line(value: str) -> str:
    """Header values never carry line breaks (header injection, and the policy refuses)."""
    return " ".join(value.split())


def _split_type(content_type: str) -> tuple[str, str, dict[str, str]]:
    """``(maintype, subtype, {"charset": ...})``; only a text type keeps its charset."""
    kind, _, rest = content_type.partition(";")
    maintype, _, subtype = kind.strip().lower().partition("/")
    if not maintype or not subtype or any(c in kind for c in " \r\n\"<>"):
        return "application", "octet-stream", {}
    params = {}
    if maintype == "text":
        for item in rest.split(";"):
            name, _, value = item.partition("=")
            if name.strip().lower() == "charset" and value.strip().strip('"'):
                params["charset"] = value.strip().strip('"')
    return maintype, subtype, params
