"""Where the import's time goes: py-spy collapsed stacks summed into categories.

``benchmarks.ingest --profile FILE`` records every thread of the import with py-spy
(``--format raw --threads --idle``). This reads FILE and attributes each sample to the
innermost frame that names a category (parse, classify, store transaction, COMMIT,
IMAP FETCH, logging, thread hops, the Trio scheduler...). Samples of a thread waiting
for work (a Trio worker thread parked in its cache, the event loop in ``epoll_wait``)
are counted as idle and left out of the percentages; samples of a thread waiting for
the GIL are counted where it waits, which is how thread hops show their real cost.

Run: ``.venv/bin/python -m benchmarks.profile_summary FILE [--messages N]``
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

#: (category, pattern on one frame), tried in order on each frame, innermost first.
CATEGORIES: tuple[tuple[str, str], ...] = (
    ("idle", r"^(WorkerThread\._work \(trio/_core/_thread_cache\.py:\d+\)$|"
             r"EpollIOManager\.get_events|_PySpy\.__enter__)"),
    ("logging", r"structlog/|logging/__init__|daemon/log\.py"),
    ("parse (daemon.mail.parse)", r"^parse_message \(daemon/mail/parse"),
    ("classify", r"^(Processor\.classify|classify \(daemon/mail/classify)"),
    ("store: BEGIN/COMMIT (WAL writes, checkpoints)", r"^SqliteStore\.transaction \("),
    ("store: import_message (SQL, lookups)", r"^import_message \(daemon"),
    ("store: other transactions", r"^AsyncStore\._transact"),
    ("IMAP: FETCH/SEARCH (socket + imapclient parsing)",
     r"^IMAPClient\.(fetch|search|noop|select_folder)"),
    ("IMAP: STORE \\Seen", r"^IMAPClient\.(add_flags|_store)"),
    ("thread hops (to_thread dispatch, wake-ups)",
     r"^(WakeupSocketpair|ThreadCache\.start_thread_soon|to_thread_run_sync|"
     r"get_os_thread_name|EntryQueue|TrioToken)"),
    ("Trio scheduler", r"trio/_core/"),
    ("processor glue", r"^Processor\."),
    ("IMAP sync glue", r"^FolderSync\."),
)
_COMPILED = tuple((name, re.compile(pattern)) for name, pattern in CATEGORIES)


def categorise(stack: Sequence[str]) -> str:
    """The category of one sample: its innermost frame that matches one, else "other"."""
    for frame in reversed(stack):
        for name, pattern in _COMPILED:
            if pattern.search(frame):
                return name
    return "other"


def summarise(lines: Iterable[str]) -> Counter[str]:
    """Samples per category from py-spy ``raw`` lines (``thread;frame;frame count``)."""
    totals: Counter[str] = Counter()
    for line in lines:
        stack, _, count = line.rstrip("\n").rpartition(" ")
        if not stack or not count.isdigit():
            continue
        totals[categorise(stack.split(";")[1:])] += int(count)
    return totals


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("file", type=Path, help="py-spy raw output (ingest --profile)")
    parser.add_argument("--rate", type=float, default=200.0,
                        help="py-spy sampling rate used (ingest uses 200)")
    parser.add_argument("--messages", type=int, help="messages imported, for ms/msg")
    args = parser.parse_args(argv)
    with args.file.open() as lines:
        totals = summarise(lines)
    busy = sum(n for name, n in totals.items() if name != "idle")
    for name, samples in totals.most_common():
        if name == "idle":
            continue
        per = (f"  {samples / args.rate / args.messages * 1e3:6.3f} ms/msg"
               if args.messages else "")
        print(f"{samples / busy * 100:5.1f}%  {samples / args.rate:7.2f} s{per}  {name}")
    idle = totals["idle"] / args.rate
    print(f"busy {busy / args.rate:.2f} s over all threads; idle {idle:.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
