"""The profile summary puts each py-spy sample in the innermost category it shows."""

from __future__ import annotations

from benchmarks.profile_summary import categorise, summarise

MAIN = "thread (1): MainThread;run (trio/_core/_run.py:2532)"
STORE = "thread (2): worker;WorkerThread._work (trio/_core/_thread_cache.py:195)"


def test_the_innermost_named_frame_wins() -> None:
    # logging called from inside the processor counts as logging, not as the processor
    stack = ["Processor.process (daemon/actors/processor.py:131)",
             "BoundLogger.info (structlog/stdlib.py:220)", "write (logging/__init__.py:1)"]
    assert categorise(stack) == "logging"
    assert categorise(["Processor.process (daemon/actors/processor.py:131)",
                       "parse_message (daemon/mail/parse.py:78)",
                       "_parse (daemon/mail/parse.py:84)"]) == "parse (daemon.mail.parse)"


def test_a_parked_worker_thread_is_idle_but_its_work_is_not() -> None:
    assert categorise(["WorkerThread._work (trio/_core/_thread_cache.py:211)"]) == "idle"
    assert categorise(["WorkerThread._work (trio/_core/_thread_cache.py:195)",
                       "AsyncStore._transact (daemon/store/asyncstore.py:70)",
                       "SqliteStore.transaction (daemon/store/sqlite.py:492)"]
                      ) == "store: BEGIN/COMMIT (WAL writes, checkpoints)"


def test_summarise_adds_the_counts_of_raw_lines() -> None:
    lines = [
        f"{MAIN};parse_message (daemon/mail/parse.py:78) 7\n",
        f"{MAIN};EpollIOManager.get_events (trio/_core/_io_epoll.py:243) 5\n",
        f"{STORE};import_message (daemon/crm/importer.py:101) 3\n",
        f"{MAIN};parse_message (daemon/mail/parse.py:80) 1\n",
        "garbage without a count\n",
    ]
    totals = summarise(lines)
    assert totals["parse (daemon.mail.parse)"] == 8
    assert totals["idle"] == 5
    assert totals["store: import_message (SQL, lookups)"] == 3
    assert sum(totals.values()) == 16
