"""Unpacking Outlook's ``winmail.dat`` (TNEF, ``application/ms-tnef``).

Outlook and Exchange wrap attachments in a TNEF blob when they believe the recipient is
another Outlook; every helpdesk except osTicket then stores one useless ``winmail.dat``
(Zammad #2403). We unpack it with tnefparse and return the files inside as ordinary
attachments with ``origin="tnef"``, plus the plain or HTML body if the blob carries one
(it usually carries only compressed RTF, which we do not render: the MIME text part has the
same text). Embedded Outlook messages (attach method 5) are skipped: tnefparse exposes
them only as another TNEF structure, not as a file.

tnefparse raises assorted exceptions (ValueError, IndexError, struct errors,
UnicodeDecodeError) on damaged input; :func:`unpack_tnef` turns all of them into ``None`` so
that the caller can keep the ``.dat`` file itself.
"""

from __future__ import annotations

__all__ = ["TnefContent", "is_tnef", "unpack_tnef"]

import logging
import mimetypes
from dataclasses import dataclass
from typing import Any

from daemon.mail.model import Attachment

_MIME_TAG = 0x370E  # PidTagAttachMimeTag
_CONTENT_ID = 0x3712  # PidTagAttachContentId
_TNEF_TYPES = frozenset({"application/ms-tnef", "application/vnd.ms-tnef"})

# tnefparse logs every oddity at WARNING; mail is full of oddities and we report them as
# defects instead.
logging.getLogger("tnefparse").setLevel(logging.ERROR)


@dataclass(frozen=True, slots=True)
class TnefContent:
    """What a TNEF blob held: files, and a body when one was present as text or HTML."""

    attachments: tuple[Attachment, ...]
    text: str | None = None
    html: str | None = None


def is_tnef(content_type: str, filename: str | None) -> bool:
    """True for a part that is TNEF by type or by Outlook's customary file name."""
    return content_type in _TNEF_TYPES or (filename or "").strip().lower() == "winmail.dat"


def unpack_tnef(data: bytes) -> TnefContent | None:
    """Unpack a TNEF blob.

    Args:
        data: the decoded bytes of the ``winmail.dat`` part.

    Returns:
        The files (``origin="tnef"``) and body, or None when the blob cannot be read or
        holds neither files nor a body (the caller then keeps the ``.dat`` file).
    """
    try:
        from tnefparse.tnef import TNEF

        blob = TNEF(data, do_checksum=False)
        attachments = tuple(a for a in map(_attachment, blob.attachments) if a is not None)
        text = _as_text(blob.body)
        html = _as_text(blob.htmlbody)
    except Exception:  # tnefparse raises anything from IndexError to struct.error
        return None
    if not attachments and not text and not html:
        return None
    return TnefContent(attachments, text, html)


def _attachment(item: Any) -> Attachment | None:  # tnefparse ships no types
    if hasattr(item, "embed"):
        return None
    data = getattr(item, "data", b"")
    if not isinstance(data, bytes):
        return None
    name = str(item.long_filename() or item.name or "").strip("\x00 ")
    props = {p.name: p.data for p in getattr(item, "mapi_attrs", ())}
    content_type = _text(props.get(_MIME_TAG)).lower()
    if "/" not in content_type:
        content_type = (mimetypes.guess_type(name)[0] if name else None) or \
            "application/octet-stream"
    content_id = _text(props.get(_CONTENT_ID)).strip("<> ") or None
    return Attachment(filename=name, content_type=content_type, data=data,
                      content_id=content_id, origin="tnef")


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("cp1252", "replace").strip("\x00")
    return value.strip("\x00") if isinstance(value, str) else ""


def _as_text(value: object) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("cp1252", "replace")
    if isinstance(value, list):
        value = "".join(v if isinstance(v, str) else v.decode("cp1252", "replace")
                        for v in value)
    if isinstance(value, str):
        value = value.strip("\x00").replace("\r\n", "\n")
        return value or None
    return None
