"""``python -m benchmarks.backlog``: far behind, and slow, without hurting anyone (issue 12).

Two figures, on SQLite and PostgreSQL, in one run:

1. **Catching up in bounded memory.** A store is filled with a backlog (``--events``,
   a million by default, and a tenth of it first), then a subscription and a
   projection runner (its read model in the store: a balance per account, upserted per
   event) each catch up on all of it, each in a fresh process of its own. The figure
   is the peak resident memory during the catch-up against the resident memory just
   before it (``benchmarks.memory.PeakRSS``: the kernel's high-water mark, reset at
   the start), at both sizes: memory that grew with the backlog would show as ten
   times the growth for ten times the events.
2. **A slow consumer never slows writers.** Writers in a process of their own append
   for ``--seconds`` (four threads, five events per append) alone, then beside
   consumers that take a millisecond per event (so they fall further and further
   behind): a subscription and a projection runner whose read model is outside the
   store (at least once), and, apart, a projection runner whose read model is in the
   store's own transactions (exactly once). Rounds alternate (``--repeats``), the
   figure is the writers' median events/s beside each against alone, as a ratio.

    python -m benchmarks.backlog                       # the figures (make backlog)
    python -m benchmarks.backlog --quick               # seconds: the harness works

Not part of ``make bench`` (it takes minutes); figures measured on a machine shared
with other work are noisy, the ratios less so (each round pairs its phases).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

import chronik
from benchmarks.databases import DEFAULT_POSTGRES_URL, postgres_reachable
from benchmarks.memory import PeakRSS
from benchmarks.soak import rss_mib
from chronik import NewEvent, RecordedEvent, StreamWrite
from chronik.projections import CheckpointedTarget, Projection, ProjectionRunner
from chronik.store import StoreTransaction

__all__ = ["main"]

STREAMS: Final = 1000
PER_APPEND: Final = 100  # events per stream in one append of the backlog
WRITERS: Final = 4
WRITER_BATCH: Final = 5
SLOW: Final = 0.001  # seconds a slow consumer takes per event


# -- where the stores live -----------------------------------------------------------------


@contextmanager
def _store_url(backend: str, workdir: Path, postgres_url: str) -> Iterator[str]:
    """A fresh, empty store's URL (a SQLite file, a PostgreSQL schema), removed afterwards."""
    name = f"chronik_backlog_{uuid.uuid4().hex[:10]}"
    if backend == "sqlite":
        path = workdir / f"{name}.db"
        try:
            yield f"sqlite:///{path}"
        finally:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
        return
    import psycopg
    from psycopg import sql

    separator = "&" if "?" in postgres_url else "?"
    try:
        yield f"{postgres_url}{separator}schema={name}"
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


def _write_backlog(url: str, start: int, count: int) -> float:
    """Append ``count`` events (ten streams of PER_APPEND each per call); seconds taken."""
    began = time.monotonic()
    with chronik.connect(url) as store:
        n = start
        while n < start + count:
            writes = []
            for _ in range(10):
                if n >= start + count:
                    break
                size = min(PER_APPEND, start + count - n)
                events = [NewEvent("Deposited", {"amount": n + i}) for i in range(size)]
                writes.append(StreamWrite(f"account-{(n // PER_APPEND) % STREAMS}", events))
                n += size
            store.append_many(writes)
    return time.monotonic() - began


# -- 1. catching up ---------------------------------------------------------------------------


def _balances(table: str) -> Projection[StoreTransaction]:
    """A balance per account, upserted per event, in ``table`` of the store's database."""

    def setup(tx: StoreTransaction) -> None:
        tx.execute(f"CREATE TABLE {table} (account TEXT PRIMARY KEY, total BIGINT NOT NULL)")

    def deposited(event: RecordedEvent, tx: StoreTransaction) -> None:
        tx.execute(
            f"INSERT INTO {table} VALUES (:a, :t) "
            f"ON CONFLICT (account) DO UPDATE SET total = {table}.total + :t",
            {"a": event.stream_id, "t": event.data["amount"]},
        )

    return Projection(table, {"Deposited": deposited}, setup=setup)


def catch_up(url: str, kind: str, name: str) -> dict[str, Any]:
    """In a fresh process: catch a subscription or a runner up on the whole log, measuring
    its memory (RSS just before, and the peak during it)."""
    store = chronik.connect(url)
    head = store.head()
    peak = PeakRSS()
    before = rss_mib()
    peak.start()
    began = time.monotonic()
    handled = 0
    if kind == "subscription":
        total = 0
        with store.subscribe(batch_size=500) as subscription:
            while True:
                batch = subscription.next_batch(0)
                for event in batch:
                    total += event.data["amount"]  # decoded, as a consumer would
                handled += len(batch)
                at = subscription.checkpoint
                if not batch and head is not None and at is not None and at >= head:
                    break
    else:
        runner = ProjectionRunner(store, _balances(name), warn_unknown_types=False)
        handled = runner.run_until_caught_up()
    seconds = time.monotonic() - began
    added = peak.added_mib()
    store.close()
    return {
        "kind": kind,
        "events": handled,
        "seconds": round(seconds, 2),
        "events_per_s": round(handled / seconds) if seconds else 0,
        "rss_before_mib": round(before, 1),
        "rss_peak_mib": round(before + added, 1),
        "added_mib": round(added, 1),
        "method": peak.method,
    }


def _in_fresh_process(fn: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()


def catch_ups(backend: str, url: str, events: int) -> list[dict[str, Any]]:
    sizes = [max(1, events // 10), events]
    rows = []
    written = 0
    for size in sizes:
        took = _write_backlog(url, written, size - written)
        print(
            f"  {backend}: backlog of {size:,} events ({size - written:,} written in {took:.1f} s)",
            flush=True,
        )
        written = size
        for kind in ("subscription", "projection runner"):
            row = _in_fresh_process(catch_up, url, kind, f"balances_{size}")
            row.update(backend=backend, backlog=size)
            rows.append(row)
            print(
                f"  {backend}: {kind} caught up on {row['events']:,} events in {row['seconds']:.1f} s "
                f"({row['events_per_s']:,}/s); RSS {row['rss_before_mib']:.1f} MiB before, peak "
                f"{row['rss_peak_mib']:.1f} MiB (+{row['added_mib']:.1f})",
                flush=True,
            )
    return rows


# -- 2. slow consumers beside writers ---------------------------------------------------------


def write_for(url: str, seconds: float) -> tuple[int, int]:
    """In a fresh process: WRITERS threads append WRITER_BATCH events at a time for
    ``seconds``; the events written, and the appends that failed (a write lock that was
    not given up within the store's busy timeout, say)."""
    store = chronik.connect(url)
    counts = [0] * WRITERS
    failed = [0] * WRITERS
    deadline = time.monotonic() + seconds

    def write(i: int) -> None:
        n = 0
        while time.monotonic() < deadline:
            try:
                store.append(
                    f"order-{i}-{n % 100}", [NewEvent("Placed", {"n": n}) for _ in range(WRITER_BATCH)]
                )
            except chronik.OperationalError:
                failed[i] += 1
                continue
            n += 1
            counts[i] += WRITER_BATCH

    threads = [threading.Thread(target=write, args=(i,)) for i in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    store.close()
    return sum(counts), sum(failed)


class _Slow:
    """Slow consumers of one kind, following ``url`` in this process until stopped."""

    def __init__(self, url: str, kind: str) -> None:
        self.store = chronik.connect(url)
        self.kind = kind
        self.stopping = threading.Event()
        self.handled: dict[str, int] = {}  # by consumer
        self.runners: list[ProjectionRunner[Any]] = []
        self.threads: list[threading.Thread] = []
        tag = uuid.uuid4().hex[:8]

        def slow(event: RecordedEvent, context: object) -> None:
            time.sleep(SLOW)
            self.handled["runner"] = self.handled.get("runner", 0) + 1

        if kind == "outside":
            self.threads.append(threading.Thread(target=self._subscribe, daemon=True))
            model: dict[str, int] = {}
            projection = Projection(f"slow_{tag}", {"Placed": slow})
            self.runners.append(
                ProjectionRunner(
                    self.store, projection, CheckpointedTarget(model, self.store), warn_unknown_types=False
                )
            )
        else:

            def slow_in_tx(event: RecordedEvent, tx: StoreTransaction) -> None:
                slow(event, tx)
                tx.execute(f"INSERT INTO slow_{tag} VALUES (:p)", {"p": event.position})

            in_tx: Projection[StoreTransaction] = Projection(
                f"slow_{tag}",
                {"Placed": slow_in_tx},
                setup=lambda tx: tx.execute(f"CREATE TABLE slow_{tag} (p BIGINT PRIMARY KEY)"),
            )
            self.runners.append(ProjectionRunner(self.store, in_tx, warn_unknown_types=False))

    def _subscribe(self) -> None:
        with self.store.subscribe() as subscription:
            while not self.stopping.is_set():
                for _event in subscription.next_batch(0.2):
                    time.sleep(SLOW)
                    self.handled["subscription"] = self.handled.get("subscription", 0) + 1
                    if self.stopping.is_set():
                        return

    def start(self) -> None:
        for thread in self.threads:
            thread.start()
        for runner in self.runners:
            runner.run_in_background()

    def stop(self) -> int:
        """Stop them; how far behind the log the slowest one was (in events)."""
        self.stopping.set()
        for runner in self.runners:
            runner.stop(timeout=60)
        for thread in self.threads:
            thread.join(60)
        total = sum(1 for _ in self.store.read_all())
        self.store.close()
        consumers = ["runner", "subscription"] if self.threads else ["runner"]
        return total - min(self.handled.get(name, 0) for name in consumers)


KINDS: Final = {
    "alone": "writers alone",
    "outside": "beside a slow subscription and a slow runner (read model outside the store)",
    "inside": "beside a slow runner in the store's transactions",
}


def slow_consumers(
    backend: str, workdir: Path, postgres_url: str, seconds: float, repeats: int
) -> dict[str, Any]:
    """Each phase on a store of its own, so that slow consumers start at its beginning
    and fall behind only as the writers write."""
    rates: dict[str, list[float]] = {kind: [] for kind in KINDS}
    behind: dict[str, list[int]] = {kind: [] for kind in KINDS}
    refused: dict[str, int] = dict.fromkeys(KINDS, 0)
    kinds = list(KINDS)
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        for round_ in range(repeats):
            # Each round starts with another phase, so none always comes first.
            for kind in kinds[round_ % len(kinds) :] + kinds[: round_ % len(kinds)]:
                with _store_url(backend, workdir, postgres_url) as url:
                    with chronik.connect(url) as store:
                        store.append("order-seed", [NewEvent("Placed", {"n": -1})])  # the types exist
                    pool.submit(write_for, url, 0.1).result()  # the writers' process warmed up
                    consumers = None if kind == "alone" else _Slow(url, kind)
                    if consumers is not None:
                        consumers.start()
                    time.sleep(0.5)  # consumers following, and the last phase's teardown settled
                    written, failed = pool.submit(write_for, url, seconds).result()
                    if consumers is not None:
                        behind[kind].append(consumers.stop())
                rates[kind].append(written / seconds)
                refused[kind] += failed
                note = f", {failed:,} appends refused" if failed else ""
                if consumers is not None:
                    note += f" (the slowest consumer {behind[kind][-1]:,} events behind at the end)"
                print(
                    f"  {backend} round {round_ + 1}: {KINDS[kind]}: {written / seconds:,.0f} events/s{note}",
                    flush=True,
                )
    alone = statistics.median(rates["alone"])
    result: dict[str, Any] = {
        "backend": backend,
        "seconds": seconds,
        "repeats": repeats,
        "alone": round(alone),
        "alone_refused": refused["alone"],
    }
    for kind in ("outside", "inside"):
        median = statistics.median(rates[kind])
        result[kind] = {
            "events_per_s": round(median),
            "ratio": round(median / alone, 2) if alone else None,
            "consumers_behind_at_end": max(behind[kind]),
            "appends_refused": refused[kind],
        }
    return result


# -- the run ----------------------------------------------------------------------------------


def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unreachable = postgres_reachable(args.postgres_url) if "postgres" in backends else None
    if unreachable is not None:
        print(f"{unreachable}: PostgreSQL skipped", flush=True)
        backends.remove("postgres")
    result: dict[str, Any] = {"events": args.events, "catch_up": [], "slow_consumers": []}
    for backend in backends:
        if args.only in (None, "catch-up"):
            print(f"{backend}: catching up on a backlog", flush=True)
            with _store_url(backend, workdir, args.postgres_url) as url:
                result["catch_up"].extend(catch_ups(backend, url, args.events))
        if args.only in (None, "slow-consumers"):
            print(f"{backend}: writers beside slow consumers", flush=True)
            result["slow_consumers"].append(
                slow_consumers(backend, workdir, args.postgres_url, args.seconds, args.repeats)
            )
    print("\ncatch-up figure (RSS during the catch-up against just before it):", flush=True)
    for row in result["catch_up"]:
        print(
            f"  {row['backend']:<9} {row['kind']:<18} {row['backlog']:>10,} events behind: "
            f"{row['rss_before_mib']:6.1f} -> {row['rss_peak_mib']:6.1f} MiB (+{row['added_mib']:.1f}) "
            f"in {row['seconds']:.1f} s",
            flush=True,
        )
    print("\nslow-consumer figure (writers' events/s beside slow consumers against alone):", flush=True)
    for row in result["slow_consumers"]:
        print(f"  {row['backend']:<9} {KINDS['alone']}: {row['alone']:,} events/s", flush=True)
        for kind in ("outside", "inside"):
            figure = row[kind]
            refused = f", {figure['appends_refused']:,} appends refused" if figure["appends_refused"] else ""
            print(
                f"  {row['backend']:<9} {KINDS[kind]}: {figure['events_per_s']:,} events/s "
                f"({figure['ratio']:.2f}x){refused}; the slowest consumer up to "
                f"{figure['consumers_behind_at_end']:,} events behind",
                flush=True,
            )
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.backlog", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--events", type=int, default=1_000_000, help="the backlog (default 1,000,000)")
    parser.add_argument("--backends", default="sqlite,postgres", help="sqlite and/or postgres (default both)")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("CHRONIK_BENCH_POSTGRES_URL", DEFAULT_POSTGRES_URL),
        help="the PostgreSQL server (each run uses a schema of its own, dropped afterwards)",
    )
    parser.add_argument(
        "--seconds", type=float, default=5.0, help="how long writers write per round (default 5)"
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="rounds of the slow-consumer figure (default 3)"
    )
    parser.add_argument("--only", choices=["catch-up", "slow-consumers"], help="one of the two figures")
    parser.add_argument(
        "--quick", action="store_true", help="a run of seconds: 2,000 events, 0.5 s rounds, 1 repeat"
    )
    parser.add_argument("--workdir", type=Path, help="where SQLite files go (default: a temporary directory)")
    parser.add_argument("--out", type=Path, help="also write the figures as JSON to this file")
    args = parser.parse_args(argv)
    if args.quick:
        args.events, args.seconds, args.repeats = 2000, 0.5, 1
    if args.events < 10 or args.seconds <= 0 or args.repeats < 1:
        parser.error("--events must be >= 10, --seconds > 0, --repeats >= 1")
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
        result = run(args, args.workdir)
    else:
        with tempfile.TemporaryDirectory(prefix="chronik-backlog-") as tmp:
            result = run(args, Path(tmp))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
