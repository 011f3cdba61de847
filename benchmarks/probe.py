"""Where a single-event command's time goes: ``python -m benchmarks.probe``.

Workload 1 of the benchmark, taken apart. In one process, on fresh databases, it
times one-event writes layer by layer, alternating between them round after round
(this machine is noisy: only the medians of interleaved rounds compare):

- ``raw``: the raw contender's write of one event, with its table and statement
  (``contenders/raw_sqlite.py``, ``raw_postgres.py``): one autocommit ``INSERT`` of
  the msgspec-encoded payload, on SQLite as on PostgreSQL;
- ``append``: ``store.append(stream, [event], NO_STREAM)``;
- ``start``: ``CommandHandler.start`` with the benchmark's ``Account`` aggregate;
- ``handle``: ``CommandHandler.handle`` on a new stream (a read, then the write).

It prints microseconds per write and each layer's time over ``raw``. Durability is
the benchmark's: SQLite in WAL mode at ``synchronous=FULL``, PostgreSQL with
``synchronous_commit=on``.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import chronik
from benchmarks.contenders import raw_sqlite
from benchmarks.contenders._raw import OPENED_JSON
from benchmarks.contenders.chronik import Account, Opened, registry
from benchmarks.databases import DEFAULT_POSTGRES_URL, create_location, drop_location
from benchmarks.domain import CATEGORY, OWNER

__all__ = ["main", "probe"]

Write = Callable[[], object]


def _stream() -> str:
    return f"{CATEGORY}-{uuid.uuid4()}"


def _open(account: Account) -> None:
    account.open(OWNER)


def _chronik_writes(store: chronik.EventStore) -> dict[str, Write]:
    handler = chronik.CommandHandler(store, Account)
    return {
        "append": lambda: store.append(_stream(), [Opened(OWNER)], chronik.NO_STREAM),
        "start": lambda: handler.start(_stream(), _open),
        "handle": lambda: handler.handle(_stream(), _open),
    }


def _sqlite_raw(path: Path, closers: list[Callable[[], object]]) -> Write:
    conn = sqlite3.connect(path, isolation_level=None)
    closers.append(conn.close)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    for statement in raw_sqlite.SCHEMA:
        conn.execute(statement)

    def write() -> None:
        # autocommit: the insert is its own transaction, as the raw contender's
        row = (_stream(), CATEGORY, 1, "Opened", OPENED_JSON, time.time_ns() // 1000)
        conn.execute(raw_sqlite.INSERT, row)

    return write


def _postgres_raw(url: str, schema: str, closers: list[Callable[[], object]]) -> Write:
    import psycopg

    from benchmarks.contenders import raw_postgres

    conn = psycopg.connect(url, autocommit=True, options=f"-c search_path={schema}")
    closers.append(conn.close)
    for statement in raw_postgres.SCHEMA:
        conn.execute(statement)

    def write() -> None:
        conn.execute(raw_postgres.INSERT, (_stream(), CATEGORY, 1, "Opened", OPENED_JSON))

    return write


def probe(writes: dict[str, Write], *, rounds: int, per_round: int) -> dict[str, float]:
    """Median microseconds per write of each, over ``rounds`` interleaved rounds."""
    for write in writes.values():  # warm: statements prepared, connections open
        for _ in range(20):
            write()
    samples: dict[str, list[float]] = {name: [] for name in writes}
    for _ in range(rounds):
        for name, write in writes.items():
            start = time.perf_counter()
            for _ in range(per_round):
                write()
            samples[name].append((time.perf_counter() - start) / per_round * 1e6)
    return {name: statistics.median(values) for name, values in samples.items()}


def _report(title: str, medians: dict[str, float]) -> None:
    print(title)
    raw = medians["raw"]
    for name, micros in medians.items():
        print(f"  {name:8} {micros:9.1f} µs   {micros / raw:5.2f}x raw")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.probe", description=__doc__.split("\n")[0])
    parser.add_argument("--backend", choices=("sqlite", "postgres", "all"), default="all")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--per-round", type=int, default=200)
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("CHRONIK_BENCH_POSTGRES_URL")
        or os.environ.get("CHRONIK_TEST_POSTGRES_URL")
        or DEFAULT_POSTGRES_URL,
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="chronik-probe-") as tmp:
        work = Path(tmp)
        if args.backend in ("sqlite", "all"):
            store = chronik.connect(f"sqlite:///{work / 'chronik.db'}", registry=registry)
            closers: list[Callable[[], object]] = [store.close]
            try:
                writes = {"raw": _sqlite_raw(work / "raw.db", closers), **_chronik_writes(store)}
                medians = probe(writes, rounds=args.rounds, per_round=args.per_round)
            finally:
                for close in closers:
                    close()
            _report("SQLite (WAL, synchronous=FULL)", medians)
        if args.backend in ("postgres", "all"):
            _report("PostgreSQL (synchronous_commit=on)", _probe_postgres(args.postgres_url, work, args))


def _probe_postgres(url: str, work: Path, args: argparse.Namespace) -> dict[str, float]:
    tag = os.getpid()
    raw_at = create_location("postgres", f"probe_raw_{tag}", workdir=work, postgres_url=url)
    chronik_at = create_location("postgres", f"probe_chronik_{tag}", workdir=work, postgres_url=url)
    closers: list[Callable[[], object]] = []
    try:
        store = chronik.connect(
            f"{url}{'&' if '?' in url else '?'}schema={chronik_at.schema}", registry=registry
        )
        closers.append(store.close)
        writes = {"raw": _postgres_raw(url, raw_at.schema, closers), **_chronik_writes(store)}
        return probe(writes, rounds=args.rounds, per_round=args.per_round)
    finally:
        for close in closers:
            close()
        drop_location(raw_at)
        drop_location(chronik_at)


if __name__ == "__main__":
    main()
