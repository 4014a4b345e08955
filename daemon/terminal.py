"""Text bound for a terminal, with every control character made visible.

Subjects, sender names and error messages come from strangers. Printed raw, an escape
sequence in a subject (``ESC ]0;...``, ``ESC [2J``) retitles or clears the administrator's
terminal, and a newline or carriage return in a value forges a whole log line. Before
such text reaches ``postroom inspect``'s report or the console log renderer, C0 and C1
controls, DEL, and the Unicode line separators and bidirectional overrides are written as
Python-style escapes (``\\x1b``, ``\\u202e``). Tabs are kept. JSON output needs none of this:
its encoder escapes controls itself.
"""

from __future__ import annotations

__all__ = ["escape_controls"]

import re

_CONTROLS = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape_controls(text: str, *, keep_newlines: bool = False) -> str:
    """``text`` with control characters escaped (see the module docstring).

    Args:
        text: any string.
        keep_newlines: leave ``\\n`` alone (multi-line text such as a formatted traceback
            or a message body preview); ``\\r`` is escaped either way.
    """
    if keep_newlines:
        return "\n".join(_CONTROLS.sub(_escape, line) for line in text.split("\n"))
    return _CONTROLS.sub(_escape, text)
