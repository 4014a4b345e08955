"""Logging: structlog for our events, the standard library's loggers routed through it.

One JSON object per line in production (or when stderr is not a terminal), a console
renderer on a TTY. Event names are constant and dotted (``imap.idle.wake``); everything
variable goes in fields. Each actor binds ``account`` with
:func:`structlog.contextvars.bind_contextvars` at the top of its task; Trio copies the
context into child tasks and worker threads, so the binding follows the work.

The processor chain, in order (each does one job)::

    merge_contextvars -> add_log_level -> add_logger_name -> TimeStamper
    -> redact_secrets -> JSON: dict_tracebacks -> redact_rendered_exception -> renderer
                      -> console: escape_control_characters -> renderer (its exception
                         formatter scrubs and escapes the traceback text it writes)
    [-> add_syslog_priority, when stderr is the journal]

``redact_secrets`` must run before the renderer and after everything that adds fields.
An exception is only turned into text after it, so the rendered exception (its message,
its notes, its causes) is scrubbed again: in JSON by ``redact_rendered_exception`` after
``dict_tracebacks``, in the console by :class:`_RedactedTraceback` around the formatter.
The console (a terminal) also gets control characters escaped
(:func:`daemon.terminal.escape_controls`); JSON escapes them itself.

Two routes to the same stream. Stdlib loggers (imapclient, hypercorn) go through a
``logging.StreamHandler`` whose ``ProcessorFormatter`` runs the chain above. In JSON mode
our own structlog events skip the stdlib machinery (a ``LogRecord``, ``findCaller``'s frame
walk, the formatter's copies): :class:`_DirectLogger` runs the same chain in structlog and
writes the rendered line to the handler's stream under the handler's lock, so both kinds of
line interleave whole. Levels still come from the stdlib logger of the same name. This cut
the cost of one info line by about two thirds (``benchmarks/README.md``, optimisation pass).
The console format keeps the stdlib route; it is for development, where cost is no issue.
"""

from __future__ import annotations

__all__ = ["REDACTED", "configure_logging", "escape_control_characters",
           "redact_rendered_exception", "redact_secrets", "stable_library_event"]

import io
import logging
import os
import re
import sys
from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any, TextIO

import orjson
import structlog

from daemon.terminal import escape_controls

REDACTED = "****"

#: Field names whose values are never logged, wherever they appear.
SECRET_FIELDS = frozenset({
    "password", "passwd", "access_token", "refresh_token", "id_token", "token",
    "client_secret", "client_state", "clientstate", "validation_token", "validationtoken",
    "secret", "secret_key", "api_token", "authorization", "code",
})

_INLINE_SECRET = re.compile(
    r"(?i)\b(password|passwd|access_token|refresh_token|client_secret|clientState|"
    r"authorization|bearer)(\s*[=:]\s*|\s+)((?:bearer\s+)?(?:\"[^\"]*\"|'[^']*'|\S+))")


#: Lower-case words of which every :data:`_INLINE_SECRET` match contains one. Testing them
#: first is ~6x cheaper than running the regex on a string that holds no secret.
_SECRET_HINTS = ("pass", "token", "secret", "clientstate", "authorization", "bearer")


def _may_hold_secret(text: str) -> bool:
    lowered = text.lower()
    return any(hint in lowered for hint in _SECRET_HINTS)


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        if not _may_hold_secret(value):
            return value
        return _INLINE_SECRET.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", value)
    if isinstance(value, dict):
        return {k: (REDACTED if str(k).lower() in SECRET_FIELDS else _scrub(v))
                for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_scrub(v) for v in value)
    return value


def redact_secrets(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]
                   ) -> MutableMapping[str, Any]:
    """Replace secret-named fields and inline ``password=...`` text with ``****``.

    Must run after every processor that adds fields and before the renderer.
    """
    for key in list(event_dict):
        if key.lower() in SECRET_FIELDS:
            event_dict[key] = REDACTED
        else:
            event_dict[key] = _scrub(event_dict[key])
    return event_dict


def redact_rendered_exception(_logger: Any, _method: str,
                              event_dict: MutableMapping[str, Any]
                              ) -> MutableMapping[str, Any]:
    """Scrub the ``exception`` field that ``dict_tracebacks``/``format_exc_info`` made.

    Must run after the exception processor (the exception is text or dicts only then).
    """
    if "exception" in event_dict:
        event_dict["exception"] = _scrub(event_dict["exception"])
    return event_dict


def escape_control_characters(_logger: Any, _method: str,
                              event_dict: MutableMapping[str, Any]
                              ) -> MutableMapping[str, Any]:
    """Console only: escape control characters in what the renderer prints as it is.

    A subject with ``ESC [2J`` must not clear the terminal, a newline must not forge a
    line. The console renderer is built with ``repr_native_str=True``, so every other value
    is printed as its ``repr`` (which escapes controls); the event name and a preformatted
    ``exception`` are printed raw, so they are escaped here.
    """
    event = event_dict.get("event")
    if isinstance(event, str):
        event_dict["event"] = escape_controls(event)
    exception = event_dict.get("exception")
    if isinstance(exception, str):
        event_dict["exception"] = escape_controls(_scrub(exception), keep_newlines=True)
    return event_dict


class _RedactedTraceback:
    """Wraps a console exception formatter: secrets scrubbed, controls escaped.

    The inner formatter writes into a buffer (Rich without colours, so every escape
    sequence left in the text came from the exception, not from Rich).
    """

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __call__(self, sio: TextIO, exc_info: Any) -> None:
        buffer = io.StringIO()
        self._inner(buffer, exc_info)
        sio.write(escape_controls(_scrub(buffer.getvalue()), keep_newlines=True))


def _has_rich() -> bool:
    try:
        import rich  # noqa: F401
    except ImportError:
        return False
    return True


def _json_dumps(obj: Any, default: Any = None, **_: Any) -> str:
    return orjson.dumps(obj, default=str).decode()


class _DirectLogger:
    """A stdlib logger's name and level, with rendered lines written straight to a handler.

    structlog calls ``info(line)`` (any level method) with the line the renderer made;
    the line goes to the stream of the handler :func:`configure_logging` installed last
    (looked up per line, so loggers cached before a reconfiguration follow it), under the
    handler's lock like the handler's own ``emit``. A failing write is reported the stdlib
    way (``Handler.handleError``), never raised into the caller.
    """

    __slots__ = ("_logger", "name")

    def __init__(self, logger: logging.Logger) -> None:
        self._logger = logger
        self.name = logger.name

    @property
    def disabled(self) -> bool:
        return self._logger.disabled

    def getEffectiveLevel(self) -> int:  # the stdlib method names
        return self._logger.getEffectiveLevel()

    def isEnabledFor(self, level: int) -> bool:
        return self._logger.isEnabledFor(level)

    def __getattr__(self, name: str) -> Any:
        # The rest of the stdlib logger (``level``, ``handlers``...), for
        # structlog.stdlib.BoundLogger's properties.
        return getattr(self._logger, name)

    def _write(self, line: str) -> None:
        handler = _direct_handler[0]
        handler.acquire()
        try:
            handler.stream.write(line + handler.terminator)
            handler.stream.flush()
        except Exception:
            handler.handleError(logging.makeLogRecord({"msg": line}))
        finally:
            handler.release()

    debug = info = warning = warn = error = exception = critical = fatal = msg = _write


#: The handler whose stream :class:`_DirectLogger` writes to (set by configure_logging).
_direct_handler: list[logging.StreamHandler[TextIO]] = [logging.StreamHandler(sys.stderr)]


class _DirectLoggerFactory:
    """Makes a :class:`_DirectLogger` per name, like ``structlog.stdlib.LoggerFactory``."""

    def __init__(self) -> None:
        self._stdlib = structlog.stdlib.LoggerFactory(ignore_frame_names=[__name__])

    def __call__(self, *args: Any) -> _DirectLogger:
        return _DirectLogger(self._stdlib(*args))


def stable_library_event(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]
                         ) -> MutableMapping[str, Any]:
    """A standard-library line (Hypercorn, imapclient, msal) under a stable event name.

    Their text would otherwise be the ``event``, so each new port or message would be a new
    "event". The text moves to ``message``; the name is ``http.listening`` for Hypercorn's
    "Running on" line and ``library.log`` for everything else (``daemon/log_events.py``).
    Runs only for foreign records (``ProcessorFormatter``'s ``foreign_pre_chain``).
    """
    text = event_dict.get("event")
    if not isinstance(text, str):
        return event_dict
    event_dict["message"] = text
    listening = event_dict.get("logger", "").startswith("hypercorn") and \
        text.startswith("Running on")
    event_dict["event"] = "http.listening" if listening else "library.log"
    return event_dict


def _shared_processors() -> list[Any]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact_secrets,
    ]


#: sd-daemon(3) priority prefixes (syslog levels) by structlog method name.
_SYSLOG_PRIORITY = {"debug": 7, "info": 6, "msg": 6, "warning": 4, "warn": 4, "error": 3,
                    "exception": 3, "critical": 2, "fatal": 2}


def stream_is_journal(stream: TextIO, environ: Mapping[str, str] = os.environ) -> bool:
    """Whether ``stream`` is connected to journald: ``$JOURNAL_STREAM`` is its dev:inode.

    systemd sets ``JOURNAL_STREAM`` for a unit whose stdout/stderr go to the journal;
    comparing it with the stream's own device and inode tells a redirected stream (a
    file, a pipe to another program) from the journal itself.
    """
    expected = environ.get("JOURNAL_STREAM")
    if not expected:
        return False
    try:
        st = os.fstat(stream.fileno())
    except (AttributeError, OSError, ValueError):
        return False
    return expected == f"{st.st_dev}:{st.st_ino}"


def add_syslog_priority(_logger: Any, method: str, line: str) -> str:
    """Prefix a rendered line with ``<N>``, its syslog priority, for journald.

    Runs after the renderer (it takes and returns the line), so ``journalctl -p err``
    filters by level; journald strips the prefix.
    """
    return f"<{_SYSLOG_PRIORITY.get(method, 6)}>{line}"


def configure_logging(fmt: str = "auto", level: str = "info", *,
                      stream: TextIO | None = None,
                      quiet_loggers: Iterable[str] = ("hypercorn.access",)) -> None:
    """Set up structlog and the standard library's root logger.

    Args:
        fmt: ``json``, ``console``, or ``auto`` (console when ``stream`` is a TTY).
        level: the minimum level name, e.g. ``info``.
        stream: where lines go (default: stderr).
        quiet_loggers: stdlib loggers turned down to WARNING.
    """
    stream = stream or sys.stderr
    if fmt == "auto":
        fmt = "console" if stream.isatty() else "json"
    numeric = logging.getLevelName(level.upper())
    if fmt == "json":
        renderer: Any = structlog.processors.JSONRenderer(serializer=_json_dumps)
        # Never render local variables: a frame of a login call holds the password.
        # structlog types a processor as dict in, dict out; these after the renderer take
        # and return the rendered line.
        tail: list[Any] = [structlog.processors.ExceptionRenderer(
            structlog.tracebacks.ExceptionDictTransformer(show_locals=False)),
            redact_rendered_exception]
    else:
        renderer = structlog.dev.ConsoleRenderer(repr_native_str=True,
                                                 exception_formatter=_RedactedTraceback(
            structlog.dev.RichTracebackFormatter(show_locals=False, color_system=None)
            if _has_rich() else structlog.dev.plain_traceback))
        tail = [escape_control_characters]
    priority: list[Any] = [add_syslog_priority] if stream_is_journal(stream) else []
    handler = logging.StreamHandler(stream)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*_shared_processors(), stable_library_event],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            *tail,
            renderer,
            *priority,
        ],
    ))
    if fmt == "json":
        final: list[Any] = [*tail, renderer, *priority]
        factory: Any = _DirectLoggerFactory()
    else:
        final = [structlog.stdlib.ProcessorFormatter.wrap_for_formatter]
        factory = structlog.stdlib.LoggerFactory()
    structlog.configure(
        processors=[structlog.stdlib.filter_by_level, *_shared_processors(), *final],
        logger_factory=factory,
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    _direct_handler[0] = handler
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)
    for name in quiet_loggers:
        logging.getLogger(name).setLevel(logging.WARNING)
