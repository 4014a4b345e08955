"""The event catalogue (daemon/log_events.py) against the code and docs/events.md.

The source is scanned with :mod:`ast` for ``log.<level>("name", ...)`` calls (any
receiver: ``log``, ``self.log``); a name the registry lacks, or a level other than the
registered one, fails. Names built at run time are resolved where they are built: the two
branches of a conditional expression, the supervisor's ``_report(status, "name", ...)``
and the processor's ``"message." + outcome`` (the outcomes it can log).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from daemon.log_events import EVENTS, by_name, markdown
from daemon.messages import OutcomeStatus

ROOT = Path(__file__).parents[1]
LEVELS = {"debug", "info", "warning", "error", "critical", "exception"}
#: "message." + outcome.status.value in the processor: the outcomes of a commit.
COMMITTED = [f"message.{s.value}" for s in OutcomeStatus if s is not OutcomeStatus.FAILED]


def _names(node: ast.expr) -> list[str] | None:
    """The event names an expression can be, or None when it cannot be resolved."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.IfExp):
        body, orelse = _names(node.body), _names(node.orelse)
        return None if body is None or orelse is None else body + orelse
    if (isinstance(node, ast.BinOp) and isinstance(node.left, ast.Constant)
            and node.left.value == "message."):
        return COMMITTED
    return None


def logged_events() -> Iterator[tuple[str, str, str]]:
    """(name, level, where) for every log call in daemon/ and plugins_contrib/."""
    for path in sorted([*ROOT.glob("daemon/**/*.py"), *ROOT.glob("plugins_contrib/**/*.py")]):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            where = f"{path.relative_to(ROOT)}:{node.lineno}"
            func = node.func
            if isinstance(func, ast.Name) and func.id == "_report" and len(node.args) > 1:
                for name in _names(node.args[1]) or []:
                    yield name, "warning", where
                continue
            if not (isinstance(func, ast.Attribute) and func.attr in LEVELS
                    and isinstance(func.value, ast.Name | ast.Attribute)
                    and (getattr(func.value, "id", None) or func.value.attr).endswith("log")):
                continue
            names = _names(node.args[0])
            if names is None:
                yield f"<unresolved {ast.unparse(node.args[0])}>", func.attr, where
                continue
            for name in names:
                yield name, func.attr, where


def test_every_logged_event_is_registered_at_its_level():
    problems = []
    for name, level, where in logged_events():
        if name.startswith("<unresolved") and "supervisor.py" in where:
            continue  # _report's own log call: its names are checked at each _report
        spec = by_name(name)
        if spec is None:
            problems.append(f"{where}: {name} is not in daemon/log_events.py")
        elif spec.level != ("error" if level == "exception" else level):
            problems.append(f"{where}: {name} logged at {level}, registered {spec.level}")
    assert not problems, "\n".join(problems)


def test_every_registered_event_is_logged_somewhere():
    logged = {name for name, _, _ in logged_events()}
    from_library = {"http.listening", "library.log"}  # daemon.log.stable_library_event
    unused = {spec.name for spec in EVENTS} - logged - from_library
    assert not unused, f"registered but never logged: {sorted(unused)}"


def test_a_condition_has_one_level_and_one_name():
    parked = [spec for spec in EVENTS if "parked" in spec.name and "unparked" not in spec.name]
    assert [(s.name, s.level) for s in parked] == [("account.parked", "error")]


def test_the_scan_sees_a_call_the_registry_lacks(tmp_path):
    module = ast.parse('log.warning("made.up", x=1)\nself.log.info("daemon.started")')
    calls = [n for n in ast.walk(module) if isinstance(n, ast.Call)]
    assert [_names(c.args[0]) for c in calls] == [["made.up"], ["daemon.started"]]
    assert by_name("made.up") is None


def test_docs_events_md_is_generated_from_the_registry():
    assert (ROOT / "docs" / "events.md").read_text() == markdown(), (
        "docs/events.md is stale: python -m daemon.log_events > docs/events.md")


def test_hypercorn_lines_get_stable_names():
    code = ("import io, logging; from daemon.log import configure_logging; s = io.StringIO();"
            "configure_logging('json', 'info', stream=s);"
            "logging.getLogger('hypercorn.error').info('Running on http://127.0.0.1:1 (x)');"
            "logging.getLogger('imapclient').warning('odd %s', 'thing');"
            "print(s.getvalue())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    lines = [json.loads(line) for line in out.splitlines() if line]
    assert [(x["event"], x["logger"]) for x in lines] == [
        ("http.listening", "hypercorn.error"), ("library.log", "imapclient")]
    assert lines[0]["message"].startswith("Running on") and lines[1]["message"] == "odd thing"
