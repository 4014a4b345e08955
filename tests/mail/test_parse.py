"""parse_message and its helpers (mime, charset, html) on small hand-made inputs."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime

import pytest

from benchmarks.messages import average_size, generate_messages
from daemon.mail.charset import decode_8bit, decode_text, normalise_charset
from daemon.mail.headers import decode_encoded_words
from daemon.mail.html import html_to_text, referenced_content_ids, sanitize_html
from daemon.mail.mime import decode_transfer, parse_params, parse_part, split_headers
from daemon.mail.parse import parse_message


def msg(headers: str, body: str = "hello\n", *, crlf: bool = False) -> bytes:
    raw = headers.strip("\n") + "\n\n" + body
    if crlf:
        raw = raw.replace("\n", "\r\n")
    return raw.encode("utf-8")


# -- headers ---------------------------------------------------------------------------------


def test_first_of_repeated_headers_wins_and_is_reported() -> None:
    parsed = parse_message(msg("From: a@x.com\nFrom: b@x.com\nTo: c@x.com\nTo: d@x.com"))
    assert parsed.from_ is not None and parsed.from_.email == "a@x.com"
    assert [a.email for a in parsed.to] == ["c@x.com"]
    assert {"duplicate-header:from", "duplicate-header:to"} <= set(parsed.defects)
    assert parsed.headers["to"] == ("c@x.com", "d@x.com")


def test_received_headers_repeat_without_defect() -> None:
    parsed = parse_message(msg("Received: one\nReceived: two\nFrom: a@x.com\nMessage-ID: <i@x>"))
    assert parsed.headers["received"] == ("one", "two")
    assert parsed.defects == ()


def test_folded_header_is_unfolded() -> None:
    parsed = parse_message(msg("Subject: a long\n  subject\tline\nFrom: a@x.com", crlf=True))
    assert parsed.subject == "a long subject line"


def test_encoded_words_joined_across_a_split_character() -> None:
    # "Grüße" in UTF-8 split between two encoded words in the middle of "ü".
    whole = "Grüße".encode()
    first = base64.b64encode(whole[:3]).decode()
    second = base64.b64encode(whole[3:]).decode()
    header = f"Subject: =?utf-8?b?{first}?=\n =?UTF-8?B?{second}?= from =?iso-8859-1?q?K=F6ln?="
    assert parse_message(msg(header)).subject == "Grüße from Köln"


def test_encoded_word_edge_cases() -> None:
    assert decode_encoded_words("=?utf-8?q?a_b?= =?utf-8?q?c?=") == "a bc"
    assert decode_encoded_words("=?utf-8*en?q?hi?=") == "hi"
    assert decode_encoded_words("x =?bogus-charset?q?caf=E9?= y") == "x café y"
    assert decode_encoded_words("=?utf-8?b?!!!?=") == "=?utf-8?b?!!!?="
    assert decode_encoded_words("no words") == "no words"


@pytest.mark.parametrize(("raw", "expected"), [
    ("Jürgen".encode(), "Jürgen"),
    ("Jürgen".encode("latin-1"), "Jürgen"),
    ("“quoted”".encode("cp1252"), "“quoted”"),
    (b"\x81\x8d", "\x81\x8d"),  # bytes undefined in cp1252 fall back to Latin-1
    ("日本".encode("iso2022_jp"), "日本"),
])
def test_8bit_header_decoding(raw: bytes, expected: str) -> None:
    assert decode_8bit(raw) == expected


def test_8bit_address_name_is_decoded_and_reported() -> None:
    raw = b"From: J\xfcrgen <J@Example.COM>\nMessage-ID: <i@x>\n\nbody"
    parsed = parse_message(raw)
    assert parsed.from_ is not None
    assert (parsed.from_.name, parsed.from_.email) == ("Jürgen", "j@example.com")
    assert "8bit-header" in parsed.defects


@pytest.mark.parametrize(("value", "expected"), [
    ("<abc@x>", "abc@x"),
    ("  < abc@x >  ", "abc@x"),
    ("abc@x", "abc@x"),
    ("<abc@x> <second@x>", "abc@x"),
    ("<a\n bc@x>", "abc@x"),
])
def test_message_id_normalised(value: str, expected: str) -> None:
    parsed = parse_message(msg(f"From: a@x.com\nMessage-ID: {value}"))
    assert parsed.message_id == expected


def test_empty_message_id_is_a_defect() -> None:
    parsed = parse_message(msg("From: a@x.com\nMessage-ID: <>"))
    assert parsed.message_id is None
    assert "bad-message-id" in parsed.defects


def test_references_oldest_first_without_brackets_or_duplicates() -> None:
    headers = ("From: a@x.com\nIn-Reply-To: <p3@x> (Joe's message of Monday)\n"
               "References: <p1@x>\n <p2@x>\t<p3@x> <p1@x>")
    parsed = parse_message(msg(headers))
    assert parsed.references == ("p1@x", "p2@x", "p3@x")
    assert parsed.in_reply_to == ("p3@x",)
    bare = parse_message(msg("From: a@x.com\nReferences: p1@x, p2@x"))
    assert bare.references == ("p1@x", "p2@x")


@pytest.mark.parametrize(("value", "expected"), [
    ("Tue, 04 Mar 2025 10:15:01 +0100", datetime.fromisoformat("2025-03-04T10:15:01+01:00")),
    ("Tue, 04 Mar 2025 10:15:01", datetime(2025, 3, 4, 10, 15, 1, tzinfo=UTC)),
    ("Tue, 04 Mar 2025 10:15:01 -0000", datetime(2025, 3, 4, 10, 15, 1, tzinfo=UTC)),
    ("4 Mar 2025 10:15:01 GMT", datetime(2025, 3, 4, 10, 15, 1, tzinfo=UTC)),
])
def test_date_is_aware(value: str, expected: datetime) -> None:
    parsed = parse_message(msg(f"From: a@x.com\nDate: {value}"))
    assert parsed.date == expected
    assert parsed.date is not None and parsed.date.tzinfo is not None


def test_garbage_date_is_none_with_defect() -> None:
    parsed = parse_message(msg("From: a@x.com\nDate: yesterday-ish"))
    assert parsed.date is None
    assert "bad-date" in parsed.defects


def test_address_lists() -> None:
    headers = ('From: "Doe, John" <John.Doe@Example.com>\n'
               'To: =?utf-8?q?Bj=C3=B6rn_=22B=22?= <b@x.se>, plain@x.se (comment), garbage,\n'
               '  undisclosed-recipients:;, "a@x.se" <A@X.SE>\n'
               "Cc: <>")
    parsed = parse_message(msg(headers))
    assert parsed.from_ is not None and parsed.from_.name == "Doe, John"
    assert parsed.from_.email == "john.doe@example.com"
    assert [(a.email, a.name) for a in parsed.to] == [
        ("b@x.se", 'Björn "B"'), ("plain@x.se", "comment"), ("a@x.se", "")]
    assert parsed.cc == ()
    assert "bad-address:to" in parsed.defects


def test_missing_from_is_none() -> None:
    parsed = parse_message(msg("Subject: x"))
    assert parsed.from_ is None
    assert "missing-header:from" in parsed.defects


# -- structure -------------------------------------------------------------------------------


def test_size_and_sha256() -> None:
    raw = msg("From: a@x.com")
    parsed = parse_message(raw)
    assert parsed.size == len(raw)
    assert parsed.sha256 == hashlib.sha256(raw).hexdigest()


def test_message_without_headers() -> None:
    parsed = parse_message(b"\r\njust a body\r\n")
    assert parsed.text == "just a body\n"
    assert parsed.from_ is None


def test_headers_without_separator() -> None:
    parsed = parse_message(b"From: a@x.com\nSubject: s\nthis line is body")
    assert parsed.subject == "s"
    assert parsed.text == "this line is body"
    assert "missing-header-separator" in parsed.defects


def test_mbox_from_line_is_skipped() -> None:
    parsed = parse_message(b"From a@x.com Mon Jan  1 00:00:00 2025\nSubject: s\n\nbody")
    assert parsed.subject == "s"
    assert "mbox-from-line" in parsed.defects


MULTIPART = """From: a@x.com
Content-Type: multipart/mixed; boundary="BB"

preamble
--BB
Content-Type: text/plain; charset=utf-8

first
--BB
--BB
Content-Type: text/plain; charset=utf-8

second
--BB--
epilogue
"""


def test_multipart_with_empty_part_preamble_and_epilogue() -> None:
    root = parse_part(MULTIPART.encode())
    assert [c.body for c in root.children] == [b"first", b"", b"second"]
    parsed = parse_message(MULTIPART.encode())
    assert parsed.text == "first\n\nsecond"
    assert parsed.defects == ("missing-header:message-id",)


def test_multipart_crlf_and_transport_padding() -> None:
    raw = MULTIPART.replace("--BB\n", "--BB  \n").replace("\n", "\r\n").encode()
    assert [c.body for c in parse_part(raw).children] == [b"first", b"", b"second"]


def test_multipart_not_closed() -> None:
    raw = MULTIPART.split("--BB--")[0].encode()
    parsed = parse_message(raw)
    assert "first" in parsed.text and "second" in parsed.text
    assert "multipart-not-closed" in parsed.defects


def test_multipart_without_boundary_is_read_as_text() -> None:
    raw = b"From: a@x.com\nContent-Type: multipart/mixed\n\nsome text"
    parsed = parse_message(raw)
    assert parsed.text == "some text"
    assert "multipart-without-boundary" in parsed.defects


def test_boundary_not_found_is_read_as_text() -> None:
    raw = b"From: a@x.com\nContent-Type: multipart/mixed; boundary=zz\n\nsome text"
    parsed = parse_message(raw)
    assert parsed.text == "some text"
    assert "boundary-not-found" in parsed.defects


def test_boundary_prefix_of_inner_boundary() -> None:
    raw = (b"Content-Type: multipart/mixed; boundary=b\n\n--b\n"
           b"Content-Type: multipart/alternative; boundary=b-1\n\n--b-1\n\ninner\n--b-1--\n"
           b"--b\n\nouter\n--b--\n")
    root = parse_part(raw)
    assert [c.content_type for c in root.children] == ["multipart/alternative", "text/plain"]
    assert parse_message(raw).text == "inner\nouter"


def test_deep_nesting_is_cut_off() -> None:
    depth = 60
    head = "".join(f"Content-Type: multipart/mixed; boundary=b{i}\n\n--b{i}\n"
                   for i in range(depth))
    tail = "".join(f"\n--b{i}--" for i in reversed(range(depth)))
    parsed = parse_message(("From: a@x.com\n" + head + "\ndeep" + tail).encode())
    assert "nesting-too-deep" in parsed.defects


def test_invalid_content_type_defaults_to_text() -> None:
    parsed = parse_message(b"From: a@x.com\nContent-Type: garbage\n\nbody")
    assert parsed.text == "body"
    assert "invalid-content-type" in parsed.defects


def test_digest_parts_default_to_message_rfc822() -> None:
    raw = (b"Content-Type: multipart/digest; boundary=d\n\n--d\n\nSubject: one\n\nbody\n--d--\n")
    parsed = parse_message(raw)
    assert [(a.filename, a.content_type, a.origin) for a in parsed.attachments] == [
        ("one.eml", "message/rfc822", "rfc822")]


# -- transfer encodings and charsets ---------------------------------------------------------


def test_transfer_encodings() -> None:
    assert decode_transfer(b"aGVsbG8=", "base64") == (b"hello", None)
    assert decode_transfer(b"caf=C3=A9=\n!", "quoted-printable") == ("café!".encode(), None)
    assert decode_transfer(b"aGVsbG8", "base64") == (b"hello", "base64-repaired")
    assert decode_transfer(b"aGVs*bG8=garbage", "base64")[0] == b"hello"
    assert decode_transfer(b"raw", "x-weird") == (b"raw", "unknown-transfer-encoding")
    assert decode_transfer(b"begin 644 f\n%:&5L;&\\\n`\nend\n", "x-uuencode") == (b"hello", None)


@pytest.mark.parametrize(("label", "codec"), [
    ("UTF-8", "utf-8"), ('"utf8"', "utf-8"), ("us-ascii", "cp1252"), ("ISO-8859-1", "cp1252"),
    ("shift_jis", "cp932"), ("gb2312", "gb18030"), ("x-unknown", None), ("base64", None),
    ("rot13", None), ("no-such-charset", None), ("", None), (None, None),
])
def test_normalise_charset(label: str | None, codec: str | None) -> None:
    assert normalise_charset(label) == codec


@pytest.mark.parametrize(("data", "declared", "text", "defect"), [
    ("plain".encode("utf-16"), "utf-16", "plain", None),
    (b"+AOQ-", "utf-7", "ä", None),
    ("Grüße".encode(), "utf-8", "Grüße", None),
    ("Grüße".encode(), None, "Grüße", None),
    ("Grüße".encode(), "iso-8859-1", "Grüße", "charset:iso-8859-1->utf-8"),
    ("Grüße".encode("latin-1"), "utf-8", "Grüße", "charset:utf-8->cp1252"),
    ("“x” €".encode("cp1252"), "iso-8859-1", "“x” €", None),
    ("Grüße".encode("latin-1"), "x-unknown", "Grüße", "charset:x-unknown->cp1252"),
    ("日本語".encode("iso2022_jp"), "iso-2022-jp", "日本語", None),
    ("Привет, как дела? Всё хорошо, спасибо.".encode("cp1251"), "utf-8",
     "Привет, как дела? Всё хорошо, спасибо.", "charset:utf-8->cp1251"),
])
def test_decode_text(data: bytes, declared: str | None, text: str, defect: str | None) -> None:
    assert decode_text(data, declared) == (text, defect)


def test_decode_text_last_resort_never_raises() -> None:
    text, defect = decode_text(bytes(range(256)) * 4, "utf-8")
    assert isinstance(text, str) and defect is not None


def test_html_charset_from_meta() -> None:
    raw = ("From: a@x.com\nContent-Type: text/html\n\n"
           '<meta http-equiv="Content-Type" content="text/html; charset=koi8-r"><p>Привет</p>')
    parsed = parse_message(raw.encode("koi8-r"))
    assert parsed.text == "Привет\n"


def test_format_flowed_is_unwrapped() -> None:
    body = "This is a long \nline that was \nwrapped.\n> quoted \n> reply\n-- \nsig\n"
    raw = msg("From: a@x.com\nContent-Type: text/plain; format=flowed", body)
    assert parse_message(raw).text == (
        "This is a long line that was wrapped.\n> quoted reply\n-- \nsig\n")


def test_format_flowed_delsp() -> None:
    raw = msg("From: a@x.com\nContent-Type: text/plain; format=flowed; delsp=yes",
              "Japa \nnese\n")
    assert parse_message(raw).text == "Japanese\n"


# -- parameters ------------------------------------------------------------------------------


def test_parse_params() -> None:
    params = parse_params(
        ' charset="utf-8"; name*0*=utf-8\'\'%C3%A4bc; name*1=" d.pdf"; junk; '
        'q="a\\"b;c"; bare = spaced value ; CASE=Upper; charset=ignored')
    assert params == {"charset": "utf-8", "name": "äbc d.pdf", "q": 'a"b;c',
                      "bare": "spaced value", "case": "Upper"}


def test_parse_params_rfc2231_without_sections_and_bad_charset() -> None:
    assert parse_params("filename*=iso-8859-1'de'f%FCr.txt") == {"filename": "für.txt"}
    assert parse_params("filename*=nope''%41.txt")["filename"] == "A.txt"


def test_split_headers_reports_body_offset() -> None:
    headers, offset, defects = split_headers(b"A: 1\r\nB: 2\r\n  3\r\n\r\nbody")
    assert headers == [("a", "1"), ("b", "2  3")]
    assert offset == len(b"A: 1\r\nB: 2\r\n  3\r\n\r\n")
    assert defects == []


# -- attachments -----------------------------------------------------------------------------


def attachment_message(*parts: str) -> bytes:
    body = "".join(f"--b\n{p}\n" for p in parts) + "--b--\n"
    return msg('From: a@x.com\nContent-Type: multipart/mixed; boundary="b"', body)


def test_filename_fallback_chain() -> None:
    raw = attachment_message(
        "Content-Type: text/plain\n\nthe body",
        "Content-Type: application/pdf; name=typename.pdf\n\nx",
        "Content-Type: image/png\nContent-Location: http://x/a/logo.png?v=1\n\nx",
        "Content-Type: image/jpeg\nContent-ID: <part1.abc@x>\n\nx",
        "Content-Type: image/jpeg\nContent-ID: <ii_k3j2>\n\nx",
        "Content-Type: application/zip\n\nx",
        "Content-Type: application/x-never-heard-of\n\nx",
        "Content-Type: image/jpeg\nContent-Disposition: attachment; filename=TYPENAME.PDF\n\nx",
    )
    parsed = parse_message(raw)
    assert [a.filename for a in parsed.attachments] == [
        "typename.pdf", "logo.png", "part1.abc", "ii_k3j2.jpg", "attachment-1.zip",
        "attachment-2.bin", "TYPENAME (2).PDF"]
    assert parsed.text == "the body"


def test_filename_is_made_safe() -> None:
    raw = attachment_message(
        'Content-Type: application/octet-stream\nContent-Disposition: attachment; '
        'filename="C:\\\\Users\\\\x\\\\report\x07.txt"\n\nx',
        "Content-Type: application/octet-stream\nContent-Disposition: attachment; "
        'filename="..."\n\nx',
        "Content-Type: application/octet-stream\nContent-Disposition: attachment; "
        f'filename="{"a" * 300}.txt"\n\nx',
        "Content-Type: application/octet-stream\nContent-Disposition: attachment; "
        'filename="invoice\u202egpj.exe"\n\nx',
    )
    names = [a.filename for a in parse_message(raw).attachments]
    assert names[0] == "report.txt"
    assert names[1] == "attachment-1.bin"
    assert len(names[2]) == 194 and names[2].endswith(".txt")
    assert names[3] == "invoicegpj.exe"


def test_text_attachment_is_not_body() -> None:
    raw = attachment_message(
        "Content-Type: text/plain\n\nbody text",
        "Content-Type: text/plain\nContent-Disposition: attachment\n\nattached text",
        "Content-Type: text/html; name=page.html\n\n<p>attached html</p>",
        "Content-Type: text/plain\nContent-Disposition: inline\n\nfooter",
    )
    parsed = parse_message(raw)
    assert parsed.text == "body text\nfooter"
    assert parsed.html is None
    assert [a.filename for a in parsed.attachments] == ["attachment-1.txt", "page.html"]


def test_html_only_message_gets_text() -> None:
    raw = msg("From: a@x.com\nContent-Type: text/html; charset=utf-8",
              "<p>Hello <b>there</b></p><p>Line<br>two &amp; more</p>")
    parsed = parse_message(raw)
    assert parsed.text == "Hello there\n\nLine\ntwo & more\n"
    assert parsed.html == "<p>Hello <b>there</b></p><p>Line<br>two &amp; more</p>"


def test_unreadable_tnef_is_kept() -> None:
    raw = attachment_message("Content-Type: application/vnd.ms-tnef\n\nnot tnef")
    parsed = parse_message(raw)
    assert [a.filename for a in parsed.attachments] == ["winmail.dat"]
    assert "tnef-unreadable" in parsed.defects


def test_data_uri_images_become_inline_images() -> None:
    png = base64.b64encode(b"\x89PNG fake").decode()
    html = f'<p>x</p><img src="data:image/png;base64,{png}"><img src="data:image/png;base64,{png}">'
    parsed = parse_message(msg("From: a@x.com\nContent-Type: text/html", html))
    assert len(parsed.inline_images) == 1
    image = parsed.inline_images[0]
    assert (image.data, image.origin, image.inline) == (b"\x89PNG fake", "data-uri", True)
    assert parsed.html is not None and parsed.html.count(f"cid:{image.content_id}") == 2


# -- html ------------------------------------------------------------------------------------


def test_sanitize_removes_active_content() -> None:
    dirty = ('<p onclick="x()" style="color:red;position:absolute;background:url(http://t/x)">'
             'a</p><script>evil()</script><style>p{}</style><a href="javascript:x()">j</a>'
             '<a href="data:text/html,x">d</a><img src="data:image/svg+xml;base64,PHN2Zz4=">'
             '<img src="cid:a@b"><img src="data:image/gif;base64,R0lG"><form><input></form>'
             '<iframe src="https://x"></iframe><a href="https://ok.example/">ok</a>')
    clean = sanitize_html(dirty)
    for banned in ("onclick", "script", "evil", "<style", "javascript", "data:text", "svg",
                   "position", "url(", "<form", "<input", "iframe"):
        assert banned not in clean
    for kept in ('style="color:red"', 'src="cid:a@b"', 'src="data:image/gif;base64,R0lG"',
                 'href="https://ok.example/"', 'rel="noopener noreferrer"'):
        assert kept in clean


def test_referenced_content_ids() -> None:
    html = '<img src="cid:a%40b"><img src=\'CID:<c@d>\'><div style="background:url(cid:e)">'
    assert referenced_content_ids(html) == {"a@b", "c@d", "e"}


def test_html_to_text() -> None:
    html = ("<html><head><title>t</title><style>x</style></head><body><!-- c -->"
            "<h1>Head</h1><div>one\n two</div><ul><li>a</li><li>b</li></ul>"
            "<table><tr><td>c1</td><td>c2</td></tr></table>"
            '<a href="https://x.example/">https://x.example/</a> '
            '<a href="mailto:m@x">write</a> <a href="cid:z">img</a>&nbsp;&lt;tag&gt;</body></html>')
    assert html_to_text(html) == (
        "Head\n\none two\n\n- a\n- b\n\nc1 c2\n\n"
        "https://x.example/ write <m@x> img <tag>\n")
    assert html_to_text("<p> </p>") == ""


# -- the benchmark generator -------------------------------------------------------------------


def test_generator_is_deterministic_and_realistic() -> None:
    first = list(generate_messages(200, seed=7))
    assert first == list(generate_messages(200, seed=7))
    assert first != list(generate_messages(200, seed=8))
    assert 10_000 <= average_size(300) <= 16_000
    parsed = [parse_message(m) for m in first]
    with_files = sum(1 for p in parsed if any(a.origin == "mime" for a in p.attachments))
    assert 20 <= with_files <= 70
    assert not [p.defects for p in parsed if p.defects]
    assert all(p.from_ is not None and p.message_id and p.text.strip() for p in parsed)
