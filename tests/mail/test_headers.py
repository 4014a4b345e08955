"""Header quirks real mail clients decode: lenient RFC 2047, 8-bit hints, broken folds."""

from __future__ import annotations

import time

import pytest

from daemon.mail.charset import decode_8bit
from daemon.mail.headers import decode_encoded_words, first_subject
from daemon.mail.parse import parse_message


@pytest.mark.parametrize(("encoded", "decoded"), [
    # spaces inside the encoded text (Q literal, B ignored; a B word folded mid-base64)
    ("=?utf-8?Q?Hello World?=", "Hello World"),
    ("=?UTF-8?B?SGVsbG8g V29ybGQ=?=", "Hello World"),
    # adjacency, with and without whitespace, across charsets
    ("=?utf-8?Q?a?==?utf-8?Q?b?=", "ab"),
    ("=?utf-8?q?a_b?=  \t =?utf-8?q?c?=", "a bc"),
    ("=?utf-8?B?5pel5pys?= =?iso-8859-1?Q?_caf=E9?=", "日本 café"),
    ("=?utf-8?Q?a?= plain =?utf-8?Q?b?=", "a plain b"),
    # charset aliases and legacy labels
    ("=?unicode-1-1-utf-7?Q?Hi +AOQ-?=", "Hi ä"),
    ("=?iso-8859-8-i?Q?=F9=EC=E5=ED?=", "שלום"),
    ("=?x-windows-1252?Q?=80?=", "€"),
    ("=?cp-1252?Q?=93q=94?=", "“q”"),
    ("=?utf-8*en?Q?x?=", "x"),
    # mislabelled charsets
    ("=?iso-8859-1?Q?Gr=C3=BC=C3=9Fe?=", "Grüße"),
    ("=?utf-8?Q?Gr=FC=DFe?=", "Grüße"),
    ("=?x-unknown?Q?caf=E9?=", "café"),
    # one character split across two words
    ("=?utf-8?Q?=E2=82?= =?utf-8?Q?=AC?=", "€"),
    ("=?utf-8?B?w6?= =?utf-8?B?k=?=", "é"),
    ("=?utf-8?B?5pe?= =?utf-8?B?l5pys?=", "日本"),
    # us-ascii Q-encoding
    ("=?us-ascii?Q?Re:_Your_order_=2311?=", "Re: Your order #11"),
    ("=?US-ASCII?q?Hello=20World?=", "Hello World"),
    # broken words stay literal
    ("=?utf-8?b?!!!?=", "=?utf-8?b?!!!?="),
    ("no words", "no words"),
])
def test_encoded_words_decode_as_mail_clients_do(encoded: str, decoded: str) -> None:
    assert decode_encoded_words(encoded) == decoded


def _message(head: bytes, body: bytes = b"Body.\r\n", charset: bytes | None = None) -> bytes:
    ctype = b"Content-Type: text/plain; charset=" + charset + b"\r\n" if charset else b""
    return (b"From: a@example.org\r\nMessage-ID: <h@example.org>\r\n" + ctype + head
            + b"\r\n\r\n" + body)


@pytest.mark.parametrize(("text", "charset"), [
    ("关于订单的问题", "gb2312"), ("关于订单的问题", "gbk"), ("注文についての質問", "shift_jis"),
    ("주문 문의", "euc-kr"), ("Заказ номер 5", "koi8-r"), ("Grüße aus Köln", "iso-8859-1"),
])
def test_undeclared_8bit_subject_uses_the_body_charset(text: str, charset: str) -> None:
    raw = _message(b"Subject: " + text.encode(charset), text.encode(charset) + b"\r\n",
                   charset.encode())
    msg = parse_message(raw)
    assert msg.subject == text
    assert "8bit-header" in msg.defects


def test_undeclared_8bit_subject_without_hint_is_detected() -> None:
    assert decode_8bit("注文についての質問です".encode("shift_jis")) == "注文についての質問です"
    assert decode_8bit("Grüße".encode("cp1252")) == "Grüße"
    assert decode_8bit("Grüße".encode()) == "Grüße"


def test_fold_that_lost_the_subject() -> None:
    raw = (b"From: a@example.org\r\nMessage-ID: <f@example.org>\r\nSubject:\r\n"
           b"=?utf-8?Q?Order_4711_is_late?=\r\n\r\nBody.\r\n")
    msg = parse_message(raw)
    assert msg.subject == "Order 4711 is late"
    assert "subject-fold-repaired" in msg.defects


def test_empty_first_subject_and_folded_subjects() -> None:
    assert first_subject(["", "  ", "Real subject"]) == "Real subject"
    raw = _message(b"Subject:\r\nSubject: The real one")
    assert parse_message(raw).subject == "The real one"
    raw = _message(b"Subject:\r\n =?utf-8?B?SGVsbG8g\r\n V29ybGQ=?=")
    assert parse_message(raw).subject == "Hello World"


def test_hostile_encoded_words_are_linear() -> None:
    start = time.process_time()
    for value in ("=?a?q?" * 100_000, "=?utf-8?B?" + "A" * 1_000_000 + "?=",
                  "=?utf-8?q?x?=" * 50_000, "=?" * 500_000):
        decode_encoded_words(value)
    assert time.process_time() - start < 2.0
