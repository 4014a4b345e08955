"""Logging: structlog for our events, the standard library's loggers routed through it.

One JSON object per line in production (or when stderr is not a terminal), a console
renderer on a TTY. Event names are constant and dotted (``imap.idle.wake``); everything
variable goes in fields. Each actor binds ``account`` with
:func:`structlog.contextvars.bind_contextvars` at the top of its task; Trio copies the
context into child tasks and worker threads, so the binding follows the work.

The processor chain, in order (each does one job)::

    merge_contextvars -> add_log_level -> add_logger_name -> TimeStamper
    -> redact_secrets -> format_exc_info/dict_tracebacks -> renderer

``redact_secrets`` must run before the renderer and after everything that adds fields.
"""

from __future__ import annotations

__all__ = ["configure_logging", "redact_secrets", "REDACTED"]

import logging
import re
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any, TextIO

import orjson
import structlog

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


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
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


def _has_rich() -> bool:
    try:
        import rich  # noqa: F401
    except ImportError:
        return False
    return True


def _json_dumps(obj: Any, default: Any = None, **_: Any) -> str:
    return orjson.dumps(obj, default=str).decode()


def _shared_processors() -> list[Any]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact_secrets,
    ]


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
        tail = [structlog.processors.ExceptionRenderer(
            structlog.tracebacks.ExceptionDictTransformer(show_locals=False))]
    else:
        renderer = structlog.dev.ConsoleRenderer(
            exception_formatter=structlog.dev.RichTracebackFormatter(show_locals=False)
            if _has_rich() else structlog.dev.plain_traceback)
        tail = []
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *_shared_processors(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_shared_processors(),
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            *tail,
            renderer,
        ],
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)
    for name in quiet_loggers:
        logging.getLogger(name).setLevel(logging.WARNING)
