"""A deterministic generator of realistic mail for benchmarks and tests.

The mix mirrors what a support mailbox receives (the EmailEngine benchmark used ~13 KiB on
average): about 40 % plain text, 45 % ``multipart/alternative`` (text + HTML), 10 %
HTML-only and 5 % automatic mail (out-of-office replies, list mail, DSN bounces). About one
message in five carries a base64 attachment (PDF-, PNG- or DOCX-shaped). Bodies are written
in several languages and charsets (UTF-8 as 8bit, quoted-printable or base64, ISO-8859-1,
windows-1252, ISO-2022-JP, KOI8-R), subjects and display names often use RFC 2047 encoded
words, and every message has a realistic header block (Received, DKIM, ARC...).

The same ``seed`` always yields the same bytes, so numbers from different runs compare.

Example::

    from benchmarks.messages import generate_messages
    corpus = list(generate_messages(1000))
"""

from __future__ import annotations

__all__ = ["generate_messages", "average_size"]

import base64
import quopri
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.header import Header
from email.utils import format_datetime

_WORDS = {
    "en": (
        "the invoice order delivery account please could you help me with my problem "
        "thanks regards customer support ticket issue broken since yesterday update "
        "password reset login error screen report attached urgent request refund "
        "shipping address change contract renewal license question answer"
    ).split(),
    "de": (
        "die Rechnung Bestellung Lieferung Konto bitte können Sie mir helfen mit meinem "
        "Problem danke Grüße Kunde Anfrage Störung seit gestern Änderung Passwort "
        "zurücksetzen Fehlermeldung Bildschirm dringend Rückerstattung Adresse Vertrag"
    ).split(),
    "sv": (
        "fakturan beställning leverans kontot snälla kan ni hjälpa mig med mitt problem "
        "tack hälsningar kund ärende fel sedan igår ändring lösenord återställa skärm "
        "brådskande återbetalning adress avtal förnyelse licens fråga svar"
    ).split(),
    "fr": (
        "la facture commande livraison compte pouvez-vous m'aider avec mon problème "
        "merci cordialement client demande erreur depuis hier mise à jour mot de passe "
        "réinitialiser écran urgent remboursement adresse contrat renouvellement"
    ).split(),
    "ja": (
        "請求書 注文 配送 アカウント 問題 助けて ください ありがとう よろしく お願いします "
        "顧客 サポート エラー 昨日 から パスワード リセット 画面 至急 返金 住所 契約"
    ).split(),
    "ru": (
        "счёт заказ доставка аккаунт пожалуйста помогите проблема спасибо клиент "
        "поддержка ошибка вчера пароль сброс экран срочно возврат адрес договор"
    ).split(),
}

# language -> (charset, transfer encoding) choices, weighted by position.
_CHARSETS = {
    "en": [("utf-8", "7bit"), ("us-ascii", "7bit"), ("utf-8", "quoted-printable")],
    "de": [("utf-8", "quoted-printable"), ("iso-8859-1", "quoted-printable"),
           ("windows-1252", "8bit"), ("utf-8", "8bit")],
    "sv": [("utf-8", "quoted-printable"), ("iso-8859-1", "8bit"), ("utf-8", "base64")],
    "fr": [("utf-8", "quoted-printable"), ("windows-1252", "quoted-printable")],
    "ja": [("iso-2022-jp", "7bit"), ("utf-8", "base64")],
    "ru": [("koi8-r", "8bit"), ("utf-8", "base64")],
}
_LANG_WEIGHTS = [("en", 50), ("de", 15), ("sv", 12), ("fr", 10), ("ja", 7), ("ru", 6)]
_FIRST = ["Anna", "Björn", "Chloé", "David", "Elin", "François", "Günter", "Hana", "Ivan",
          "Jürgen", "Kenji", "Laura", "Mårten", "Nadia", "Olof", "Petra", "Yuki", "Zoë"]
_LAST = ["Andersson", "Bäcker", "Dubois", "Eriksson", "Fischer", "Garcia", "Hoffmann",
         "Ito", "Johansson", "Karlsson", "Lefèvre", "Müller", "Nilsson", "Petrov", "Smith"]
_DOMAINS = ["example.com", "example.org", "kund.example.se", "firma.example.de",
            "client.example.fr", "mail.example.jp", "corp.example.net"]
_ATTACHMENTS = [
    ("application/pdf", "invoice-{n}.pdf", b"%PDF-1.7\n", 18_000, 42_000),
    ("image/png", "screenshot-{n}.png", b"\x89PNG\r\n\x1a\n", 20_000, 48_000),
    ("application/vnd.openxmlformats-officedocument.wordprocessingml.document",
     "Offert {n}.docx", b"PK\x03\x04", 16_000, 36_000),
    ("text/csv", "export-{n}.csv", b"id;name;amount\n", 6_000, 14_000),
]


def generate_messages(n: int, seed: int = 1) -> Iterator[bytes]:
    """Yield ``n`` realistic RFC 5322 messages as bytes, deterministically.

    Args:
        n: how many messages to produce.
        seed: the random seed; the same seed gives byte-identical output.

    Returns:
        An iterator of raw messages (CRLF line endings, as IMAP servers deliver them).
    """
    rng = random.Random(seed)
    start = datetime(2025, 3, 3, 8, 0, tzinfo=UTC)
    for i in range(n):
        yield _Builder(rng, i, start + timedelta(seconds=37 * i)).build()


def average_size(n: int = 1000, seed: int = 1) -> float:
    """The mean size in bytes of ``generate_messages(n, seed)``."""
    return sum(len(m) for m in generate_messages(n, seed)) / n


class _Builder:
    """Builds one message; every random choice comes from the shared ``rng``."""

    def __init__(self, rng: random.Random, index: int, when: datetime) -> None:
        self.rng = rng
        self.index = index
        self.when = when
        self.lang = _weighted(rng, _LANG_WEIGHTS)
        self.charset, self.cte = rng.choice(_CHARSETS[self.lang])
        self.boundary_n = 0

    def build(self) -> bytes:
        roll = self.rng.random()
        headers = self._headers(automatic=roll >= 0.95)
        if roll >= 0.95:
            body_headers, body = self._automatic_body(headers, roll)
        else:
            body_headers, body = self._human_body(roll)
        text = "\r\n".join(headers + body_headers) + "\r\n\r\n"
        return text.encode("ascii", "surrogateescape") + body

    # -- headers -------------------------------------------------------------------------

    def _headers(self, *, automatic: bool) -> list[str]:
        rng = self.rng
        sender_name = f"{rng.choice(_FIRST)} {rng.choice(_LAST)}"
        sender = f"{sender_name.split()[0].lower()}.{self.index}@{rng.choice(_DOMAINS)}"
        sender = sender.encode("ascii", "ignore").decode()
        subject = " ".join(rng.choice(_WORDS[self.lang]) for _ in range(rng.randint(3, 9)))
        if rng.random() < 0.3:
            subject = "Re: " + subject
        mid = f"<{self.index}.{rng.getrandbits(64):x}@{sender.split('@')[1]}>"
        host = f"mx{rng.randint(1, 9)}.{sender.split('@')[1]}"
        lines = [
            "Return-Path: <>" if automatic and rng.random() < 0.3 else f"Return-Path: <{sender}>",
            "Delivered-To: support@example.com",
        ]
        for hop in range(rng.randint(2, 5)):
            lines.append(
                f"Received: from {host} (mail{hop}.{host} [192.0.2.{rng.randint(1, 254)}])\r\n"
                f"\tby mx.example.com (Postfix) with ESMTPS id {rng.getrandbits(40):X}\r\n"
                f"\tfor <support@example.com>; {format_datetime(self.when)}"
            )
        lines.append(
            "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d="
            f"{sender.split('@')[1]}; s=s1;\r\n\th="
            "from:to:subject:date:message-id;\r\n\tbh="
            + base64.b64encode(rng.randbytes(32)).decode()
            + ";\r\n\tb="
            + _folded_b64(rng.randbytes(256)).replace("\r\n", "\r\n\t")
        )
        lines += [
            "From: " + _address(sender_name, sender, self.charset),
            "To: Support <support@example.com>",
            "Subject: " + _encode_header(subject, self.charset),
            "Date: " + format_datetime(self.when),
            "Message-ID: " + mid,
            "MIME-Version: 1.0",
        ]
        if rng.random() < 0.25:
            cc_name = f"{rng.choice(_FIRST)} {rng.choice(_LAST)}"
            lines.append("Cc: " + _address(cc_name, f"cc{self.index}@example.org", self.charset))
        if subject.startswith("Re: "):
            refs = [f"<{rng.getrandbits(48):x}@example.com>" for _ in range(rng.randint(1, 4))]
            lines.append("In-Reply-To: " + refs[-1])
            lines.append("References: " + "\r\n ".join(refs))
        return lines

    # -- bodies --------------------------------------------------------------------------

    def _human_body(self, roll: float) -> tuple[list[str], bytes]:
        text = self._paragraphs()
        if roll < 0.40:
            part_headers, part = self._text_part("plain", text)
        elif roll < 0.85:
            part_headers, part = self._alternative(text)
        else:
            part_headers, part = self._text_part("html", _to_html(text, self.rng))
        if self.rng.random() < 0.2:
            return self._with_attachment(part_headers, part)
        return part_headers, part

    def _automatic_body(self, headers: list[str], roll: float) -> tuple[list[str], bytes]:
        if roll < 0.97:
            headers += ["Auto-Submitted: auto-replied", "X-Auto-Response-Suppress: All"]
            return self._text_part("plain", "I am out of the office until Monday.\n" * 3)
        if roll < 0.99:
            headers += ["List-Id: <news.lists.example.com>",
                        "List-Unsubscribe: <mailto:leave@lists.example.com>",
                        "Precedence: list"]
            return self._alternative(self._paragraphs())
        return self._bounce(headers)

    def _bounce(self, headers: list[str]) -> tuple[list[str], bytes]:
        headers[:] = [h for h in headers if not h.startswith(("From:", "Subject:"))]
        headers += ["From: Mail Delivery System <MAILER-DAEMON@mx.example.net>",
                    "Subject: Undelivered Mail Returned to Sender", "Auto-Submitted: auto-replied"]
        boundary = self._boundary()
        dsn = ("Reporting-MTA: dns; mx.example.net\r\n\r\n"
               f"Final-Recipient: rfc822; gone{self.index}@example.net\r\n"
               "Action: failed\r\nStatus: 5.1.1\r\n"
               "Diagnostic-Code: smtp; 550 5.1.1 User unknown\r\n")
        body = (
            f"--{boundary}\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
            "This is the mail system at host mx.example.net.\r\n\r\n"
            "I'm sorry to have to inform you that your message could not\r\n"
            "be delivered to one or more recipients.\r\n\r\n"
            f"--{boundary}\r\nContent-Type: message/delivery-status\r\n\r\n{dsn}\r\n"
            f"--{boundary}\r\nContent-Type: text/rfc822-headers\r\n\r\n"
            f"Message-ID: <pr.{self.index}@example.com>\r\nSubject: Your ticket\r\n\r\n"
            f"--{boundary}--\r\n"
        )
        return ([f'Content-Type: multipart/report; report-type=delivery-status;\r\n'
                 f'\tboundary="{boundary}"'], body.encode())

    def _paragraphs(self) -> str:
        words = _WORDS[self.lang]
        rng = self.rng
        paragraphs = []
        for _ in range(rng.randint(2, 12)):
            sentence_count = rng.randint(2, 6)
            sentences = []
            for _ in range(sentence_count):
                sentence = " ".join(rng.choice(words) for _ in range(rng.randint(6, 18)))
                sentences.append(sentence[:1].upper() + sentence[1:] + ".")
            paragraphs.append(_wrap(" ".join(sentences)))
        if rng.random() < 0.3:
            quoted = "\n".join("> " + line for line in _wrap(" ".join(
                rng.choice(words) for _ in range(60))).split("\n"))
            paragraphs.append("On Mon, someone wrote:\n" + quoted)
        return "\n\n".join(paragraphs) + "\n\n-- \n" + rng.choice(_FIRST) + "\n"

    def _text_part(self, subtype: str, text: str) -> tuple[list[str], bytes]:
        charset, cte = self.charset, self.cte
        data = text.replace("\n", "\r\n").encode(_codec(charset), "replace")
        if cte == "quoted-printable":
            data = quopri.encodestring(data).replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        elif cte == "base64":
            data = _folded_b64(data).encode() + b"\r\n"
        return ([f'Content-Type: text/{subtype}; charset="{charset}"',
                 f"Content-Transfer-Encoding: {cte}"], data)

    def _alternative(self, text: str) -> tuple[list[str], bytes]:
        boundary = self._boundary()
        parts = [self._text_part("plain", text), self._text_part("html", _to_html(text, self.rng))]
        return ([f'Content-Type: multipart/alternative; boundary="{boundary}"'],
                _join_parts(boundary, parts))

    def _with_attachment(self, headers: list[str], body: bytes) -> tuple[list[str], bytes]:
        rng = self.rng
        ctype, name, magic, low, high = rng.choice(_ATTACHMENTS)
        filename = name.format(n=rng.randint(1000, 9999))
        payload = magic + rng.randbytes(rng.randint(low, high))
        disposition = f'attachment; filename="{filename}"'
        if rng.random() < 0.2:
            disposition = "attachment; filename*=utf-8''" + _rfc2231("Übersicht " + filename)
        attachment = ([f'Content-Type: {ctype}; name="{filename}"',
                       f"Content-Disposition: {disposition}",
                       "Content-Transfer-Encoding: base64"],
                      _folded_b64(payload).encode() + b"\r\n")
        boundary = self._boundary()
        return ([f'Content-Type: multipart/mixed; boundary="{boundary}"'],
                _join_parts(boundary, [(headers, body), attachment]))

    def _boundary(self) -> str:
        self.boundary_n += 1
        return f"----=_Part_{self.index}_{self.boundary_n}.{self.rng.getrandbits(32):08x}"


def _weighted(rng: random.Random, choices: list[tuple[str, int]]) -> str:
    return rng.choices([c for c, _ in choices], weights=[w for _, w in choices])[0]


def _codec(charset: str) -> str:
    return "ascii" if charset == "us-ascii" else charset


def _encode_header(value: str, charset: str) -> str:
    if value.isascii():
        return value
    if charset in ("us-ascii", "iso-2022-jp", "koi8-r"):
        charset = "utf-8" if charset == "us-ascii" else charset
    try:
        return Header(value, charset, maxlinelen=76).encode(linesep="\r\n")
    except (UnicodeError, LookupError):
        return Header(value, "utf-8", maxlinelen=76).encode(linesep="\r\n")


def _address(name: str, email: str, charset: str) -> str:
    if name.isascii():
        return f'"{name}" <{email}>'
    return f"{_encode_header(name, charset)} <{email}>"


def _rfc2231(value: str) -> str:
    return "".join(chr(b) if b < 128 and (chr(b).isalnum() or chr(b) in ".-_") else f"%{b:02X}"
                   for b in value.encode())


def _wrap(text: str, width: int = 72) -> str:
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    lines.append(line)
    return "\n".join(lines)


def _to_html(text: str, rng: random.Random) -> str:
    blocks = []
    for para in text.split("\n\n"):
        escaped = para.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        blocks.append('<p style="margin:0 0 12px 0;font-family:Calibri,Arial,sans-serif">'
                      + escaped.replace("\n", "<br>\n") + "</p>")
    if rng.random() < 0.3:
        blocks.append('<table style="border-collapse:collapse" width="100%"><tr>'
                      '<td style="padding:4px">Order</td><td>4711</td></tr></table>')
    return ("<!DOCTYPE html><html><head><meta charset=\"utf-8\"><style>p{margin:0}</style>"
            "</head><body><div dir=\"ltr\">" + "\n".join(blocks) + "</div></body></html>\n")


def _folded_b64(data: bytes) -> str:
    encoded = base64.b64encode(data).decode()
    return "\r\n".join(encoded[i:i + 76] for i in range(0, len(encoded), 76))


def _join_parts(boundary: str, parts: list[tuple[list[str], bytes]]) -> bytes:
    out = [b"This is a multi-part message in MIME format.\r\n"]
    for headers, body in parts:
        out.append(f"--{boundary}\r\n".encode() + "\r\n".join(headers).encode() + b"\r\n\r\n")
        out.append(body if body.endswith(b"\r\n") else body + b"\r\n")
    out.append(f"--{boundary}--\r\n".encode())
    return b"".join(out)
