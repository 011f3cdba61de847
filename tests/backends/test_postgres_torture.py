"""Torture: many writers in threads, tasks and processes, while readers follow and restart.

16 writers append at once: 8 threads on a sync store, 4 on the async store (through
one blocking bridge, so their appends run concurrently as tasks on its event loop)
and 4 processes (``multiprocessing`` spawn). They write to many streams with ANY,
to hot streams with exact expected versions (retrying when they lose), in atomic
multi-stream batches, re-send batches, and make appends that must be refused.
Meanwhile three readers follow the global log from checkpoints (``read_all`` on the
sync and async faces, and a subscription), each closing its store and resuming from
its saved checkpoint every few pages.

Then: every reader saw every committed event exactly once, in one and the same
checkpoint order; no refused append left anything; each hot stream's versions are
contiguous; every batch sits at consecutive places; every stream is in version order.
"""

from __future__ import annotations

import contextlib
import itertools
import multiprocessing
import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

import chronik
from chronik import NO_STREAM, Checkpoint, NewEvent, StreamWrite, WrongExpectedVersionError
from chronik.store import EventStore
from chronik.testing._workers import append_worker
from chronik.testing.bridge import BlockingStore

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

PATIENCE = 120.0  # seconds before a stalled part fails the test; never reached when correct
CATEGORY = "torture"
HOT = [f"{CATEGORY}-hot", f"{CATEGORY}-hot-1", f"{CATEGORY}-hot-2"]  # the first is the processes' too
COLD = [f"{CATEGORY}-c{i}" for i in range(40)]
EXISTS = f"{CATEGORY}-exists"  # written before the writers start
THREADS, TASKS, PROCESSES = 8, 4, 4
MIN_OPERATIONS, MAX_OPERATIONS = 30, 400  # per thread writer; they write until the processes end
PROCESS_BATCHES = 60
RESTART_EVERY = 5  # pages (or batches) between a reader's restarts


@dataclass
class Ledger:
    """What the writers know they did."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    committed: set[uuid.UUID] = field(default_factory=set)
    batches: list[list[uuid.UUID]] = field(default_factory=list)
    rejected: set[uuid.UUID] = field(default_factory=set)
    conflicts: int = 0

    def commit(self, events: list[NewEvent]) -> None:
        ids = [e.event_id for e in events if e.event_id is not None]
        with self.lock:
            self.committed.update(ids)
            self.batches.append(ids)

    def reject(self, events: list[NewEvent]) -> None:
        with self.lock:
            self.rejected.update(e.event_id for e in events if e.event_id is not None)


def _batch(rng: random.Random, writer: int) -> list[NewEvent]:
    return [
        NewEvent("Tortured", {"writer": writer, "i": i}, event_id=chronik.uuid7())
        for i in range(rng.randint(1, 3))
    ]


def _write(store: EventStore, writer: int, ledger: Ledger, processes_done: threading.Event) -> None:
    rng = random.Random(writer)
    mine: list[list[NewEvent]] = []
    done = 0
    while done < MAX_OPERATIONS and (done < MIN_OPERATIONS or not processes_done.is_set()):
        done += 1
        roll = rng.random()
        batch = _batch(rng, writer)
        if roll < 0.40:  # many streams, any version
            store.append(rng.choice(COLD), batch)
        elif roll < 0.70:  # a hot stream, exact expected version, retried on conflict
            hot = rng.choice(HOT)
            while True:
                version = store.stream_info(hot).version
                try:
                    store.append(hot, batch, version)
                    break
                except WrongExpectedVersionError as err:
                    assert err.actual > version
                    ledger.conflicts += 1
        elif roll < 0.80:  # two streams atomically, one of them hot
            hot, other = rng.choice(HOT), _batch(rng, writer)
            while True:
                version = store.stream_info(hot).version
                try:
                    store.append_many(
                        [StreamWrite(rng.choice(COLD), other), StreamWrite(hot, batch, version)]
                    )
                    break
                except WrongExpectedVersionError:
                    ledger.conflicts += 1
            batch = other + batch
        elif roll < 0.90:  # must be refused, and leave nothing
            stream = rng.choice(HOT + COLD)
            never = store.stream_info(stream).version + 1_000_000  # no run gets that far
            with pytest.raises(WrongExpectedVersionError):
                store.append(stream, batch, never)
            ledger.reject(batch)
            doomed = _batch(rng, writer)
            with pytest.raises(WrongExpectedVersionError):
                store.append_many(
                    [StreamWrite(rng.choice(COLD), doomed), StreamWrite(EXISTS, batch, NO_STREAM)]
                )
            ledger.reject(doomed)
            continue
        elif mine:  # re-send a committed batch: succeeds, writes nothing
            again = rng.choice(mine)
            store.append(f"{CATEGORY}-resend-{writer}", again)
            continue
        else:
            store.append(f"{CATEGORY}-resend-{writer}", batch)
        ledger.commit(batch)
        if roll >= 0.90:
            mine.append(batch)


@dataclass
class Seen:
    events: list[tuple[uuid.UUID, Checkpoint]] = field(default_factory=list)
    restarts: int = 0
    error: BaseException | None = None


def _follow_read_all(
    open_store: Callable[[], EventStore],
    name: str,
    seen: Seen,
    writers_done: threading.Event,
    total: list[int],
) -> None:
    """Pages of read_all from the saved checkpoint; a fresh store every few pages."""
    try:
        store = open_store()
        pages = 0
        deadline: float | None = None
        while True:
            checkpoint = store.load_checkpoint(name)  # type: ignore[attr-defined]
            for event in store.read_all(after=checkpoint, limit=150):
                seen.events.append((event.event_id, event.checkpoint))
                checkpoint = event.checkpoint
            if checkpoint is not None:
                store.save_checkpoint(name, checkpoint)  # type: ignore[attr-defined]
            pages += 1
            if writers_done.is_set():
                deadline = deadline or time.monotonic() + PATIENCE
                if len(seen.events) >= total[0] or time.monotonic() > deadline:
                    break
            if pages % RESTART_EVERY == 0:
                store.close()
                store = open_store()
                seen.restarts += 1
        store.close()
    except BaseException as err:
        seen.error = err


def _follow_subscription(
    open_store: Callable[[], Any], name: str, seen: Seen, writers_done: threading.Event, total: list[int]
) -> None:
    """A subscription, closed with its store and resumed every few batches."""
    try:
        deadline: float | None = None
        while deadline is None or time.monotonic() < deadline:
            store = open_store()
            with store.subscribe(after=store.load_checkpoint(name), batch_size=97) as subscription:
                for _ in range(RESTART_EVERY):
                    for event in subscription.next_batch(0.2):
                        seen.events.append((event.event_id, event.checkpoint))
                    if subscription.checkpoint is not None:
                        store.save_checkpoint(name, subscription.checkpoint)
                    if writers_done.is_set():
                        deadline = deadline or time.monotonic() + PATIENCE
                        if len(seen.events) >= total[0]:
                            assert subscription.next_batch(0.0) == [], "more events than were committed"
                            store.close()
                            return
            store.close()
            seen.restarts += 1
    except BaseException as err:
        seen.error = err


def test_torture(postgres_store_url: str) -> None:
    url = postgres_store_url
    ledger = Ledger()
    with contextlib.closing(chronik.connect(url)) as setup:  # migrates once, before everyone opens it
        first = [NewEvent("Tortured", {"writer": -1, "i": 0}, event_id=chronik.uuid7())]
        setup.append(EXISTS, first)
        ledger.commit(first)
    processes_done, writers_done = threading.Event(), threading.Event()
    total = [0]

    def sync_reader() -> EventStore:
        return chronik.connect(url, pool_max_size=2)

    def async_reader() -> EventStore:
        return BlockingStore(chronik.connect_async(url, pool_max_size=2))

    readers = {
        "read_all-sync": (_follow_read_all, sync_reader),
        "read_all-async": (_follow_read_all, async_reader),
        "subscription": (_follow_subscription, sync_reader),
    }
    seen = {name: Seen() for name in readers}
    reader_threads = [
        threading.Thread(target=follow, args=(open_, name, seen[name], writers_done, total), daemon=True)
        for name, (follow, open_) in readers.items()
    ]
    for t in reader_threads:
        t.start()

    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(PROCESSES) as pool:
        jobs = pool.starmap_async(
            append_worker, [(url, CATEGORY, 100 + i, PROCESS_BATCHES) for i in range(PROCESSES)]
        )
        sync_store = chronik.connect(url, pool_max_size=THREADS)
        async_store = BlockingStore(chronik.connect_async(url, pool_max_size=TASKS))
        errors: list[BaseException] = []

        def run(store: EventStore, writer: int) -> None:
            try:
                _write(store, writer, ledger, processes_done)
            except BaseException as err:
                errors.append(err)

        writer_threads = [threading.Thread(target=run, args=(sync_store, i)) for i in range(THREADS)]
        writer_threads += [
            threading.Thread(target=run, args=(async_store, THREADS + i)) for i in range(TASKS)
        ]
        for t in writer_threads:
            t.start()
        process_ids = jobs.get(PATIENCE)
        processes_done.set()
        for t in writer_threads:
            t.join(PATIENCE)
        sync_store.close()
        async_store.shutdown()
    assert errors == [], errors[0]
    for written in process_ids:  # flat lists: their batch boundaries are not known here
        ledger.committed.update(uuid.UUID(i) for i in written)
    total[0] = len(ledger.committed)
    writers_done.set()
    for t in reader_threads:
        t.join(PATIENCE * 2)
        assert not t.is_alive(), "a reader did not finish"

    with contextlib.closing(chronik.connect(url)) as store:
        log = list(store.read_all())
        ids = [e.event_id for e in log]
        assert len(ids) == len(set(ids)), "an event is stored twice"
        assert set(ids) == ledger.committed, "the log and the writers disagree"
        assert not ledger.rejected & set(ids), "a refused append left events behind"
        for name, reader in seen.items():
            if reader.error is not None:
                raise reader.error
            assert [i for i, _ in reader.events] == ids, f"{name} did not see the log exactly once, in order"
            checkpoints = [c for _, c in reader.events]
            assert all(a < b for a, b in itertools.pairwise(checkpoints)), name
            assert reader.restarts >= 1, f"{name} never restarted"
        for hot in HOT:
            versions = [e.version for e in store.read_stream(hot)]
            assert versions == list(range(1, len(versions) + 1)), f"{hot} has a gap"
            assert len(versions) == sum(1 for e in log if e.stream_id == hot)
        place = {event_id: index for index, event_id in enumerate(ids)}
        for batch in ledger.batches:
            spots = [place[i] for i in batch]
            assert spots == list(range(spots[0], spots[0] + len(batch))), "a batch was interleaved"
        last: dict[str, int] = {}
        for e in log:
            assert e.version == last.get(e.stream_id, 0) + 1, f"{e.stream_id} out of order in the log"
            last[e.stream_id] = e.version
    assert len(log) > 1000
