"""Reading API input: one error type, and parsers that refuse instead of crashing.

Every refusal is an :class:`ApiError`: a status (400 unless said otherwise) and a message
that starts with the parameter's name; the app answers it as
``{"error": "...", "parameter": "..."}``. Nothing a client sends may reach the store in a
shape it cannot take (an integer SQLite cannot hold, a property name it would refuse, a
string with a lone surrogate), because that surfaces as a 500.

* JSON bodies (:func:`json_object`): ``Content-Type: application/json`` or 415; parsed by
  orjson, which refuses lone surrogates, NaN and integers beyond 64 bits; nesting deeper
  than :data:`MAX_DEPTH` and integers outside SQLite's signed 64 bits are refused here;
  the top level must be an object.
* Ids in the path (:func:`path_id`): ASCII digits only, 1 to 2**63 - 1.
* Query values (:func:`filter_value`, :func:`whole_number`, :func:`property_name`).
"""

from __future__ import annotations

__all__ = ["MAX_DEPTH", "ApiError", "filter_value", "json_object", "path_id",
           "property_name", "whole_number"]

import re
from typing import Any

import orjson
from quart import request

#: Deeper JSON is refused (no API body nests more than three levels).
MAX_DEPTH = 32
#: SQLite's INTEGER (and PostgreSQL's bigint) range.
_INT_MIN, _INT_MAX = -(2 ** 63), 2 ** 63 - 1
_DIGITS = re.compile(r"-?[0-9]{1,18}")
_ID = re.compile(r"[0-9]{1,19}")
_NAME = re.compile(r"[A-Za-z0-9_]+")


class ApiError(Exception):
    """A refused request: answered as JSON with ``status``, naming ``parameter``."""

    def __init__(self, parameter: str, message: str, status: int = 400) -> None:
        super().__init__(f"{parameter}: {message}" if parameter else message)
        self.parameter = parameter
        self.status = status

    def as_json(self) -> dict[str, Any]:
        return {"error": str(self), "parameter": self.parameter}


async def json_object(*, optional: bool = False) -> dict[str, Any]:
    """The request body as a JSON object.

    Args:
        optional: an empty body means ``{}`` (a route whose fields are all optional).

    Raises:
        ApiError: 415 when the body is not declared ``application/json``, 400 when it is
            not a JSON object within the limits above.
    """
    data = await request.get_data(cache=True)
    assert isinstance(data, bytes)
    if not data and optional:
        return {}
    if request.mimetype != "application/json":
        raise ApiError("Content-Type", "must be application/json", 415)
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ApiError("body", f"not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise ApiError("body", "must be a JSON object")
    _check_values(value, "", 0)
    return value


def _check_values(value: Any, where: str, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise ApiError("body", f"nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, dict):
        for key, item in value.items():
            _check_values(item, f"{where}.{key}" if where else key, depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_values(item, f"{where}[{index}]", depth + 1)
    elif type(value) is int and not _INT_MIN <= value <= _INT_MAX:
        raise ApiError(where, "number out of range (64-bit signed)")


def path_id(name: str, text: str) -> int:
    """An object id from the path: 1 to 2**63 - 1, ASCII digits. Raises ApiError."""
    if _ID.fullmatch(text) and 0 < int(text) <= _INT_MAX:
        return int(text)
    raise ApiError(name, f"must be an id (a whole number from 1 to {_INT_MAX})")


def whole_number(name: str, text: str, *, low: int, high: int) -> int:
    """A query value as an int in ``[low, high]`` (ASCII digits). Raises ApiError."""
    if _DIGITS.fullmatch(text) and low <= int(text) <= high:
        return int(text)
    raise ApiError(name, f"must be a whole number from {low} to {high}")


def property_name(name: str) -> str:
    """A property (or limetype) name as the store accepts it. Raises ApiError."""
    if _NAME.fullmatch(name):
        return name
    raise ApiError(name, "not a property name (letters, digits and _ only)")


def filter_value(text: str) -> Any:
    """A query-string value as the JSON scalar it most likely means.

    ``42`` is a number, ``true``/``false`` booleans, ``null`` null, anything else a
    string; quote a value (``"42"``) to force a string. Only ASCII digits make a number.
    """
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return text[1:-1]
    if text in ("true", "false"):
        return text == "true"
    if text == "null":
        return None
    if _DIGITS.fullmatch(text):
        return int(text)
    return text
