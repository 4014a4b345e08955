"""Write the corpus messages that cannot be typed as plain UTF-8 text.

Run ``python tests/corpus/make_binary.py`` to regenerate them; the output is committed,
and ``tests/mail/test_corpus.py`` checks that it is up to date. The TNEF blob is built
from the format description in [MS-OXTNEF] §2.1.3 (attribute level, id, type, length,
data, checksum) so that tnefparse reads it like Outlook's own ``winmail.dat``.
"""

from __future__ import annotations

import base64
import struct
from pathlib import Path

HERE = Path(__file__).parent

TNEF_SIGNATURE = 0x223E9F78
LVL_MESSAGE, LVL_ATTACHMENT = 0x01, 0x02


def _attribute(level: int, name: int, kind: int, data: bytes) -> bytes:
    checksum = sum(data) & 0xFFFF
    return struct.pack("<BHHI", level, name, kind, len(data)) + data + struct.pack("<H", checksum)


def _mapi_string(prop_id: int, value: str) -> bytes:
    raw = value.encode("cp1252") + b"\x00"
    padded = raw + b"\x00" * (-len(raw) % 4)
    return struct.pack("<HHII", 0x001E, prop_id, 1, len(raw)) + padded


def build_tnef(files: list[tuple[str, str, str | None, bytes]], body: str) -> bytes:
    """A TNEF blob with a plain body and ``(short name, long name, mime type, data)`` files."""
    out = [struct.pack("<IH", TNEF_SIGNATURE, 0x0001)]
    out.append(_attribute(LVL_MESSAGE, 0x9006, 0x0008, struct.pack("<I", 0x00010000)))
    out.append(_attribute(LVL_MESSAGE, 0x9007, 0x0006, struct.pack("<II", 1252, 0)))
    out.append(_attribute(LVL_MESSAGE, 0x8008, 0x0007, b"IPM.Microsoft Mail.Note\x00"))
    out.append(_attribute(LVL_MESSAGE, 0x800C, 0x0002, body.encode("cp1252")))
    for short, long_name, mime, data in files:
        rend = struct.pack("<HIHHI", 1, 0xFFFFFFFF, 1, 1, 0)
        out.append(_attribute(LVL_ATTACHMENT, 0x9002, 0x0006, rend))
        out.append(_attribute(LVL_ATTACHMENT, 0x8010, 0x0001, short.encode("cp1252") + b"\x00"))
        out.append(_attribute(LVL_ATTACHMENT, 0x800F, 0x0006, data))
        props = [_mapi_string(0x3707, long_name)]
        if mime:
            props.append(_mapi_string(0x370E, mime))
        mapi = struct.pack("<I", len(props)) + b"".join(props)
        out.append(_attribute(LVL_ATTACHMENT, 0x9005, 0x0006, mapi))
    return b"".join(out)


def _b64(data: bytes) -> bytes:
    text = base64.b64encode(data)
    return b"\r\n".join(text[i:i + 76] for i in range(0, len(text), 76))


PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")


def tnef_message() -> bytes:
    blob = build_tnef([
        ("REPORT~1.TXT", "Quarterly report 2025.txt", None, b"Revenue: 42\r\nCosts: 17\r\n"),
        ("CHART~1.PNG", "chart.png", "image/png", PNG),
    ], "Please find the report attached.")
    return b"\r\n".join([
        b"Return-Path: <sven.outlook@corp.example.net>",
        b"From: Sven Outlook <sven.outlook@corp.example.net>",
        b"To: support@example.com",
        b"Subject: Quarterly report",
        b"Date: Wed, 26 Mar 2025 10:00:00 +0100",
        b"Message-ID: <tnef-1@corp.example.net>",
        b"MIME-Version: 1.0",
        b'Content-Type: multipart/mixed; boundary="tnef-boundary"',
        b"",
        b"--tnef-boundary",
        b'Content-Type: text/plain; charset="us-ascii"',
        b"",
        b"Please find the report attached.",
        b"",
        b"--tnef-boundary",
        b'Content-Type: application/ms-tnef; name="winmail.dat"',
        b'Content-Disposition: attachment; filename="winmail.dat"',
        b"Content-Transfer-Encoding: base64",
        b"",
        _b64(blob),
        b"",
        b"--tnef-boundary--",
        b"",
    ])


def broken_tnef_message() -> bytes:
    return b"\r\n".join([
        b"From: Sven Outlook <sven.outlook@corp.example.net>",
        b"To: support@example.com",
        b"Subject: Broken winmail",
        b"Date: Wed, 26 Mar 2025 11:00:00 +0100",
        b"Message-ID: <tnef-2@corp.example.net>",
        b"MIME-Version: 1.0",
        b'Content-Type: multipart/mixed; boundary="tb"',
        b"",
        b"--tb",
        b"Content-Type: text/plain",
        b"",
        b"Attachment is damaged.",
        b"--tb",
        b"Content-Type: application/ms-tnef",
        b"Content-Transfer-Encoding: base64",
        b"",
        _b64(b"this is not TNEF at all"),
        b"--tb--",
        b"",
    ])


def iso_2022_jp_message() -> bytes:
    subject = "お問い合わせ：請求書について"
    name = "山田太郎"
    body = "いつもお世話になっております。\n請求書①の件でご連絡しました。\n"
    encoded_subject = base64.b64encode(subject.encode("iso2022_jp")).decode()
    encoded_name = base64.b64encode(name.encode("iso2022_jp")).decode()
    return (
        f"From: =?ISO-2022-JP?B?{encoded_name}?= <yamada@kaisha.example.jp>\r\n"
        "To: support@example.com\r\n"
        f"Subject: =?ISO-2022-JP?B?{encoded_subject}?=\r\n"
        "Date: Thu, 27 Mar 2025 09:00:00 +0900\r\n"
        "Message-ID: <iso2022jp-1@kaisha.example.jp>\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: text/plain; charset="ISO-2022-JP"\r\n'
        "Content-Transfer-Encoding: 7bit\r\n\r\n"
    ).encode("ascii") + body.replace("\n", "\r\n").encode("iso2022_jp_3")


def windows_1252_message() -> bytes:
    return (
        "From: Jürgen Weiß <juergen@firma.example.de>\r\n"
        "To: support@example.com\r\n"
        "Subject: Rückfrage zur Rechnung\r\n"
        "Date: Fri, 28 Mar 2025 14:00:00 +0100\r\n"
        "Message-ID: <cp1252-1@firma.example.de>\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=windows-1252\r\n"
        "Content-Transfer-Encoding: 8bit\r\n\r\n"
        "Sehr geehrte Damen und Herren,\r\n\r\n"
        "die Rechnung über 1.250 € enthält einen „Fehler“ – bitte prüfen.\r\n"
    ).encode("cp1252")


def mislabelled_latin1_message() -> bytes:
    head = (
        "From: Kölner Kunde <kunde@koeln.example.de>\r\n"
        "To: support@example.com\r\n"
        "Subject: Rechnung März\r\n"
        "Date: Sat, 29 Mar 2025 09:30:00 +0100\r\n"
        "Message-ID: <latin1-as-utf8@koeln.example.de>\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\n\r\n"
    )
    return head.encode("latin-1") + "Grüße aus Köln, die Rechnung für März ist falsch.\r\n".encode(
        "latin-1")


def mislabelled_ascii_message() -> bytes:
    return (
        "From: Malmö Kund <kund@malmo.example.se>\r\n"
        "To: support@example.com\r\n"
        "Subject: Fråga om leverans\r\n"
        "Date: Sun, 30 Mar 2025 10:00:00 +0200\r\n"
        "Message-ID: <ascii-8bit@malmo.example.se>\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=us-ascii\r\n\r\n"
        "Hälsningar från Malmö – tack för hjälpen!\r\n"
    ).encode()


def gb2312_subject_message() -> bytes:
    """A raw GB2312 subject with no encoded word; only the body declares the charset."""
    return (
        "From: 王先生 <wang@shop.example.cn>\r\n"
        "To: support@example.com\r\n"
        "Subject: 关于订单的问题\r\n"
        "Date: Mon, 31 Mar 2025 10:00:00 +0800\r\n"
        "Message-ID: <gb2312-8bit@shop.example.cn>\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=gb2312\r\n"
        "Content-Transfer-Encoding: 8bit\r\n\r\n"
        "您好，我的订单还没有到。\r\n"
    ).encode("gb2312")


def shift_jis_subject_message() -> bytes:
    """A raw Shift_JIS subject and display name; the body says charset=Shift_JIS."""
    return (
        "From: 山田太郎 <yamada@kaisha.example.jp>\r\n"
        "To: support@example.com\r\n"
        "Subject: 注文についての質問\r\n"
        "Date: Mon, 31 Mar 2025 11:00:00 +0900\r\n"
        "Message-ID: <sjis-8bit@kaisha.example.jp>\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=Shift_JIS\r\n"
        "Content-Transfer-Encoding: 8bit\r\n\r\n"
        "注文した商品がまだ届きません。\r\n"
    ).encode("shift_jis")


FILES = {
    "gb2312-8bit-subject.eml": gb2312_subject_message,
    "shift-jis-8bit-subject.eml": shift_jis_subject_message,
    "tnef.eml": tnef_message,
    "tnef-broken.eml": broken_tnef_message,
    "iso-2022-jp.eml": iso_2022_jp_message,
    "windows-1252.eml": windows_1252_message,
    "mislabelled-latin1-as-utf8.eml": mislabelled_latin1_message,
    "mislabelled-ascii-8bit.eml": mislabelled_ascii_message,
}


def main() -> None:
    for name, build in FILES.items():
        (HERE / name).write_bytes(build())


if __name__ == "__main__":
    main()
