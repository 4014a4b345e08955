"""Turning pydantic's validation errors into :class:`~daemon.errors.ConfigProblem` lines.

Both configuration files (the TOML, one module per section in :mod:`daemon.config`, and
the runtime JSON in :mod:`daemon.config.runtime`) are validated by frozen pydantic models
that forbid unknown keys. Pydantic reports ``loc`` tuples and messages written for
programmers ("Input should be a valid dictionary or instance of Account"); an operator
needs ``accounts[0].timezone: ...`` in the words of the file they wrote. This module does
that translation once:

* ``("accounts", 0, "timezone")`` becomes ``accounts[0].timezone``;
* messages are reworded for the file's flavour ("must be a table" in TOML, "must be an
  object" in JSON); an unknown key gets a "did you mean" hint from the keys the model at
  that place accepts;
* the offending *input* is never copied into a message, so a secret typed into the wrong
  key cannot leak through an error.

Validators that must report at a precise key of their model (a cross-field check) call
:func:`fail_at`, which raises a :class:`pydantic.ValidationError` carrying that location;
pydantic nests it under the model's own location.
"""

from __future__ import annotations

__all__ = [
    "Flavour",
    "config_keys",
    "fail_at",
    "format_path",
    "problems_from_validation_error",
    "suggest",
]

import difflib
import types
import typing
from collections.abc import Iterable, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

from daemon.errors import ConfigProblem

#: How the file spells containers: TOML "table"/"array", JSON "object"/"array".
Flavour = Literal["toml", "json"]

Loc = Sequence[str | int]

_MAPPING_ERRORS = frozenset({"model_type", "model_attributes_type", "dict_type"})
_SEQUENCE_ERRORS = frozenset({"tuple_type", "list_type", "iterable_type"})
_REWORDS = (
    ("Value error, ", ""),
    ("Assertion failed, ", ""),
    ("Input should be", "must be"),
    ("String should", "must"),
    ("Tuple should", "must"),
    ("List should", "must"),
)


def format_path(loc: Loc) -> str:
    """``("accounts", 2, "auth")`` -> ``accounts[2].auth``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def config_keys(model: type[BaseModel]) -> tuple[str, ...]:
    """The keys a user may write for ``model``: aliases where set, minus derived fields.

    A model lists fields that are filled by the loader rather than written by the user
    (a resolved secret such as ``password``) in a ``resolved_secrets`` class variable.
    """
    derived = set(getattr(model, "resolved_secrets", ()))
    return tuple(field.alias or name for name, field in model.model_fields.items()
                 if name not in derived)


def suggest(key: str, candidates: Iterable[str]) -> str:
    """`` (did you mean 'password_env'?)`` when a candidate is close to ``key``, else ``""``."""
    close = difflib.get_close_matches(key, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def fail_at(title: str, *problems: tuple[Loc, str]) -> typing.NoReturn:
    """Raise a ValidationError with one line per ``(loc, message)``, relative to the model.

    Use inside a ``model_validator(mode="after")`` to blame a specific key rather than the
    whole model.
    """
    raise ValidationError.from_exception_data(title, [
        InitErrorDetails(type=PydanticCustomError("config", message), loc=tuple(loc),
                         input=None)
        for loc, message in problems
    ])


def problems_from_validation_error(
    exc: ValidationError, *, file: str, model: type[BaseModel], prefix: Loc = (),
    flavour: Flavour = "toml",
) -> list[ConfigProblem]:
    """One :class:`ConfigProblem` per pydantic error line.

    Args:
        exc: what ``model.model_validate`` raised.
        file: the file name as the user gave it.
        model: the model that was validated (used to find the keys an unknown key was
            probably meant to be).
        prefix: where in the file the validated data sits, e.g. ``("accounts", 2)``.
        flavour: ``"toml"`` or ``"json"``, for the names of containers.

    Returns:
        The problems in pydantic's order (the order of the keys in the model).
    """
    return [
        ConfigProblem(file, format_path([*prefix, *error["loc"]]),
                      _reason(error, model, flavour))
        for error in exc.errors(include_url=False, include_input=False)
    ]


def _reason(error: Any, model: type[BaseModel], flavour: Flavour) -> str:
    kind = error["type"]
    if kind == "missing":
        return "required key missing"
    if kind == "extra_forbidden":
        owner = _model_at(model, error["loc"][:-1])
        keys = config_keys(owner) if owner is not None else ()
        return "unknown key" + suggest(str(error["loc"][-1]), keys)
    if kind in _MAPPING_ERRORS:
        return "must be a table" if flavour == "toml" else "must be an object"
    if kind in _SEQUENCE_ERRORS:
        return "must be an array"
    message = str(error["msg"])
    for old, new in _REWORDS:
        message = message.replace(old, new)
    return message


def _model_at(model: type[BaseModel], loc: Loc) -> type[BaseModel] | None:
    """The model class found by following ``loc`` (field aliases or names, list indexes)."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            current = _element_type(current)
            continue
        model_cls = _as_model(current)
        if model_cls is None:
            return None
        field = next((f for name, f in model_cls.model_fields.items()
                      if part in (name, f.alias)), None)
        if field is None:
            return None
        current = field.annotation
    return _as_model(current)


def _as_model(tp: Any) -> type[BaseModel] | None:
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return tp
    for arg in _union_args(tp):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
    return None


def _element_type(tp: Any) -> Any:
    for candidate in (tp, *_union_args(tp)):
        args = typing.get_args(candidate)
        if typing.get_origin(candidate) in (tuple, list) and args:
            return args[0]
    return None


def _union_args(tp: Any) -> tuple[Any, ...]:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return typing.get_args(tp)
    return ()
