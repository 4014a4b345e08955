"""Turning bytes of unknown honesty into text.

Mail declares its charsets, and the declarations are often wrong: ``us-ascii`` parts carry
UTF-8, ``utf-8`` parts carry Latin-1, ``iso-8859-1`` parts carry windows-1252 quotes, and
some labels are invented (``x-unknown``, ``unknown-8bit``). The rules here, in order:

1. Labels are normalised the WHATWG way where that only widens the repertoire:
   ``us-ascii`` and ``iso-8859-1`` decode as windows-1252 (a superset every mail client
   produces in practice), ``shift_jis`` as cp932, ``gb2312`` as gb18030, ``ks_c_5601-1987``
   and ``euc-kr`` as cp949, ``iso-2022-jp`` tries its extended variants before giving up
   (Zammad's ISO-2022-JP fixes #2922, #3096, #3368 are about exactly this).
2. A single-byte label (ASCII, Latin-1, windows-1252) on bytes that are valid UTF-8 with
   non-ASCII content is a mislabel: real Latin-1 text is almost never valid UTF-8, so the
   part is decoded as UTF-8.
3. When the declared charset fails, or is unknown: UTF-8 strictly, then charset-normalizer's
   best guess, then windows-1252 (which decodes nearly every byte), then UTF-8 with
   replacement characters. Every step that is not the declared charset is reported as a
   defect, so the stored message can say what was repaired.

Headers are different: a raw 8-bit header has no declared charset at all. It is decoded as
UTF-8 if valid, else with a hint (the body's charset) or a guess, see :func:`decode_8bit`.
RFC 2047 encoded words are decoded leniently by :mod:`daemon.mail.headers`, with the same
repair chain.
"""

from __future__ import annotations

__all__ = [
    "decode_8bit",
    "decode_text",
    "normalise_charset",
]

import codecs
import re
from functools import lru_cache

_ALIASES = {
    "us-ascii": "cp1252",
    "ascii": "cp1252",
    "iso-8859-1": "cp1252",
    "iso8859-1": "cp1252",
    "latin1": "cp1252",
    "latin-1": "cp1252",
    "l1": "cp1252",
    "shift_jis": "cp932",
    "shift-jis": "cp932",
    "sjis": "cp932",
    "x-sjis": "cp932",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "ks_c_5601-1987": "cp949",
    "euc-kr": "cp949",
    "big5": "big5hkscs",
    "utf8": "utf-8",
    "unicode-1-1-utf-7": "utf-7",
    "unicode-1-1-utf-8": "utf-8",
    "x-unicode20utf8": "utf-8",
    "iso-8859-8-i": "iso8859_8",
    "iso-8859-8-e": "iso8859_8",
    "iso-8859-6-i": "iso8859_6",
    "iso-8859-6-e": "iso8859_6",
    "windows-874": "cp874",
    "x-euc-jp": "euc_jp",
    "x-euc": "euc_jp",
    "windows-31j": "cp932",
    "csshiftjis": "cp932",
    "iso-2022-jp-ms": "iso2022_jp_ext",
    "x-mac-roman": "mac_roman",
    "x-mac-cyrillic": "mac_cyrillic",
    "gb_2312-80": "gb18030",
    "x-gb2312": "gb18030",
    "cn-gb": "gb18030",
    "x-windows-949": "cp949",
    "ks_c_5601": "cp949",
    "ksc5601": "cp949",
    "x-unknown": "",
    "unknown": "",
    "unknown-8bit": "",
    "x-user-defined": "",
    "default": "",
    "charset": "",
}
# A declared charset that fails strictly is retried with these before detection.
_WIDER = {
    "iso2022_jp": ("iso2022_jp_2", "iso2022_jp_ext", "iso2022_jp_3", "cp932"),
    "euc_jp": ("euc_jis_2004", "cp932"),
    "cp932": ("shift_jis_2004",),
    "gb18030": (),
}
# Single-byte labels that are really UTF-8 when the bytes say so.
_SINGLE_BYTE = frozenset({"cp1252", "latin_1", "iso8859_15", "ascii"})
# Encodings in which ASCII bytes are not ASCII text (stateful 7-bit ones, UTF-16/32).
_SEVEN_BIT = frozenset({"iso2022_jp", "iso2022_jp_1", "iso2022_jp_2", "iso2022_jp_2004",
                        "iso2022_jp_3", "iso2022_jp_ext", "iso2022_kr", "utf-7", "hz",
                        "utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le",
                        "utf-32-be"})
# Python codecs that are not text encodings or are never a sane mail charset.
_REFUSED = frozenset({"undefined", "unicode_escape", "raw_unicode_escape", "idna", "punycode",
                      "rot_13", "base64_codec", "hex_codec", "quopri_codec", "uu_codec",
                      "zlib_codec", "bz2_codec", "mbcs", "oem"})


@lru_cache(maxsize=256)
def normalise_charset(label: str | None) -> str | None:
    """The Python codec name to try for a declared charset label, or None if unusable.

    Args:
        label: the charset as declared (quotes, case and whitespace are tolerated);
            RFC 2231 language suffixes (``utf-8*en``) are dropped.

    Returns:
        A codec name accepted by :func:`codecs.lookup`, or None when the label is missing,
        a known placeholder (``x-unknown``) or not a text encoding.
    """
    if not label:
        return None
    label = label.strip().strip("\"'").split("*", 1)[0].strip().lower()
    label = _ALIASES.get(label, label)
    if not label:
        return None
    name = _lookup(label) or _lookup(label.removeprefix("x-")) or _lookup(
        label.replace("_", "-").replace("cp-", "cp").replace("win-", "windows-"))
    if name is None:
        return None
    if name in _REFUSED or not codecs.lookup(name)._is_text_encoding:
        return None
    return name


def _known_codecs() -> frozenset[str]:
    """Every name :func:`codecs.lookup` can resolve through the stdlib's encodings."""
    import encodings
    import encodings.aliases
    import pkgutil

    names = {m.name for m in pkgutil.iter_modules(encodings.__path__)}
    names |= set(encodings.aliases.aliases) | set(encodings.aliases.aliases.values())
    return frozenset(_codec_key(n) for n in names)


def _codec_key(label: str) -> str:
    """``label`` the way the encodings search function normalises it."""
    return "_".join(filter(None, re.split(r"[^a-z0-9.]+", label.lower()))).replace(".", "_")


_KNOWN_CODECS = _known_codecs()


def _lookup(label: str) -> str | None:
    """The codec name for ``label``; None without a :func:`codecs.lookup` for a label no
    stdlib codec has (each such lookup tries an import)."""
    label = _ALIASES.get(label, label) or "-"
    if _codec_key(label) not in _KNOWN_CODECS:
        return None
    try:
        return codecs.lookup(label).name
    except (LookupError, ValueError):
        return None


def decode_text(data: bytes, declared: str | None) -> tuple[str, str | None]:
    """Decode a body part, repairing lying or unknown charsets.

    Args:
        data: the transfer-decoded bytes.
        declared: the charset parameter as written, or None.

    Returns:
        ``(text, defect)``; ``defect`` names the repair (``charset:utf-8->cp1252``) or is
        None when the declared charset (or plain ASCII) decoded the bytes as they are.
    """
    codec = normalise_charset(declared)
    if data.isascii() and codec not in _SEVEN_BIT:
        return data.decode("ascii"), None
    shown = (declared or "none").strip().strip("\"'").lower()
    if codec in _SINGLE_BYTE or codec is None:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            pass
        else:
            return text, None if not declared else f"charset:{shown}->utf-8"
    if codec is not None:
        for candidate in (codec, *_WIDER.get(codec, ())):
            try:
                text = data.decode(candidate)
            except (UnicodeError, LookupError):
                continue
            return text, None if candidate == codec else f"charset:{shown}->{candidate}"
    return _guess(data, shown)


def _guess(data: bytes, shown: str) -> tuple[str, str]:
    """Decode bytes the declared charset could not: UTF-8, detection, cp1252, replacement."""
    try:
        return data.decode("utf-8"), f"charset:{shown}->utf-8"
    except UnicodeDecodeError:
        pass
    western = _western(data)
    if western is not None:
        return western, f"charset:{shown}->cp1252"
    guessed = _detect(data)
    if guessed:
        try:
            return data.decode(guessed), f"charset:{shown}->{guessed}"
        except (UnicodeError, LookupError):
            pass
    try:
        return data.decode("cp1252"), f"charset:{shown}->cp1252"
    except UnicodeDecodeError:
        return data.decode("utf-8", "replace"), f"charset:{shown}->utf-8-replace"


def _western(data: bytes) -> str | None:
    """The bytes as windows-1252 when that reads like Western European text, else None.

    Detectors guess poorly on short Latin-1 text (charset-normalizer calls ``Grüße``
    cp1006 and Swedish cp1250), yet mislabelled mail is mostly Western. Text in a
    Western language is mostly ASCII letters with a few accented ones; Cyrillic or Greek
    bytes read as windows-1252 are almost all accented letters, and CJK bytes hit the
    five bytes windows-1252 leaves undefined. So: accept when at most half of the letters
    are non-ASCII and there are no C0/C1 control characters.
    """
    try:
        text = data.decode("cp1252")
    except UnicodeDecodeError:
        return None
    if _CONTROL.search(text):
        return None
    letters = sum(1 for ch in text if ch.isalpha())
    foreign = sum(1 for ch in text if ch.isalpha() and not ch.isascii())
    return text if letters and foreign * 2 <= letters else None


def _kana_rich(data: bytes) -> str | None:
    """The bytes as Shift_JIS (cp932) when that yields Japanese text, else None.

    Detectors confuse short Shift_JIS with cp949 and GBK, but Japanese text nearly always
    contains kana, and GBK or cp949 bytes read as cp932 almost never do: accept when at
    least a fifth of the characters are hiragana or katakana.
    """
    try:
        text = data.decode("cp932")
    except UnicodeDecodeError:
        return None
    kana = sum(1 for ch in text if "\u3040" <= ch <= "\u30ff")
    return text if kana * 5 >= len(text) else None


_CONTROL = re.compile("[\x00-\x08\x0b\x0e-\x1f\x7f-\x9f]")
# Charsets a detector may propose for mail; exotic single-byte code pages are left out.
_DETECTABLE = ["utf_8", "cp1252", "cp1250", "cp1251", "koi8_r", "koi8_u", "cp1253", "cp1254",
               "cp1255", "cp1256", "cp1257", "iso8859_2", "iso8859_5", "iso8859_7", "cp874",
               "cp932", "euc_jp", "iso2022_jp", "gb18030", "big5", "cp949", "euc_kr"]


def _detect(data: bytes) -> str | None:
    """charset-normalizer's best guess among common mail charsets, or None."""
    try:
        from charset_normalizer import from_bytes

        best = from_bytes(data[:65536], cp_isolation=_DETECTABLE).best()
    except Exception:  # a detector bug must not break parsing
        return None
    if best is None:
        return None
    return normalise_charset(best.encoding)


def decode_8bit(raw: bytes, hint: str | None = None) -> str:
    """Decode a header that arrived as raw 8-bit bytes (no declared charset).

    UTF-8 when valid; else the ``hint`` charset (the body's declared charset: a GB2312
    or Shift_JIS subject usually travels with a body in the same charset) when it decodes
    the bytes strictly; else windows-1252 when that reads as Western text; else
    Shift_JIS when that yields kana-rich text; else charset-normalizer's guess; else
    windows-1252, with Latin-1 for the bytes windows-1252 leaves undefined. ISO-2022-JP
    (7-bit, escape sequences) is recognised by its escapes.
    """
    if raw.isascii():
        if b"\x1b$" in raw or b"\x1b(" in raw:
            try:
                return raw.decode("iso2022_jp_2")
            except UnicodeDecodeError:
                pass
        return raw.decode("ascii")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        pass
    codec = normalise_charset(hint)
    if codec is not None and codec != "utf_8":
        for candidate in (codec, *_WIDER.get(codec, ())):
            try:
                return raw.decode(candidate)
            except (UnicodeError, LookupError):
                continue
    western = _western(raw)
    if western is not None:
        return western
    japanese = _kana_rich(raw)
    if japanese is not None:
        return japanese
    guessed = _detect(raw) if len(raw) >= 4 else None
    if guessed is not None:
        try:
            return raw.decode(guessed)
        except (UnicodeError, LookupError):
            pass
    try:
        return raw.decode("cp1252")
    except UnicodeDecodeError:
        return raw.decode("latin-1")
