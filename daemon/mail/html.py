"""HTML from mail: sanitised for display, and turned into plain text.

Sanitising uses nh3 (the Rust ammonia library) with one reusable :class:`nh3.Cleaner`,
built once at import: building a cleaner per call costs more than cleaning a typical
message. The allow-list keeps what mail formatting needs (paragraphs, lists, tables,
``font``, images, links, a filtered set of inline CSS properties) and removes scripts,
``<style>`` blocks, event handlers, forms, frames and remote CSS (``url()`` is not
reachable through the allowed properties). Image sources may use ``cid:`` (embedded files,
resolved later against the stored attachments) and ``data:image/...`` (raster formats
only; a second cleaner with an attribute filter runs only when ``data:`` occurs at all,
so the common path has no Python callback).

:func:`without_remote_resources` is for customer HTML we quote in outgoing mail: it also
removes everything a mail client would fetch from elsewhere when the mail is opened —
image sources other than ``cid:`` and ``data:``, and inline CSS that names a resource
(``url()``, ``image-set()``) — so we never relay a tracking pixel. It cleans twice:
:func:`sanitize_html` first, which also normalises CSS (escapes such as ``u\\72l(`` come
out as ``url(``), then a cleaner whose attribute filter looks at the normalised values
with plain string tests (no regular expression over the document).

Plain text is derived with regular expressions rather than an HTML parser: mail HTML is
large and repetitive and a parse tree is not needed to place line breaks. Block elements
become line breaks, ``<br>`` a line break, links keep their target when it differs from
their text, entities are unescaped and HTML whitespace is collapsed.
"""

from __future__ import annotations

__all__ = ["html_to_text", "referenced_content_ids", "sanitize_html",
           "without_remote_resources"]

import html as _html
import re
from urllib.parse import unquote

import nh3

_TAGS = (set(nh3.ALLOWED_TAGS) | {"font", "th", "tfoot", "center", "span", "div"}) - {
    "area", "map", "details", "summary"}
_GENERIC = {"style", "title", "dir", "lang", "align", "class"}
_ATTRIBUTES = {
    "*": _GENERIC,
    "a": {"href", "hreflang", "name", "target"},
    "img": {"src", "alt", "width", "height", "border", "hspace", "vspace"},
    "table": {"width", "border", "cellpadding", "cellspacing", "bgcolor", "summary"},
    "td": {"colspan", "rowspan", "width", "height", "valign", "bgcolor", "nowrap"},
    "th": {"colspan", "rowspan", "width", "height", "valign", "bgcolor", "scope"},
    "tr": {"valign", "bgcolor"},
    "col": {"span", "width"},
    "colgroup": {"span", "width"},
    "font": {"color", "face", "size"},
    "ol": {"start", "type"},
    "ul": {"type"},
    "li": {"value"},
    "blockquote": {"cite", "type"},
    "hr": {"width", "size", "noshade"},
    "q": {"cite"},
    "time": {"datetime"},
}
_STYLE_PROPERTIES = {
    "color", "background-color", "font", "font-family", "font-size", "font-style",
    "font-weight", "font-variant", "text-align", "text-decoration", "text-indent",
    "text-transform", "line-height", "letter-spacing", "word-spacing", "white-space",
    "vertical-align", "direction", "display", "visibility", "width", "height", "max-width",
    "min-width", "max-height", "min-height", "margin", "margin-top", "margin-right",
    "margin-bottom", "margin-left", "padding", "padding-top", "padding-right",
    "padding-bottom", "padding-left", "border", "border-top", "border-right",
    "border-bottom", "border-left", "border-color", "border-style", "border-width",
    "border-collapse", "border-spacing", "border-radius", "table-layout", "list-style-type",
    "float", "clear", "overflow",
}
_CLEAN_CONTENT = {"script", "style", "title", "xml", "template", "noscript", "iframe",
                  "object", "embed", "svg", "math", "select", "textarea", "button"}
_SCHEMES = {"http", "https", "mailto", "tel", "cid", "ftp", "sms", "callto"}
_DATA_IMAGE = re.compile(r"data:image/(?:png|jpe?g|gif|webp|bmp);", re.I)


def _keep_data_images(tag: str, attribute: str, value: str) -> str | None:
    """Allow ``data:`` only as a raster image source; everything else passes unchanged."""
    if attribute in ("src", "href") and value.lstrip()[:5].lower() == "data:":
        return value if tag == "img" and _DATA_IMAGE.match(value.lstrip()) else None
    return value


def _cleaner(*, data_uris: bool) -> nh3.Cleaner:
    return nh3.Cleaner(
        tags=_TAGS,
        clean_content_tags=_CLEAN_CONTENT,
        attributes=_ATTRIBUTES,
        attribute_filter=_keep_data_images if data_uris else None,
        strip_comments=True,
        link_rel="noopener noreferrer",
        url_schemes=_SCHEMES | ({"data"} if data_uris else set()),
        filter_style_properties=_STYLE_PROPERTIES,
    )


_PLAIN_CLEANER = _cleaner(data_uris=False)
_DATA_CLEANER = _cleaner(data_uris=True)


def sanitize_html(html: str) -> str:
    """Return ``html`` with everything unsafe removed (see the module notes for the list).

    Args:
        html: untrusted HTML from a message body.

    Returns:
        Safe HTML: no scripts, styles blocks, event handlers or unknown schemes;
        ``cid:`` and raster ``data:`` image sources are kept.
    """
    cleaner = _DATA_CLEANER if "data:" in html else _PLAIN_CLEANER
    return cleaner.clean(html)


def _no_remote_resources(tag: str, attribute: str, value: str) -> str | None:
    """Keep an image source only when it is ``cid:`` or a raster ``data:`` image, and a
    style only when it names no resource; everything else passes unchanged."""
    if attribute == "src":
        source = value.strip()
        if source[:4].lower() == "cid:" or _DATA_IMAGE.match(source):
            return value
        return None
    if attribute == "style":
        lowered = value.lower()
        return None if "url(" in lowered or "image" in lowered or "\\" in value else value
    return value


_LOCAL_CLEANER = nh3.Cleaner(
    tags=_TAGS,
    clean_content_tags=_CLEAN_CONTENT,
    attributes=_ATTRIBUTES,
    attribute_filter=_no_remote_resources,
    strip_comments=True,
    link_rel="noopener noreferrer",
    url_schemes=_SCHEMES | {"data"},
    filter_style_properties=_STYLE_PROPERTIES,
)


def without_remote_resources(html: str) -> str:
    """:func:`sanitize_html`, and nothing left that loads from elsewhere when shown.

    Args:
        html: untrusted HTML, typically a customer's message quoted in our mail.

    Returns:
        Safe HTML whose images are only ``cid:`` and raster ``data:`` ones (others lose
        their ``src``) and whose inline styles name no ``url()`` or image; links stay.
    """
    return _LOCAL_CLEANER.clean(sanitize_html(html))


_CID = re.compile(r"""\bcid:([^"'\s>)]+)""", re.I)


def referenced_content_ids(html: str) -> set[str]:
    """The Content-IDs an HTML body links to with ``cid:`` (percent-decoded, no ``<>``)."""
    if "cid:" not in html and "CID:" not in html:
        return set()
    return {unquote(m.group(1)).strip("<>") for m in _CID.finditer(html)}


_DROP = re.compile(
    r"<!--.*?(?:-->|\Z)|<(script|style|head|title|xml|template|noscript)\b.*?(?:</\1\s*>|\Z)",
    re.I | re.S)
_WHITESPACE = re.compile(r"[ \t\r\n\f\v]+")
_LINK = re.compile(
    r"""<a\b[^>]*?\bhref\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+))[^>]*>(.*?)</a\s*>""",
    re.I | re.S)
_PARAGRAPH = re.compile(r"</?(?:p|h[1-6]|table|blockquote|pre|ul|ol|dl)\b[^>]*>", re.I)
_LINE = re.compile(r"<br\b[^>]*>|</?(?:div|tr|dt|dd|hr|caption|section|article|header|"
                   r"footer|address|center|figure|figcaption)\b[^>]*>", re.I)
_CELL = re.compile(r"</t[dh]\s*>", re.I)
_LIST_ITEM = re.compile(r"<li\b[^>]*>", re.I)
_TAG = re.compile(r"</?[A-Za-z!?][^>]*>")
_SPACES_AROUND_BREAK = re.compile(r"[ \t]*\n[ \t]*")
_MANY_BREAKS = re.compile(r"\n{3,}")


def html_to_text(html: str) -> str:
    """Render HTML as readable plain text.

    Args:
        html: HTML, sanitised or not.

    Returns:
        Text with paragraphs separated by blank lines, ``<br>`` and block elements as line
        breaks, list items prefixed ``- ``, table cells separated by spaces, and links
        written ``text <url>`` when the url is not already the text.
    """
    text = _DROP.sub("", html)
    text = _WHITESPACE.sub(" ", text)
    text = _LINK.sub(_link_text, text)
    text = _LIST_ITEM.sub("\n- ", text)
    text = _PARAGRAPH.sub("\n\n", text)
    text = _LINE.sub("\n", text)
    text = _CELL.sub(" ", text)
    text = _TAG.sub("", text)
    text = _html.unescape(text).replace("\xa0", " ").replace("\u200b", "")
    text = _SPACES_AROUND_BREAK.sub("\n", text)
    text = _MANY_BREAKS.sub("\n\n", text)
    return text.strip() + "\n" if text.strip() else ""


def _link_text(match: re.Match[str]) -> str:
    url = _html.unescape(match.group(1) or match.group(2) or match.group(3) or "").strip()
    inner = match.group(4)
    label = _html.unescape(_TAG.sub("", inner)).strip()
    if not url or url.lower().startswith(("cid:", "data:", "#", "javascript:")):
        return inner
    shown = url[7:] if url.lower().startswith("mailto:") else url
    if not label or shown == label or url == label:
        return inner if label else _html.escape(shown)
    return f"{inner} &lt;{_html.escape(shown)}&gt;"
