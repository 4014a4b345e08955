"""``postroom check-config FILE``: validate a configuration without starting anything.

Given a ``.toml`` file it validates the TOML, follows every secret indirection (so an
unset environment variable is caught here, not at 3 a.m.), validates the runtime JSON
the TOML names, and then checks what only shows one message at a time
(:mod:`daemon.config.templates`): every account template and automatic-reply text compiles
and renders against sample data within its budget (errors name the template file and
line), and every limetype and property name in the runtime JSON is one the store accepts
(errors name the key path). Given a ``.json`` file it validates that file as a runtime
configuration on its own (account references cannot be checked without the TOML).

Output, one line each, nothing else::

    OK: postroom.toml (2 accounts, 1 oauth app, 1 imap connection; runtime.json: ...)
    warning: runtime.json: conversationParents[0].accounts[0]: no account "<account_id>" ...

or, on failure, every problem as ``file: path: reason``. Secrets are never printed: the
loader never puts a value in a message.
"""

from __future__ import annotations

__all__ = ["check_config"]

import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TextIO

from daemon.config.load import Config, load_config
from daemon.config.runtime import RuntimeConfig, load_runtime
from daemon.config.templates import store_name_problems, template_problems
from daemon.errors import ConfigError, ConfigProblem


def check_config(path: str | Path, *, environ: Mapping[str, str] | None = None,
                 out: TextIO | None = None,
                 plugin_checks: Callable[[Config], Iterable[ConfigProblem]] | None = None
                 ) -> int:
    """Validate ``path`` and print the verdict.

    Args:
        path: a postroom TOML file, or a runtime configuration ``.json`` file.
        environ: the environment secrets are read from (default ``os.environ``).
        out: where to print (default ``sys.stdout``).
        plugin_checks: more warnings about a valid TOML configuration, from its loaded
            plugins (``postroom check-config`` passes
            :func:`daemon.plugins.actions.plugin_warnings`: action ids nobody handles).
            Passed in because the plugin manager imports this package.

    Returns:
        0 when the file is valid (warnings allowed), 1 otherwise.
    """
    out = sys.stdout if out is None else out
    file = str(path)
    warnings: tuple[ConfigProblem, ...]
    try:
        if file.endswith(".json"):
            runtime = load_runtime(path)
            _raise_if(store_name_problems(runtime, file))
            summary, warnings = _runtime_summary(runtime), ()
        elif file.endswith(".toml"):
            config = load_config(path, environ=environ)
            _raise_if(_deep_problems(config))
            summary, warnings = _config_summary(config), config.warnings
            if plugin_checks is not None:
                warnings = (*warnings, *plugin_checks(config))
        else:
            raise ConfigError([ConfigProblem(file, "", "expected a .toml or a .json file")])
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=out)
        return 1
    print(f"OK: {file} ({summary})", file=out)
    for warning in warnings:
        print(f"warning: {warning}", file=out)
    return 0


def _deep_problems(config: Config) -> list[ConfigProblem]:
    runtime_file = config.daemon.runtime
    problems = []
    if runtime_file is not None:
        shown = (runtime_file.relative_to(config.base_dir)
                 if runtime_file.is_relative_to(config.base_dir) else runtime_file)
        problems += store_name_problems(config.runtime, str(shown))
    return problems + template_problems(config)


def _raise_if(problems: list[ConfigProblem]) -> None:
    if problems:
        raise ConfigError(problems)


def _config_summary(config: Config) -> str:
    counts = ", ".join([
        _count(len(config.accounts), "account"),
        _count(len(config.oauth_apps), "oauth app"),
        _count(len(config.imap_connections), "imap connection"),
    ])
    runtime = config.daemon.runtime.name if config.daemon.runtime else "built-in defaults"
    return f"{counts}; runtime {runtime}: {_runtime_summary(config.runtime)}"


def _runtime_summary(runtime: RuntimeConfig) -> str:
    methods = ", ".join(runtime.identification_method)
    return (f"{_count(len(runtime.conversation_parents), 'conversation parent')}, "
            f"{_count(len(runtime.follower_parents), 'follower parent')}, "
            f"identification by {methods}")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
