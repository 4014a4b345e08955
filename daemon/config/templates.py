"""The checks ``check-config`` runs beyond loading: templates and store names.

Loading a configuration (:func:`daemon.settings.load_config`) validates what the daemon
needs to start. Two kinds of mistakes only show later, one message at a time, and
``check-config`` finds them before the first mail does:

* **Templates.** Every account's ``template`` (``templates/<name>.html`` next to the TOML
  file, or a shipped one) and every ``auto_reply`` subject and body is compiled, then
  rendered against sample merge codes under the account's template budget
  (:mod:`daemon.outbox.sandbox`). A syntax error, ``{{ 1/0 }}``, ``range(10**9)`` or
  ``"a" * 10**8`` is reported with the file and the line. At run time such a template
  falls back to the shipped default (mail still goes, looking wrong); here it is an error.
  Merge codes from the store (``{{ helpdesk.helpdesknumber }}``) are not in the sample, so
  an error about an undefined value is not reported: only real data can tell.
* **Store names.** Every limetype and property the runtime JSON names (``limetype``,
  ``property*``, ``relation*``, ``properties[].property``; a ``searchPath`` is already
  checked when loading) must match the store's rule (:data:`daemon.store.values.NAME_RE`,
  ``[A-Za-z0-9_]+``: the names are spliced into SQL), or the first import using it
  fails.
"""

from __future__ import annotations

__all__ = ["store_name_problems", "template_problems"]

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2
from pydantic import BaseModel

from daemon.config.problems import format_path
from daemon.config.runtime import PropertyMapping, RuntimeConfig
from daemon.errors import ConfigProblem
from daemon.outbox.compose import (
    Mailbox,
    ThreadEntry,
    conversation_html,
    environment_for,
    merge_codes,
    template_budget,
    template_line,
)
from daemon.outbox.sandbox import budgeted_environment, render_budgeted
from daemon.store.values import NAME_RE

if TYPE_CHECKING:
    from daemon.config.accounts import Account
    from daemon.config.load import Config

_SAMPLE_WHEN = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
_KINDS = ("reply", "notification", "auto_reply")


# -- templates ------------------------------------------------------------------------


def template_problems(config: Config) -> list[ConfigProblem]:
    """Every account template and automatic-reply text that fails to compile or to render
    against sample data; see the module docstring."""
    problems: list[ConfigProblem] = []
    env = environment_for(config)
    checked: set[str] = set()
    for index, account in enumerate(config.accounts):
        if account.template not in checked:
            checked.add(account.template)
            problems += _html_problems(config, env, index, account)
        problems += _text_problems(config, index, account)
    return problems


def _html_problems(config: Config, env: jinja2.Environment, index: int, account: Account
                   ) -> list[ConfigProblem]:
    name = f"{account.template}.html"
    try:
        template = env.get_template(name)
    except jinja2.TemplateNotFound:
        return [ConfigProblem(config.path.name, f"accounts[{index}].template",
                              f'no template "{name}" in {config.base_dir / "templates"} nor '
                              "among the shipped ones; mail would use the default")]
    except jinja2.TemplateSyntaxError as exc:
        return [_at(config, exc.filename or name, exc.lineno, exc.message or str(exc))]
    for kind in _KINDS:
        try:
            render_budgeted(template, _sample_context(account, kind))
        except jinja2.UndefinedError:
            continue
        except Exception as exc:
            return [_at(config, template.filename or name, template_line(exc),
                        f"fails when rendered with sample data ({kind}): "
                        f"{type(exc).__name__}: {exc}")]
    return []


def _text_problems(config: Config, index: int, account: Account) -> list[ConfigProblem]:
    env = budgeted_environment(template_budget(config), autoescape=False,
                               undefined=jinja2.ChainableUndefined)
    problems = []
    for key in ("subject", "body"):
        source = getattr(account.auto_reply, key)
        where = f"accounts[{index}].auto_reply.{key}"
        try:
            render_budgeted(env.from_string(source), _sample_context(account, "auto_reply"))
        except jinja2.UndefinedError:
            continue
        except jinja2.TemplateSyntaxError as exc:
            problems.append(ConfigProblem(config.path.name, where,
                                          f"line {exc.lineno}: {exc.message or exc}"))
        except Exception as exc:
            line = template_line(exc)
            problems.append(ConfigProblem(
                config.path.name, where, f"line {line}: fails when rendered with sample "
                f"data: {type(exc).__name__}: {exc}" if line else
                f"fails when rendered with sample data: {type(exc).__name__}: {exc}"))
    return problems


def _at(config: Config, filename: str, line: int | None, reason: str) -> ConfigProblem:
    """A problem in a template file, named relative to the TOML file's folder."""
    path = Path(filename)
    try:
        shown = str(path.relative_to(config.base_dir))
    except ValueError:
        shown = str(path)
    return ConfigProblem(shown, f"line {line}" if line else "", reason)


def _sample_context(account: Account, kind: str) -> dict[str, Any]:
    """Merge codes as :mod:`daemon.outbox.queue` builds them, for made-up people."""
    ann = Mailbox("ann@customer.example", "Ann Example")
    agent = Mailbox("agent@" + account.email.partition("@")[2], "Alex Agent")
    sender = agent if kind != "auto_reply" else Mailbox(account.email, account.name or "")
    entry = ThreadEntry(sender, _SAMPLE_WHEN, "<p>Sample message.</p>")
    return {
        **merge_codes(kind=kind, subject="Sample subject", recipient=ann,
                      others=[Mailbox("bob@customer.example", "Bob")],
                      followers=[ann, Mailbox("bob@customer.example", "Bob")],
                      sender=sender, language=account.language),
        "conversation_messages": conversation_html(
            [entry], zone=account.zone, print_zone=account.print_timezone,
            language=account.language),
        "subject": "Re: Sample subject",
        "language": account.language,
        "account_name": account.name or "",
        "account_address": account.email,
        "note": "",
        "marker": "",
    }


# -- store names ------------------------------------------------------------------------


def store_name_problems(runtime: RuntimeConfig, file: str) -> list[ConfigProblem]:
    """Every limetype or property name in ``runtime`` the store would refuse."""
    return [ConfigProblem(file, format_path(loc),
                          f'"{name}" is not a name the store accepts: letters, digits and '
                          "_ only ([A-Za-z0-9_]+)")
            for loc, name in _store_names(runtime, ()) if NAME_RE.fullmatch(name) is None]


def _store_names(model: BaseModel, loc: tuple[str | int, ...]
                 ) -> Iterator[tuple[tuple[str | int, ...], str]]:
    for field, info in type(model).model_fields.items():
        value = getattr(model, field)
        here = (*loc, info.alias or field)
        if isinstance(value, str) and _names_a_store_name(model, field):
            yield here, value
        elif isinstance(value, BaseModel):
            yield from _store_names(value, here)
        elif isinstance(value, tuple):
            for index, item in enumerate(value):
                if isinstance(item, BaseModel):
                    yield from _store_names(item, (*here, index))


def _names_a_store_name(model: BaseModel, field: str) -> bool:
    if isinstance(model, PropertyMapping):
        return field == "property"
    return field == "limetype" or field.startswith(("property_", "relation_"))
