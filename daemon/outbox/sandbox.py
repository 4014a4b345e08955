"""Templates under a budget: a Jinja2 sandbox that also refuses to run out of memory or time.

Jinja2's :class:`~jinja2.sandbox.SandboxedEnvironment` stops a template from reaching
Python internals, but not from asking for a gigabyte: ``{{ "a" * 10**8 }}`` took 19 s and
1.2 GB, and two nested ``range(99999)`` loops never end. Templates are written by
administrators, not customers, but one careless template must not stop an import, and a
template (or an automatic-reply text) must never be a way to take the daemon down.

Every render gets a :class:`_Meter` (through a context variable, so the template code needs
no extra argument) and each place where a template can make work or data is charged
*before* the work is done, so a refusal costs microseconds:

* binary operators ``*``, ``**``, ``%`` and ``+`` (``intercepted_binops``): the size of the
  result is predicted from the operands (``len(s) * n``, printf widths, digits of a power);
* the ``~`` concatenation and every ``for`` loop: the template's syntax tree is rewritten
  at compile time so that concatenations go through a size check and loop iterables
  through a counter (:data:`TemplateBudget.max_loop_iterations`, shared by all loops of
  one render, nested or not);
* every call (macros, methods, globals) and every filter: integer arguments larger than
  the output budget (widths, counts) are refused, ``replace``/``join``/``indent`` predict
  their size, and a result longer than the budget is refused; a call (not a filter) also
  counts as an iteration, so recursive macros are bounded too;
* ``str.format`` widths (``"{:>999999999}"``) are checked when the method is looked up;
* ``range()`` is capped at the loop budget, ``lipsum`` is removed;
* the rendered output itself is summed chunk by chunk.

Every ``1024`` charges the wall clock is compared with the deadline
(:data:`TemplateBudget.max_seconds`).

Trade-off: the limits are in characters and iterations, not bytes of memory; an
intermediate value may reach a small multiple of the budget before a check sees it. The
output budget is *added to* the size of the merge codes themselves
(``conversation_messages`` may legitimately be megabytes), so it bounds what the template
makes, not what the customers wrote.

The environment is the immutable sandbox: lists and dicts cannot be changed in place
(``l.extend(l)`` in a loop would double without any operator).
"""

from __future__ import annotations

__all__ = ["DEFAULT_BUDGET", "BudgetExceeded", "TemplateBudget", "budgeted_environment",
           "render_budgeted"]

import contextvars
import functools
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.exceptions import SecurityError
from jinja2.runtime import markup_join, str_join
from jinja2.sandbox import ImmutableSandboxedEnvironment

#: How often (in charges) the clock is read.
_CLOCK_EVERY = 1024


@dataclass(frozen=True, slots=True)
class TemplateBudget:
    """What one render of one template may cost.

    Attributes:
        max_output_chars: characters the template may produce beyond the merge codes'
            own text; also the largest string, list, width or count any one step may make.
        max_loop_iterations: loop iterations and calls, all loops of one render together.
        max_seconds: wall-clock time for one render.
    """

    max_output_chars: int = 1_000_000
    max_loop_iterations: int = 100_000
    max_seconds: float = 2.0


DEFAULT_BUDGET = TemplateBudget()


class BudgetExceeded(SecurityError):
    """A template asked for more than its :class:`TemplateBudget` allows."""


class _Meter:
    """The budget left in one render."""

    __slots__ = ("_charges", "deadline", "iterations_left", "limit")

    def __init__(self, budget: TemplateBudget, extra_chars: int = 0) -> None:
        self.limit = budget.max_output_chars + extra_chars
        self.iterations_left = budget.max_loop_iterations
        self.deadline = time.monotonic() + budget.max_seconds
        self._charges = 0

    def tick(self) -> None:
        self.iterations_left -= 1
        if self.iterations_left < 0:
            raise BudgetExceeded("the template loops or calls more than "
                                 "template_max_loop_iterations allows")
        self._charges += 1
        if self._charges % _CLOCK_EVERY == 0 and time.monotonic() > self.deadline:
            raise BudgetExceeded("the template takes longer than template_timeout_seconds")

    def size(self, n: int, what: str) -> None:
        if n > self.limit:
            raise BudgetExceeded(f"{what} would be {n} characters, more than the "
                                 f"template budget of {self.limit}")


_METER: contextvars.ContextVar[_Meter | None] = contextvars.ContextVar(
    "postroom_template_meter", default=None)

_FORMAT_WIDTH = re.compile(r"\{[^{}]*?(\d+)[^{}]*\}")
_PRINTF_WIDTH = re.compile(r"%[-+ #0(\w)]*?(\d+)")


def _meter(env: _BudgetedEnvironment) -> _Meter:
    """The render's meter; a template rendered outside :func:`render_budgeted` (tests,
    ``from_string``) gets a fresh one per check, so it is still bounded step by step."""
    meter = _METER.get()
    return meter if meter is not None else _Meter(env.budget)


def _length(value: Any) -> int:
    try:
        return len(value)
    except TypeError:
        return 0


def _widths(pattern: re.Pattern[str], text: str) -> int:
    return max((int(m.group(1)) for m in pattern.finditer(text)), default=0)


def _check_args(meter: _Meter, args: Iterable[Any]) -> None:
    for arg in args:
        if isinstance(arg, int) and not isinstance(arg, bool) and arg > meter.limit:
            meter.size(arg, "an argument")


def _predict_binop(meter: _Meter, operator: str, left: Any, right: Any) -> None:
    """Refuse ``left <operator> right`` if its result would be over budget."""
    if operator == "*":
        for seq, n in ((left, right), (right, left)):
            if isinstance(n, int) and isinstance(seq, str | bytes | list | tuple):
                meter.size(len(seq) * max(n, 0), "a repetition")
    elif operator == "**":
        if isinstance(left, int) and isinstance(right, int) and abs(left) > 1 and right > 0:
            meter.size(left.bit_length() * right // 3, "the digits of a power")
    elif operator == "%" and isinstance(left, str):
        _check_args(meter, right if isinstance(right, tuple) else (right,))
        meter.size(_widths(_PRINTF_WIDTH, left), "a printf width")
    elif operator == "+" and isinstance(left, str | list | tuple):
        meter.size(_length(left) + _length(right), "a concatenation")


def _predict_call(meter: _Meter, name: str, target: Any, args: tuple[Any, ...]) -> None:
    """Size predictions for the few str operations that grow by more than their args."""
    if not isinstance(target, str):
        return
    if name == "replace" and len(args) >= 2 and isinstance(args[0], str):
        old, new = args[0], str(args[1])
        count = target.count(old) if old else len(target) + 1
        meter.size(len(target) + count * max(len(new) - len(old), 0), "a replace")
    elif name == "expandtabs" and args and isinstance(args[0], int):
        meter.size(len(target) + target.count("\t") * args[0], "expandtabs")
    elif name == "indent" and args:
        width = args[0] if isinstance(args[0], int) else _length(args[0])
        meter.size(len(target) + (target.count("\n") + 1) * width, "an indent")


def _predict_join(meter: _Meter, separator: Any, items: Any) -> None:
    count = _length(items)
    if count:
        meter.size(count * _length(separator), "a join")


def _budgeted_filter(env: _BudgetedEnvironment, name: str, func: Callable[..., Any]
                     ) -> Callable[..., Any]:
    """``func`` with its arguments checked first and its result measured after."""
    passes = getattr(func, "jinja_pass_arg", None)

    @functools.wraps(func)
    def checked(*args: Any, **kwargs: Any) -> Any:
        meter = _meter(env)
        values = args[1:] if passes is not None else args
        _check_args(meter, (*values, *kwargs.values()))
        if values:
            _predict_call(meter, name, values[0], values[1:])
            if name == "join":
                _predict_join(meter, values[1] if len(values) > 1 else
                              kwargs.get("d", ""), values[0])
            if name == "format" and isinstance(values[0], str):
                meter.size(_widths(_PRINTF_WIDTH, values[0]), "a printf width")
        result = func(*args, **kwargs)
        if isinstance(result, str | list | tuple):
            meter.size(len(result), f"the result of |{name}")
        return result

    return checked


class _BudgetedEnvironment(ImmutableSandboxedEnvironment):
    """The immutable sandbox, with every way of making work charged to a :class:`_Meter`.

    See the module docstring for what is checked where.
    """

    intercepted_binops = frozenset({"*", "**", "%", "+"})

    def __init__(self, *, budget: TemplateBudget, **options: Any) -> None:
        super().__init__(**options)
        self.budget = budget
        self.globals.pop("lipsum", None)
        self.globals["range"] = self._range
        self.globals["_postroom_loop"] = self._loop
        self.globals["_postroom_concat"] = jinja2.pass_eval_context(
            functools.partial(_concat, self))
        # Our own rewrites are not the template's calls: they do not count as iterations.
        self._internal = (self.globals["_postroom_loop"], self.globals["_postroom_concat"])
        self.filters = {name: _budgeted_filter(self, name, func)
                        for name, func in self.filters.items()}

    # -- compile time: route loops and ~ through the meter ----------------------------

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        tree = super()._parse(source, name, filename)
        for loop in tree.find_all(nodes.For):
            loop.iter = nodes.Call(nodes.Name("_postroom_loop", "load"), [loop.iter], [],
                                   None, None, lineno=loop.lineno)
        for concat in list(tree.find_all(nodes.Concat)):
            call = nodes.Call(nodes.Name("_postroom_concat", "load"), concat.nodes, [],
                              None, None, lineno=concat.lineno)
            _replace(tree, concat, call)
        return tree

    def _loop(self, iterable: Any) -> Iterator[Any]:
        meter = _meter(self)
        for item in iterable:
            meter.tick()
            yield item

    def _range(self, *args: int) -> range:
        result = range(*args)
        if len(result) > self.budget.max_loop_iterations:
            raise BudgetExceeded(f"range() of {len(result)} items is more than "
                                 "template_max_loop_iterations allows")
        return result

    # -- run time ---------------------------------------------------------------------

    def call_binop(self, context: jinja2.runtime.Context, operator: str, left: Any,
                   right: Any) -> Any:
        _predict_binop(_meter(self), operator, left, right)
        return super().call_binop(context, operator, left, right)

    def call(__self, __context: jinja2.runtime.Context, __obj: Any,
             *args: Any, **kwargs: Any) -> Any:
        meter = _meter(__self)
        if not any(__obj is f for f in __self._internal):
            meter.tick()
        _check_args(meter, (*args, *kwargs.values()))
        name = getattr(__obj, "__name__", "")
        target = getattr(__obj, "__self__", None)
        _predict_call(meter, name, target, args)
        if name == "join" and args:
            _predict_join(meter, target, args[0])
        result = super().call(__context, __obj, *args, **kwargs)
        if isinstance(result, str | list | tuple):
            meter.size(len(result), "the result of a call")
        return result

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)
        if wrapped is not None:
            _meter(self).size(_widths(_FORMAT_WIDTH, value.__self__), "a format width")
        return wrapped


def _concat(env: _BudgetedEnvironment, eval_ctx: nodes.EvalContext, *parts: Any) -> str:
    """``a ~ b ~ c`` with its size checked before and after joining."""
    meter = _meter(env)
    meter.size(sum(_length(p) if isinstance(p, str) else 0 for p in parts),
               "a ~ concatenation")
    joined: str = (markup_join if eval_ctx.autoescape else str_join)(parts)
    meter.size(len(joined), "a ~ concatenation")
    return joined


def _replace(tree: nodes.Node, old: nodes.Node, new: nodes.Node) -> None:
    """Put ``new`` where ``old`` is in ``tree`` (fields and lists of fields)."""
    for node in tree.find_all(nodes.Node):
        for field in node.fields:
            value = getattr(node, field, None)
            if value is old:
                setattr(node, field, new)
                return
            if isinstance(value, list) and any(item is old for item in value):
                value[[item is old for item in value].index(True)] = new
                return


def budgeted_environment(budget: TemplateBudget = DEFAULT_BUDGET, **options: Any
                         ) -> jinja2.Environment:
    """A sandboxed environment whose templates render under ``budget``.

    Args:
        budget: the limits; :func:`render_budgeted` applies them per render.
        options: passed to :class:`jinja2.Environment` (loader, autoescape, undefined...).
    """
    return _BudgetedEnvironment(budget=budget, **options)


def render_budgeted(template: jinja2.Template, context: Mapping[str, Any]) -> str:
    """Render ``template`` with one meter for the whole render.

    The output may be :attr:`TemplateBudget.max_output_chars` longer than the text of the
    merge codes in ``context`` together.

    Raises:
        BudgetExceeded: the template asked for more than its budget.
        Exception: whatever else the template raised (``1/0``...).
    """
    env = template.environment
    budget = env.budget if isinstance(env, _BudgetedEnvironment) else DEFAULT_BUDGET
    extra = sum(len(v) for v in context.values() if isinstance(v, str))
    meter = _Meter(budget, extra)
    token = _METER.set(meter)
    try:
        parts, total = [], 0
        for chunk in template.generate(context):
            total += len(chunk)
            meter.size(total, "the output")
            parts.append(chunk)
        return "".join(parts)
    finally:
        _METER.reset(token)
