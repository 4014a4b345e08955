"""The one engine that reads every plain-text report layout described by a TextFormat.

Steps for a format that matched (see :class:`~daemon.mail.bounces.report.TextFormat`):

1. the *section*: from the format's ``start`` (or the end of its signature) to its
   ``end`` (or the first "copy of the message" marker), at most 64 KiB;
2. recipients by the leading-address rule (:func:`~daemon.mail.bounces.scan.
   recipient_blocks`), plus those named inside a sentence after an ``inline`` phrase;
3. without either, the addresses of ``X-Failed-Recipients``, then any address in the
   section;
4. per recipient: status from the diagnostic (enhanced code, SMTP code, or words), the
   reason, the remote host; ``delayed`` when the report is a warning (:func:`is_warning`).

The report's own To, Cc and From addresses are never recipients (that is us).
"""

from __future__ import annotations

__all__ = ["RETURNED", "Head", "branches", "folded", "is_warning", "prefixed", "read_format",
           "report_text", "signature_match"]

import functools
import re
from dataclasses import dataclass

from daemon.mail.bounces.reasons import infer_status, reason_of
from daemon.mail.bounces.report import TextFormat, pattern
from daemon.mail.bounces.scan import (
    MAX_RECIPIENTS,
    MAX_SCAN,
    Block,
    addresses,
    first_address,
    recipient_blocks,
    remote_host,
)
from daemon.mail.model import BounceInfo, ParsedMessage

HEAD = 8192

RETURNED = pattern(
    r"^[ \t]{0,10}-{2,}[ \t]{0,5}(?:This is a copy of|Below this line is a copy"
    r"|Original message|Returned message|Unsent message|Forwarded message"
    r"|The header of the original message|Message Headers? follow|Original headers?)",
    r"^[ \t]{0,10}(?:Original message headers|The original message headers|Original message"
    r" follows|Here is a copy of the first part of the message|Message headers follow)",
    r"^[ \t]{0,10}-{5,}[ \t]{0,5}(?:元のメッセージ|以下、元のメッセージ|原文)",
    r"^Content-Type:[ \t]{0,5}message/rfc822", r"^[ \t]{0,10}Message-I[Dd][ \t]{0,5}:",
)

_WARNING = pattern(
    r"Delayed Mail \(still being retried\)", r"Warning: could not send message for past",
    r"has not yet been delivered", r"Delivery Status Notification \(Delay\)",
    r"will (?:continue|keep) (?:trying|to try)|will be retried|still being retried",
    r"this is a warning message only|THIS IS A WARNING MESSAGE ONLY",
    r"Delivery delayed|Message delayed|delivery (?:has been|is) delayed",
    r"Warning: message \S{1,100} delayed", r"temporarily deferred|delivery deferred",
    r"YOU DO NOT NEED TO RESEND", r"Zustellung verzögert|verzögert zugestellt",
    r"retard(?:é|e) de (?:la )?(?:remise|livraison)|remise différée", r"遅延",
    r"Delivery to the following recipients? (?:has been|was) delayed",
    r"transient non-fatal errors",
)
_FINAL = pattern(
    r"permanent(?:ly)? (?:error|failure|fatal)|permanent fatal|failed permanently",
    r"giving up|given up|gave up|has been removed from the mail queue|is being returned",
    r"could not be delivered|couldn't be delivered|wasn't delivered|was not delivered",
    r"retry timeout exceeded|too old|message expired|delivery (?:has )?failed",
)


def report_text(msg: ParsedMessage) -> str:
    """The part of the text a recogniser reads: at most 64 KiB, LF line ends."""
    return msg.text[:MAX_SCAN]


@dataclass(frozen=True, slots=True)
class Head:
    """The text a recogniser reads, with its head and subject lower-cased once.

    Two things make Python's ``re`` slow on a signature: case-insensitive matching, and
    an alternation, which loses the fast literal-prefix scan (every branch is tried at
    every position: ~1 µs per character for a few dozen branches). So a signature is
    searched case-sensitively, lower-cased, over a lower-cased copy of the head, one
    top-level branch at a time (:func:`branches`). ``lower`` is None when lower-casing
    would move positions (a few characters such as ``İ`` grow); the original pattern is
    used then.
    """

    text: str
    lower: str | None
    subject: str

    @classmethod
    def of(cls, msg: ParsedMessage) -> Head:
        text = report_text(msg)
        head = text[:HEAD].lower()
        return cls(text, head if len(head) == min(len(text), HEAD) else None,
                   msg.subject[:1000].lower())

    def search(self, pattern: re.Pattern[str]) -> int | None:
        """The start of ``pattern``'s first match in the head, or None."""
        if self.lower is None:
            found = pattern.search(self.text, 0, HEAD)
            return found.start() if found else None
        lower = self.lower
        starts = [m.start() for literal, branch in prefixed(pattern)
                  if literal in lower and (m := branch.search(lower))]
        return min(starts) if starts else None

    def in_subject(self, pattern: re.Pattern[str]) -> bool:
        subject = self.subject
        return any(literal in subject and branch.search(subject)
                   for literal, branch in prefixed(pattern))

    def subject_start(self, pattern: re.Pattern[str]) -> int | None:
        """The start of ``pattern``'s first match in the (lower-cased) subject, or None."""
        subject = self.subject
        starts = [m.start() for literal, branch in prefixed(pattern)
                  if literal in subject and (m := branch.search(subject))]
        return min(starts) if starts else None


_META = frozenset("\\.^$*+?{}[]()|")


@functools.lru_cache(maxsize=512)
def prefixed(pattern: re.Pattern[str]) -> tuple[tuple[str, re.Pattern[str]], ...]:
    """Each branch with the literal text it must contain (its leading literal run).

    ``literal in text`` is a plain substring test, several times faster than the regex
    engine's own prefix scan; a branch whose literal is absent is not searched at all.
    A quantifier after the run makes its last character optional, so it is dropped.
    """
    out = []
    for branch in branches(pattern):
        source = branch.pattern
        end = 0
        while end < len(source) and source[end] not in _META:
            end += 1
        literal = source[:end]
        if end < len(source) and source[end] in "*?{":
            literal = literal[:-1]
        out.append((literal, branch))
    return tuple(out)


@functools.lru_cache(maxsize=512)
def branches(pattern: re.Pattern[str]) -> tuple[re.Pattern[str], ...]:
    """``pattern``'s alternatives, each :func:`folded`, compiled on their own.

    Top-level ``|`` splits, and a branch that is one whole ``(?:...)`` group is split
    again, so ``pattern("a|b", "c")`` gives ``a``, ``b`` and ``c``.
    """
    flags = pattern.flags & ~re.IGNORECASE
    return tuple(re.compile(part, flags) for part in _split(folded(pattern).pattern))


def _split(source: str) -> list[str]:
    parts: list[str] = []
    depth, in_class, begin, i = 0, False, 0, 0
    close_of_first = -1
    while i < len(source):
        ch = source[i]
        if ch == "\\":
            i += 2
            continue
        if in_class:
            in_class = ch != "]"
        elif ch == "[":
            in_class = True
            if source.startswith("]", i + 1) or source.startswith("^]", i + 1):
                i += 2 if source[i + 1] == "]" else 3
                continue
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0 and close_of_first < 0:
                close_of_first = i
        elif ch == "|" and depth == 0:
            parts.append(source[begin:i])
            begin = i + 1
        i += 1
    if not parts:
        if source.startswith("(?:") and close_of_first == len(source) - 1:
            return _split(source[3:-1])
        return [source]
    parts.append(source[begin:])
    return [branch for part in parts for branch in _split(part)]


@functools.lru_cache(maxsize=512)
def folded(pattern: re.Pattern[str]) -> re.Pattern[str]:
    """``pattern`` for lower-cased text: letters lower-cased (not escapes), no re.I."""
    source = pattern.pattern
    out: list[str] = []
    i = 0
    while i < len(source):
        if source[i] == "\\":
            out.append(source[i:i + 2])
            i += 2
            continue
        out.append(source[i].lower())
        i += 1
    return re.compile("".join(out), pattern.flags & ~re.IGNORECASE)


def signature_match(fmt: TextFormat, head: Head) -> int | None:
    """Where reading starts: the line ``fmt``'s signature is on, 0 for a subject match."""
    found = head.search(fmt.signature)
    if found is not None:
        return head.text.rfind("\n", 0, found) + 1
    if fmt.in_subject and head.in_subject(fmt.signature):
        return 0
    return None


def is_warning(msg: ParsedMessage, text: str) -> bool:
    """True for a delay/warning notice: warning words and no words of a final failure."""
    head = text[:HEAD]
    subject = msg.subject[:1000]
    if not (_WARNING.search(subject) or _WARNING.search(head)):
        return False
    return not (_FINAL.search(head) and not _WARNING.search(subject))


def read_format(fmt: TextFormat, msg: ParsedMessage, text: str, begin: int,
                exclude: frozenset[str], original: str | None) -> list[BounceInfo]:
    """The recipients ``fmt`` finds in ``text`` from ``begin`` (see the module docstring)."""
    section = _section(fmt, text, begin)
    blocks = recipient_blocks(section, exclude=exclude)
    known = {b.recipient for b in blocks}
    if fmt.inline is not None:
        for found in _inline(fmt.inline, text, exclude):
            if found.recipient not in known and len(blocks) < MAX_RECIPIENTS:
                blocks.append(found)
                known.add(found.recipient)
    if not blocks:
        failed = msg.header("x-failed-recipients") or ""
        emails = [e for e in addresses(failed) if e not in exclude] or [
            e for e in addresses(section) if e not in exclude]
        blocks = [Block(e, _summary(section)) for e in emails]
    warning = is_warning(msg, text)
    if not blocks:
        return [_info(None, _summary(section), warning, original)]
    return [_info(b.recipient, b.diagnostic or _summary(section), warning, original)
            for b in blocks]


def _section(fmt: TextFormat, text: str, begin: int) -> str:
    if fmt.start is not None:
        started = fmt.start.search(text, begin, begin + MAX_SCAN)
        if started is not None:
            begin = started.end()
    stop_at = (fmt.end or RETURNED).search(text, begin, begin + MAX_SCAN)
    return text[begin:stop_at.start() if stop_at else begin + MAX_SCAN]


# An SMTP reply anywhere ("The receiving server said: 550 5.7.1 ..."), to the end of line.
_ANY_CODE = re.compile(r"(?<![\d.#-])[245][0-5]\d[ :-][^\n]{0,300}")


def _inline(phrase: re.Pattern[str], text: str, exclude: frozenset[str]) -> list[Block]:
    found: list[Block] = []
    for match in phrase.finditer(text, 0, MAX_SCAN):
        email = first_address(text, match.end())
        if email and email not in exclude:
            line_end = text.find("\n\n", match.end(), match.end() + 1000)
            sentence = text[match.start():line_end if line_end > 0 else match.end() + 300]
            if not _ANY_CODE.search(sentence):
                reply = _ANY_CODE.search(text, match.end(), match.end() + 2000)
                sentence += "\n" + reply.group(0) if reply else ""
            found.append(Block(email, " ".join(sentence.split())))
        if len(found) >= MAX_RECIPIENTS:
            break
    return found


_SMTP_LINE = re.compile(
    r"^[ \t]{0,20}(?:<<<[ \t]?|Remote host said:[ \t]?)?[245]\d\d[ -][^\n]{0,500}", re.M)


def _summary(section: str) -> str:
    """The SMTP reply quoted in a section, else its first words (for shared diagnostics)."""
    smtp = _SMTP_LINE.search(section, 0, MAX_SCAN)
    if smtp is not None:
        return " ".join(smtp.group(0).split())
    return " ".join(section[:600].split())[:500]


def _info(recipient: str | None, diagnostic: str, warning: bool,
          original: str | None) -> BounceInfo:
    status = infer_status(diagnostic)
    if warning:
        status = "4" + status[1:] if status and status[0] in "45" else "4.0.0"
    reason = None if warning else reason_of(status, diagnostic) or "unknown"
    return BounceInfo(
        recipient=recipient, action="delayed" if warning else "failed", status=status,
        diagnostic=diagnostic[:1000] or None, original_message_id=original,
        remote_mta=remote_host(diagnostic), reason=reason)
