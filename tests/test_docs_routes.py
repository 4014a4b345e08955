"""Issue 14: every HTTP route the docs name is served by the app.

The routes are read from the app's own ``url_map`` (with the plugin manager and every
blueprint the app registers), so routes other branches add (OAuth, more API) count as
soon as they exist. A route is mentioned as ``METHOD /path``, as a backticked
``/path``, or in a URL of the listener (``http://127.0.0.1:8025/status``); ``{id}``,
``<id>`` and upper-case words (``NAME``) are placeholders, and a mention ending in ``...``
or ``/`` (or a bare ``/api/v1``) is a prefix some route must start with.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing.exceptions import WebsocketMismatch

from daemon.app import Daemon
from daemon.config import parse_config
from daemon.http.app import create_app
from daemon.http.graph_webhooks import LIFECYCLE_PATH, NOTIFICATION_PATH
from daemon.plugins.manager import make_plugin_manager

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]

_METHOD = re.compile(r"\b(GET|POST|PUT|PATCH|DELETE)\s+(/[^\s`|)\"']*)")
_TICKED = re.compile(r"`(/[A-Za-z][^`\s]*)`")
#: URLs of the daemon's own listener (its default port); other ports are other servers.
_LOOPBACK = re.compile(r"https?://(?:127\.0\.0\.1|localhost|\[::1\]):8025(/[^\s`'\")]*)")
#: Backticked absolute paths that are files, not routes.
_FILES = re.compile(r"^/(etc|var|usr|run|tmp|opt|home|srv|dev|proc|lib)\b|\.\w+$")
#: Paths of Microsoft Graph's own API (docs/graph.md describes the calls we make).
_GRAPH_API = re.compile(r"^/(users|me|subscriptions|messages)\b")
#: Routes answered in front of Quart, so not in its url_map (daemon/http/graph_webhooks.py).
_IN_FRONT = frozenset({NOTIFICATION_PATH, LIFECYCLE_PATH})
_PLACEHOLDER = re.compile(r"\{[^}/]+\}|<[^>/]+>|\b[A-Z][A-Z_]+\b")


def mentions() -> list[tuple[str, str, str | None]]:
    """``(document, path, method or None)`` for every route mention in the docs."""
    found = []
    for document in DOCUMENTS:
        text = document.read_text(encoding="utf-8")
        for method, path in _METHOD.findall(text):
            if not _GRAPH_API.search(path):
                found.append((document.name, path, method))
        for path in _TICKED.findall(text) + _LOOPBACK.findall(text):
            if not _FILES.search(path.split("?")[0]) and not _GRAPH_API.search(path):
                found.append((document.name, path, None))
    return found


@pytest.fixture(scope="module")
def url_map(tmp_path_factory):
    base = tmp_path_factory.mktemp("routes")
    config = parse_config({"http": {"enabled": True}}, file="postroom.toml", base_dir=base)
    app = create_app(Daemon(config, None, make_plugin_manager(load_entry_points=False),
                            None, None))
    return app.url_map


def served(url_map, path: str, method: str | None) -> bool:
    path = path.split("?")[0].rstrip(".")
    if path in _IN_FRONT:
        return method in (None, "POST")
    if path.endswith(("/", "...", "/*")):
        prefix = path.rstrip("./*")
        return any(rule.rule.startswith(prefix) for rule in url_map.iter_rules())
    adapter = url_map.bind("localhost")
    concrete = _PLACEHOLDER.sub("1", path)
    try:
        adapter.match(concrete, method=method or "GET")
    except MethodNotAllowed:
        return method is None
    except WebsocketMismatch:  # a websocket route (/events), named without a method
        return method is None
    except NotFound:  # "/api/v1" alone names the API as a whole
        return method is None and any(rule.rule.startswith(concrete + "/")
                                      for rule in url_map.iter_rules())
    return True


def test_the_docs_name_routes_at_all():
    paths = {path for _, path, _ in mentions()}
    assert {"/status", "/api/v1/conversations/{id}/read"} <= paths


def test_every_route_named_in_the_docs_is_served(url_map):
    missing = sorted({f"{doc}: {method or ''} {path}".replace("  ", " ")
                      for doc, path, method in mentions()
                      if not served(url_map, path, method)})
    assert missing == []


def test_a_route_that_does_not_exist_is_caught(url_map):
    assert not served(url_map, "/oauth/nowhere", None)
    assert not served(url_map, "/api/v1/conversations/{id}/read", "GET")
    assert served(url_map, "/api/v1/outbox/<id>/release", "POST")
