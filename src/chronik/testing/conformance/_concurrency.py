"""Conformance: concurrent writers, a racing reader, and (where possible) processes."""

from __future__ import annotations

import itertools
import multiprocessing
import random
import threading
import uuid
from collections.abc import Callable

import pytest

import chronik
from chronik import NO_STREAM, Checkpoint, WrongExpectedVersionError
from chronik.store import EventStore
from chronik.testing._workers import append_worker
from chronik.testing.conformance._base import ConformanceBase, OpenStore, StoreFactory, event, new_stream


class _Follower:
    """Follows the global log from checkpoints in a thread, as a subscriber would."""

    def __init__(self, store: EventStore, category: str | None = None) -> None:
        self.store = store
        self.categories = None if category is None else [category]
        self.seen: list[tuple[uuid.UUID, Checkpoint]] = []
        self.done = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        after: Checkpoint | None = None
        try:
            while True:
                finishing = self.done.is_set()
                # Every pass is a fresh read resuming from the checkpoint, exactly as a
                # restarted subscriber would resume.
                read = 0
                for e in self.store.read_all(after=after, categories=self.categories, limit=250):
                    self.seen.append((e.event_id, e.checkpoint))
                    after = e.checkpoint
                    read += 1
                if finishing and read == 0:  # writers are done and the log is drained
                    return
        except BaseException as err:
            self.error = err

    def finish(self) -> list[tuple[uuid.UUID, Checkpoint]]:
        self.done.set()
        self.thread.join(120)
        assert not self.thread.is_alive(), "reader did not finish"
        if self.error is not None:
            raise self.error
        return self.seen


def _check_exactly_once(seen: list[tuple[uuid.UUID, Checkpoint]], committed: set[uuid.UUID]) -> None:
    ids = [i for i, _ in seen]
    assert len(ids) == len(set(ids)), "the reader saw an event twice"
    missing = committed - set(ids)
    assert not missing, f"the reader never saw {len(missing)} committed events"
    assert set(ids) == committed, "the reader saw events nobody committed"
    checkpoints = [c for _, c in seen]
    assert all(a < b for a, b in itertools.pairwise(checkpoints)), "checkpoints are not strictly increasing"


def _run_threads(n: int, target: Callable[[int], None]) -> None:
    errors: list[BaseException] = []

    def wrapped(i: int) -> None:
        try:
            target(i)
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=wrapped, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    if errors:
        raise errors[0]


class ConcurrencyTests(ConformanceBase):
    """Many writers, one log: nothing lost, nothing doubled, one winner per race."""

    writer_threads = 8
    batches_per_writer = 30

    def test_racing_writers_on_one_expected_version(self, store: EventStore) -> None:
        for _ in range(15):
            stream = new_stream("race")
            barrier = threading.Barrier(2)
            outcomes: list[str] = []

            def attempt(
                i: int,
                stream: str = stream,
                barrier: threading.Barrier = barrier,
                outcomes: list[str] = outcomes,
            ) -> None:
                barrier.wait()
                try:
                    store.append(stream, [event(writer=i)], 0 if i else NO_STREAM)
                    outcomes.append("won")
                except WrongExpectedVersionError as err:
                    assert err.actual == 1
                    outcomes.append("lost")

            _run_threads(2, attempt)
            assert sorted(outcomes) == ["lost", "won"]
            assert store.stream_info(stream).version == 1

    def test_concurrent_writers_while_a_reader_follows(self, store: EventStore) -> None:
        category = f"conc{uuid.uuid4().hex[:8]}"
        hot = f"{category}-hot"
        committed: set[uuid.UUID] = set()
        batches: list[list[uuid.UUID]] = []
        lock = threading.Lock()
        follower = _Follower(store, category)

        def write(i: int) -> None:
            rng = random.Random(i)
            own = f"{category}-{i}"
            for _ in range(self.batches_per_writer):
                batch = [event(writer=i) for _ in range(rng.randint(1, 3))]
                store.append(hot if rng.random() < 0.3 else own, batch)
                ids = [e.event_id for e in batch if e.event_id is not None]
                with lock:
                    committed.update(ids)
                    batches.append(ids)

        _run_threads(self.writer_threads, write)
        seen = follower.finish()
        _check_exactly_once(seen, committed)
        # Non-interleaving: each batch sits at consecutive places in the log.
        order = {event_id: index for index, (event_id, _) in enumerate(seen)}
        for batch in batches:
            places = [order[i] for i in batch]
            assert places == list(range(places[0], places[0] + len(batch))), "a batch was interleaved"

    def test_hot_stream_with_exact_expected_versions(self, store: EventStore) -> None:
        stream = new_stream("hot")
        per_writer = 12
        conflicts = [0]
        lock = threading.Lock()

        def write(i: int) -> None:
            done = 0
            while done < per_writer:
                version = store.stream_info(stream).version
                try:
                    store.append(stream, [event(writer=i, k=done)], version)
                    done += 1
                except WrongExpectedVersionError as err:
                    assert err.actual > version
                    with lock:
                        conflicts[0] += 1

        _run_threads(6, write)
        versions = [e.version for e in store.read_stream(stream)]
        assert versions == list(range(1, 6 * per_writer + 1))
        assert store.stream_info(stream).version == 6 * per_writer

    def test_writer_processes_while_a_reader_follows(self, store: EventStore, process_url: str) -> None:
        category = f"proc{uuid.uuid4().hex[:8]}"
        follower = _Follower(store, category)
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(3) as pool:
            results = pool.starmap(append_worker, [(process_url, category, i, 40) for i in range(3)])
        committed = {uuid.UUID(i) for ids in results for i in ids}
        assert len(committed) > 3 * 40
        seen = follower.finish()
        _check_exactly_once(seen, committed)
        hot = [e.version for e in store.read_stream(f"{category}-hot")]
        assert hot == list(range(1, len(hot) + 1))

    def test_a_second_handle_sees_the_same_store(
        self, open_store: OpenStore, store_factory: StoreFactory
    ) -> None:
        # Opening the store twice (a second handle) sees the same data when the
        # factory says so; for private stores it is simply a second store.
        if not store_factory.shared:
            pytest.skip("each open of this store is a store of its own")
        first = open_store()
        second = open_store()
        stream = new_stream()
        first.append(stream, [event()])
        assert second.stream_info(stream).version == 1
        with pytest.raises(WrongExpectedVersionError):
            second.append(stream, [event()], chronik.NO_STREAM)
