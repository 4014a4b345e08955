"""Measure parse_message (and classify) throughput on the generated message mix.

Run ``python -m benchmarks.parse_throughput [N] [--compare]``. Prints messages per second
of CPU time (``time.process_time``, less disturbed by other processes on a shared
machine) and of wall time, best of five rounds. ``--compare`` also times the stdlib
alternatives that were measured when choosing the parser.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from email import policy
from email.parser import BytesParser

from benchmarks.messages import generate_messages
from daemon.mail.classify import classify
from daemon.mail.parse import parse_message

_OWN = frozenset({"support@example.com"})


def _rate(messages: list[bytes], work: Callable[[bytes], object]) -> tuple[float, float]:
    best_cpu = best_wall = float("inf")
    for _ in range(5):
        cpu, wall = time.process_time(), time.perf_counter()
        for raw in messages:
            work(raw)
        best_cpu = min(best_cpu, time.process_time() - cpu)
        best_wall = min(best_wall, time.perf_counter() - wall)
    return len(messages) / best_cpu, len(messages) / best_wall


def _stdlib_compat32(raw: bytes) -> None:
    message = BytesParser(policy=policy.compat32).parsebytes(raw)
    for part in message.walk():
        if not part.is_multipart():
            part.get_payload(decode=True)


def _stdlib_default(raw: bytes) -> None:
    message = BytesParser(policy=policy.default).parsebytes(raw)
    _ = message["subject"], message["from"]
    body = message.get_body(("plain", "html"))
    if body is not None:
        body.get_content()
    for attachment in message.iter_attachments():
        attachment.get_content()


def main(argv: list[str]) -> None:
    count = int(next((a for a in argv if a.isdigit()), "1000"))
    messages = list(generate_messages(count))
    size = sum(map(len, messages)) / count
    print(f"{count} messages, {size / 1024:.1f} KiB average")
    candidates: dict[str, Callable[[bytes], object]] = {
        "parse_message": parse_message,
        "parse_message + classify": lambda raw: classify(parse_message(raw), own_addresses=_OWN),
    }
    if "--compare" in argv:
        candidates["stdlib compat32: parse + decode only"] = _stdlib_compat32
        candidates["stdlib policy.default: parse + get_content"] = _stdlib_default
    for name, work in candidates.items():
        cpu, wall = _rate(messages, work)
        print(f"{name:45} {cpu:8.0f} msgs/s CPU  {wall:8.0f} msgs/s wall")


if __name__ == "__main__":
    main(sys.argv[1:])
