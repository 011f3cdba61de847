"""Conformance: subscriptions, catching up then following live, exactly once.

They run on each face whose store declares ``Subscribable`` (sync face) or
``AsyncSubscribable`` (asyncio face). The tests never assert on time: waits have generous limits that only
turn a hang into a failure.
"""

from __future__ import annotations

import asyncio
import itertools
import multiprocessing
import random
import threading
import time
import uuid
from collections.abc import Callable, Coroutine, Iterable
from typing import Any, TypeVar

import pytest

from chronik import Checkpoint, InvalidInputError, NewEvent, RecordedEvent
from chronik.errors import InvalidCheckpointError
from chronik.store import AsyncSubscribable, EventStore, Subscribable
from chronik.subscriptions import AsyncSubscription, Partition, Subscription
from chronik.testing._workers import append_worker
from chronik.testing.bridge import BlockingStore
from chronik.testing.conformance._base import ConformanceBase, event, needs, new_stream

__all__ = ["SubscriptionTests"]

T = TypeVar("T")
PATIENCE = 120.0  # seconds before a stalled subscription fails the test (never reached when correct)


class _Feed:
    """One blocking face over a sync or async subscription, for the tests."""

    def __init__(self, store: EventStore, **options: Any) -> None:
        self._bridge: BlockingStore | None = None
        self._sync: Subscription | None = None
        self._async: AsyncSubscription | None = None
        self._pending: list[RecordedEvent] = []  # read by collect() beyond its count
        self._taken: Checkpoint | None = None  # after the last event handed to the test
        if isinstance(store, BlockingStore):
            inner = store.async_store
            assert isinstance(inner, AsyncSubscribable), f"{inner!r} is not AsyncSubscribable"
            self._bridge = store
            self._async = inner.subscribe(**options)
        else:
            assert isinstance(store, Subscribable), f"{store!r} is not Subscribable"
            self._sync = store.subscribe(**options)

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        assert self._bridge is not None
        return asyncio.run_coroutine_threadsafe(coro, self._bridge._loop).result()

    def next_batch(self, timeout: float | None) -> list[RecordedEvent]:
        if self._pending:
            pending, self._pending = self._pending, []
            return pending
        if self._sync is not None:
            return self._sync.next_batch(timeout)
        assert self._async is not None
        return self._call(self._async.next_batch(timeout))

    def next(self) -> RecordedEvent | None:
        """The next event, blocking; None when the subscription was closed."""
        if self._pending:
            taken = self._pending.pop(0)
            self._taken = taken.checkpoint
            return taken
        if self._sync is not None:
            return next(self._sync, None)
        assert self._async is not None

        async def step(sub: AsyncSubscription) -> RecordedEvent | None:
            return await anext(sub, None)

        return self._call(step(self._async))

    @property
    def checkpoint(self) -> Checkpoint | None:
        """After the last event the test has taken."""
        if self._pending:
            return self._taken
        sub = self._sync if self._sync is not None else self._async
        assert sub is not None
        return sub.checkpoint

    @property
    def caught_up(self) -> bool:
        sub = self._sync if self._sync is not None else self._async
        assert sub is not None
        return sub.caught_up

    def collect(self, count: int) -> list[RecordedEvent]:
        """Exactly ``count`` events (fails if they do not come)."""
        got: list[RecordedEvent] = []
        deadline = time.monotonic() + PATIENCE
        while len(got) < count:
            assert time.monotonic() < deadline, f"only {len(got)} of {count} events arrived"
            got.extend(self.next_batch(1.0))
        got, self._pending = got[:count], got[count:]
        if got:
            self._taken = got[-1].checkpoint
        return got

    def close(self) -> None:
        if self._sync is not None:
            self._sync.close()
        elif self._async is not None:
            self._call(self._async.close())

    def __enter__(self) -> _Feed:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _ids(events: Iterable[RecordedEvent]) -> list[uuid.UUID]:
    return [e.event_id for e in events]


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
        t.join(PATIENCE)
    if errors:
        raise errors[0]


def _drain_to_head(feed: _Feed, store: EventStore) -> None:
    """Nothing more matches, yet the checkpoint reaches the head: skipped events count.

    Each ``next_batch`` may read only some pages before its timeout (a busy server),
    so poll until the checkpoint stops short of the head for a generous while.
    """
    head = store.head()
    deadline = time.monotonic() + 30
    while feed.checkpoint != head and time.monotonic() < deadline:
        assert feed.next_batch(0.05) == []
    assert feed.checkpoint == head


@needs("subscriptions")
class SubscriptionTests(ConformanceBase):
    """subscribe(): history in batches, then live, no gap and no duplicate at the seam."""

    def test_store_is_subscribable(self, store: EventStore) -> None:
        if isinstance(store, BlockingStore):
            assert isinstance(store.async_store, AsyncSubscribable)
        else:
            assert isinstance(store, Subscribable)

    def test_catch_up_in_batches_then_follow_live(self, store: EventStore) -> None:
        stream = new_stream("sub")
        store.append(stream, [event(n=i) for i in range(250)])
        with _Feed(store, batch_size=100) as feed:
            first = feed.next_batch(None)
            assert 0 < len(first) <= 100
            history = first + feed.collect(250 - len(first))
            assert [e.data["n"] for e in history] == list(range(250))
            assert feed.next_batch(0.01) == []
            assert feed.caught_up
            store.append(stream, [event(n=250), event(n=251)])
            live = feed.collect(2)
            assert [e.data["n"] for e in live] == [250, 251]
            assert feed.checkpoint == live[-1].checkpoint
        assert _ids(store.read_all()) == _ids(history + live)

    def test_iterating_blocks_for_the_next_event(self, store: EventStore) -> None:
        stream = new_stream("sub")
        store.append(stream, [event(n=0)])
        with _Feed(store) as feed:
            assert feed.next() is not None
            writer = threading.Timer(0.05, lambda: store.append(stream, [event(n=1)]))
            writer.start()
            live = feed.next()
            writer.join()
            assert live is not None
            assert live.data == {"n": 1}

    def test_no_gap_and_no_duplicate_at_the_seam(self, store: EventStore) -> None:
        # Writers keep appending while the subscription reads history, reaches the
        # head and turns live: the seam must be invisible.
        category = f"seam{uuid.uuid4().hex[:8]}"
        store.append(f"{category}-0", [event(n=i) for i in range(300)])
        stop = threading.Event()
        written = [300]

        def write() -> None:
            i = 0
            while not stop.is_set() or i < 50:
                store.append(f"{category}-{i % 4}", [event(n=i)])
                written[0] += 1
                i += 1

        writer = threading.Thread(target=write)
        with _Feed(store, categories=[category], batch_size=64) as feed:
            writer.start()
            seen = feed.collect(350)
            stop.set()
            writer.join(PATIENCE)
            seen += feed.collect(written[0] - len(seen))
            assert feed.next_batch(0.01) == []
        assert _ids(seen) == _ids(store.read_all(categories=[category]))
        checkpoints = [e.checkpoint for e in seen]
        assert all(a < b for a, b in itertools.pairwise(checkpoints))

    def test_resume_from_a_checkpoint(self, store: EventStore) -> None:
        stream = new_stream("sub")
        store.append(stream, [event(n=i) for i in range(40)])
        with _Feed(store, batch_size=7) as feed:
            head = feed.collect(15)
            checkpoint = feed.checkpoint
        assert checkpoint == head[-1].checkpoint
        saved = Checkpoint.parse(str(checkpoint))
        store.append(stream, [event(n=40)])
        with _Feed(store, after=saved) as feed:
            rest = feed.collect(26)
            assert feed.next_batch(0.01) == []
        assert [e.data["n"] for e in head + rest] == list(range(41))
        with _Feed(store, after=store.head()) as feed:
            assert feed.next_batch(0.01) == []
            store.append(stream, [event(n=41)])
            assert [e.data["n"] for e in feed.collect(1)] == [41]

    def test_filters(self, store: EventStore) -> None:
        order, item = new_stream("order"), new_stream("item")
        store.append(order, [NewEvent("Created", {}), NewEvent("Paid", {})])
        store.append(item, [NewEvent("Created", {}), NewEvent("Moved", {})])
        with _Feed(store, categories=["order"]) as feed:
            assert [(e.stream_id, e.type) for e in feed.collect(2)] == [(order, "Created"), (order, "Paid")]
        with _Feed(store, types=["Created"]) as feed:
            assert [e.stream_id for e in feed.collect(2)] == [order, item]
        with _Feed(store, categories=["item"], types=["Moved", "Paid"]) as feed:
            got = feed.collect(1)
            assert [(e.stream_id, e.type) for e in got] == [(item, "Moved")]
            store.append(order, [NewEvent("Paid", {})])
            store.append(item, [NewEvent("Moved", {})])
            assert [(e.stream_id, e.type) for e in feed.collect(1)] == [(item, "Moved")]
            # A filtered subscription's checkpoint moves past the events it skipped.
            _drain_to_head(feed, store)

    def test_filtered_checkpoint_skips_what_it_read(self, store: EventStore) -> None:
        noise, wanted = new_stream("noise"), new_stream("wanted")
        store.append(wanted, [event()])
        store.append(noise, [event(n=i) for i in range(120)])
        with _Feed(store, categories=["wanted"], batch_size=50) as feed:
            assert len(feed.collect(1)) == 1
            _drain_to_head(feed, store)

    def test_many_writers_while_subscribed(self, store: EventStore) -> None:
        category = f"many{uuid.uuid4().hex[:8]}"
        hot = f"{category}-hot"
        committed: list[list[uuid.UUID]] = []
        lock = threading.Lock()
        with _Feed(store, categories=[category], batch_size=37) as feed:

            def write(i: int) -> None:
                rng = random.Random(i)
                for _ in range(25):
                    batch = [event(writer=i) for _ in range(rng.randint(1, 3))]
                    store.append(hot if rng.random() < 0.3 else f"{category}-{i}", batch)
                    with lock:
                        committed.append([e.event_id for e in batch if e.event_id is not None])

            _run_threads(6, write)
            total = sum(len(b) for b in committed)
            seen = feed.collect(total)
            assert feed.next_batch(0.01) == []
        ids = _ids(seen)
        assert len(set(ids)) == len(ids), "an event was delivered twice"
        assert set(ids) == {i for b in committed for i in b}
        order = {event_id: index for index, event_id in enumerate(ids)}
        for batch in committed:
            places = [order[i] for i in batch]
            assert places == list(range(places[0], places[0] + len(batch))), "a batch was interleaved"
        assert all(a.checkpoint < b.checkpoint for a, b in itertools.pairwise(seen))

    def test_writer_processes_while_subscribed(self, store: EventStore, process_url: str) -> None:
        category = f"proc{uuid.uuid4().hex[:8]}"
        with _Feed(store, categories=[category]) as feed:
            # The subscription is live before the other processes write: their
            # events must wake it (cross-process wake-ups), not a later re-read.
            assert feed.next_batch(0.01) == []
            ctx = multiprocessing.get_context("spawn")
            with ctx.Pool(3) as pool:
                results = pool.starmap(append_worker, [(process_url, category, i, 20) for i in range(3)])
            committed = {uuid.UUID(i) for ids in results for i in ids}
            seen = feed.collect(len(committed))
        assert set(_ids(seen)) == committed

    def test_partitions_share_the_log_by_stream(self, store: EventStore) -> None:
        category = f"part{uuid.uuid4().hex[:8]}"
        streams = [f"{category}-{i}" for i in range(12)]
        for round_ in range(3):
            for s in streams:
                store.append(s, [event(round=round_)])
        members = [Partition(i, 3) for i in range(3)]
        seen: dict[int, list[RecordedEvent]] = {}
        for partition in members:
            owned = sum(1 for s in streams if partition.owns(s)) * 3
            with _Feed(store, categories=[category], partition=partition) as feed:
                seen[partition.index] = feed.collect(owned)
                assert feed.next_batch(0.01) == []
        owners: dict[str, set[int]] = {}
        for index, events in seen.items():
            for e in events:
                owners.setdefault(e.stream_id, set()).add(index)
            for s in {e.stream_id for e in events}:
                assert [e.data["round"] for e in events if e.stream_id == s] == [0, 1, 2]
        assert set(owners) == set(streams)
        assert all(len(o) == 1 for o in owners.values()), "a stream went to two members"

    def test_close_ends_a_blocked_iteration(self, store: EventStore) -> None:
        feed = _Feed(store)
        result: list[RecordedEvent | None] = []
        thread = threading.Thread(target=lambda: result.append(feed.next()))
        thread.start()
        # Whether the close lands before or during the wait, the iteration must end.
        time.sleep(0.05)
        feed.close()
        thread.join(PATIENCE)
        assert not thread.is_alive(), "closing did not wake the subscription"
        assert result == [None]

    def test_many_subscriptions_opened_and_closed(self, store: EventStore) -> None:
        stream = new_stream("sub")
        store.append(stream, [event()])
        for _ in range(60):
            with _Feed(store) as feed:
                assert len(feed.collect(1)) == 1
        assert store.stream_info(stream).version == 1

    def test_bad_arguments(self, store: EventStore) -> None:
        with pytest.raises(InvalidInputError):
            _Feed(store, categories="order")
        with pytest.raises(InvalidInputError):
            _Feed(store, batch_size=0)
        with pytest.raises(InvalidInputError):
            Partition(3, 3)
        with (
            _Feed(store, after=Checkpoint("no-such-store", (1,))) as feed,
            pytest.raises(InvalidCheckpointError),
        ):
            feed.next_batch(0.01)
