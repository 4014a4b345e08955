"""The public surface of daemon.config, and module names that cannot shadow the stdlib."""

import importlib
import sys
from pathlib import Path

import daemon.config

ROOT = Path(__file__).resolve().parents[2]
SECTION_MODULES = ("accounts", "check", "connections", "crm", "daemon", "fields",
                   "http_listener", "load", "problems", "runtime", "secret_values", "secretkey",
                   "templates",
                   "units")

#: Older modules and packages that still carry a standard-library module's name; a new one
#: must not join them.
KNOWN_SHADOWS = {"daemon/http", "daemon/mail/html.py", "daemon/outbox/queue.py"}


def test_every_exported_name_exists_and_comes_from_a_section_module():
    for name in daemon.config.__all__:
        value = getattr(daemon.config, name)
        module = getattr(value, "__module__", None)
        if module is not None and module.startswith("daemon."):
            assert module.removeprefix("daemon.config.") in SECTION_MODULES, (name, module)


def test_every_section_module_lists_only_names_it_has():
    for module_name in SECTION_MODULES:
        module = importlib.import_module(f"daemon.config.{module_name}")
        assert [n for n in module.__all__ if not hasattr(module, n)] == [], module_name


def test_the_package_holds_exactly_the_section_modules():
    files = {p.stem for p in (ROOT / "daemon" / "config").glob("*.py")} - {"__init__"}
    assert files == set(SECTION_MODULES)


def test_no_new_module_is_named_after_a_stdlib_module():
    shadows = set()
    for top in ("daemon", "plugins_contrib"):
        for path in (ROOT / top).rglob("*"):
            is_package = path.is_dir() and (path / "__init__.py").exists()
            name = path.stem if path.suffix == ".py" else path.name if is_package else None
            if name in sys.stdlib_module_names:
                shadows.add(path.relative_to(ROOT).as_posix())
    assert shadows <= KNOWN_SHADOWS
