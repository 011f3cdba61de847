"""Subscriptions: the cursor's decisions, partitions, and the memory store's hooks."""

from __future__ import annotations

import asyncio
import threading

import pytest

import chronik
from chronik import Checkpoint, ConfigurationError, InvalidInputError, NewEvent
from chronik.store import LogPage, LogReader, Subscribable
from chronik.stores.memory import MemoryEventStore
from chronik.subscriptions import Partition, _Cursor, stable_hash, subscribe


def _memory() -> MemoryEventStore:
    store = chronik.connect("memory://")
    assert isinstance(store, MemoryEventStore)
    return store


def _page(
    store: MemoryEventStore, after: Checkpoint | None, size: int, **filters: tuple[str, ...]
) -> LogPage:
    reader = store.log_reader()
    try:
        return reader.read_page(after, size, filters.get("categories"), filters.get("types"))
    finally:
        reader.close()


def test_stable_hash_is_the_same_everywhere() -> None:
    # BLAKE2b-64 of the UTF-8 bytes: a value other languages can compute too.
    assert stable_hash("order-42") == stable_hash("order-42")
    assert stable_hash("order-42") == 0x94AEB5761A06C9F3
    assert Partition(stable_hash("order-42") % 3, 3).owns("order-42")


def test_partition_validates_and_splits() -> None:
    with pytest.raises(InvalidInputError):
        Partition(0, 0)
    with pytest.raises(InvalidInputError):
        Partition(-1, 2)
    with pytest.raises(InvalidInputError):
        Partition(True, 2)
    members = [Partition(i, 4) for i in range(4)]
    for n in range(200):
        assert sum(m.owns(f"s-{n}") for m in members) == 1
    assert str(Partition(1, 4)) == "1of4"


def test_cursor_moves_past_filtered_events_and_hands_out_in_order() -> None:
    store = _memory()
    store.append("a-1", [NewEvent("X", {"n": i}) for i in range(5)])
    cursor = _Cursor(None, None, None, None, batch_size=2)
    page = _page(store, None, 2)
    assert cursor.accept(page)
    assert cursor.after == page.checkpoint
    assert cursor.delivered is None  # nothing handed out yet
    first = cursor.pop()
    assert cursor.delivered == first.checkpoint
    second = cursor.pop()
    assert cursor.delivered == second.checkpoint == cursor.after
    # A page of nothing moves nothing.
    empty = LogPage([], cursor.after)
    assert not cursor.accept(empty)
    filtered = _page(store, cursor.after, 10, categories=("other",))
    assert filtered.events == []
    assert cursor.accept(filtered)
    assert cursor.delivered == cursor.after == store.head()


def test_memory_log_reader_pages_and_counts() -> None:
    store = _memory()
    store.append("a-1", [NewEvent("X", {}), NewEvent("Y", {})])
    store.append("b-1", [NewEvent("X", {})])
    reader = store.log_reader()
    assert isinstance(reader, LogReader)
    assert isinstance(store, Subscribable)
    page = reader.read_page(None, 2, None, ("X",))
    assert [e.stream_id for e in page.events] == ["a-1"]
    assert page.checkpoint == Checkpoint("memory", (2,))
    assert reader.count_events(None, None, ("X",)) == 2
    assert reader.count_events(Checkpoint("memory", (1,)), ("b",), None) == 1
    assert reader.wait_for_events(Checkpoint("memory", (1,)), 0.0)
    assert not reader.wait_for_events(store.head(), 0.0)
    reader.close()
    assert reader.read_page(None, 10, None, None).events == []


def test_closing_the_store_stops_a_waiting_subscription() -> None:
    store = _memory()
    subscription = store.subscribe()
    errors: list[BaseException] = []

    def follow() -> None:
        try:
            next(subscription)
        except BaseException as err:
            errors.append(err)

    thread = threading.Thread(target=follow)
    thread.start()
    store.close()
    thread.join(60)
    assert not thread.is_alive()
    assert len(errors) == 1
    assert isinstance(errors[0], chronik.StoreClosedError)


def test_subscribe_refuses_a_store_that_cannot_follow_the_log() -> None:
    with pytest.raises(ConfigurationError, match="does not support subscriptions"):
        subscribe(object())


def test_async_subscription_over_memory() -> None:
    async def main() -> list[int]:
        store = chronik.connect_async("memory://")
        await store.append("a-1", [NewEvent("X", {"n": 0})])
        got: list[int] = []
        async with store.subscribe() as subscription:
            async for event in subscription:
                got.append(event.data["n"])
                if len(got) == 1:
                    await store.append("a-1", [NewEvent("X", {"n": 1})])
                else:
                    break
        await store.close()
        return got

    assert asyncio.run(main()) == [0, 1]
