"""Conformance: reading streams and the global log, stream info and listing."""

from __future__ import annotations

import pytest

import chronik
from chronik import Checkpoint, InvalidInputError, NewEvent
from chronik.errors import InvalidCheckpointError
from chronik.store import EventStore
from chronik.testing.conformance._base import ConformanceBase, event, new_stream


def _fill(store: EventStore, stream: str, n: int) -> None:
    store.append(stream, [NewEvent("Numbered", {"n": i}) for i in range(1, n + 1)])


def _numbers(events: list[chronik.RecordedEvent]) -> list[int]:
    return [e.version for e in events]


class ReadStreamTests(ConformanceBase):
    """read_stream: bounds, direction, limits."""

    def test_read_whole_stream_in_order(self, store: EventStore) -> None:
        stream = new_stream()
        _fill(store, stream, 5)
        events = store.read_stream(stream)
        assert _numbers(events) == [1, 2, 3, 4, 5]
        assert [e.data["n"] for e in events] == [1, 2, 3, 4, 5]

    def test_bounds_and_limits(self, store: EventStore) -> None:
        stream = new_stream()
        _fill(store, stream, 10)
        assert _numbers(store.read_stream(stream, 4)) == [4, 5, 6, 7, 8, 9, 10]
        assert _numbers(store.read_stream(stream, 4, 6)) == [4, 5, 6]
        assert _numbers(store.read_stream(stream, 0, 2)) == [1, 2]
        assert _numbers(store.read_stream(stream, 3, limit=2)) == [3, 4]
        assert _numbers(store.read_stream(stream, 9, 20)) == [9, 10]
        assert store.read_stream(stream, 11) == []
        assert store.read_stream(stream, 6, 5) == []
        assert store.read_stream(stream, limit=0) == []

    def test_backwards(self, store: EventStore) -> None:
        stream = new_stream()
        _fill(store, stream, 6)
        assert _numbers(store.read_stream(stream, backwards=True)) == [6, 5, 4, 3, 2, 1]
        assert _numbers(store.read_stream(stream, backwards=True, limit=2)) == [6, 5]
        assert _numbers(store.read_stream(stream, 2, 4, backwards=True)) == [4, 3, 2]
        assert _numbers(store.read_stream(stream, 1, 3, backwards=True, limit=1)) == [3]

    def test_missing_stream_reads_empty(self, store: EventStore) -> None:
        assert store.read_stream(new_stream()) == []

    def test_bad_read_arguments(self, store: EventStore) -> None:
        with pytest.raises(InvalidInputError):
            store.read_stream(new_stream(), -1)
        with pytest.raises(InvalidInputError):
            store.read_stream(new_stream(), 1, -3)
        with pytest.raises(InvalidInputError):
            store.read_stream(new_stream(), limit=-1)
        with pytest.raises(InvalidInputError):
            store.read_stream(new_stream(), "1")  # type: ignore[arg-type]


class ReadAllTests(ConformanceBase):
    """read_all: the global log, checkpoints, filters."""

    def test_global_log_in_checkpoint_order(self, store: EventStore) -> None:
        a, b = new_stream("a"), new_stream("b")
        store.append(a, [event(n=1)])
        store.append(b, [event(n=2), event(n=3)])
        store.append(a, [event(n=4)])
        log = list(store.read_all())
        assert [e.data["n"] for e in log] == [1, 2, 3, 4]
        checkpoints = [e.checkpoint for e in log]
        assert checkpoints == sorted(checkpoints)
        assert len(set(checkpoints)) == 4
        positions = [e.position for e in log]
        assert positions == sorted(set(positions))
        assert store.head() == checkpoints[-1]

    def test_positions_increase_within_a_stream(self, store: EventStore) -> None:
        a, b = new_stream("a"), new_stream("b")
        for i in range(5):
            store.append(a, [event(n=i)])
            store.append(b, [event(n=i), event(n=i)])
        for stream in (a, b):
            positions = [e.position for e in store.read_stream(stream)]
            assert positions == sorted(positions)
            assert len(set(positions)) == len(positions)

    def test_resume_after_any_checkpoint_exactly(self, store: EventStore) -> None:
        stream = new_stream()
        _fill(store, stream, 25)
        log = list(store.read_all())
        for i, e in enumerate(log):
            rest = list(store.read_all(after=e.checkpoint))
            assert [x.event_id for x in rest] == [x.event_id for x in log[i + 1 :]]
        assert list(store.read_all(after=store.head())) == []

    def test_checkpoints_round_trip_through_text(self, store: EventStore) -> None:
        stream = new_stream()
        _fill(store, stream, 3)
        middle = list(store.read_all())[1]
        text = str(middle.checkpoint)
        parsed = Checkpoint.parse(text)
        assert parsed == middle.checkpoint
        assert [e.version for e in store.read_all(after=parsed)] == [3]

    def test_limit_and_pages(self, store: EventStore) -> None:
        stream = new_stream()
        _fill(store, stream, 2500)
        assert len(list(store.read_all())) == 2500
        assert [e.version for e in store.read_all(limit=3)] == [1, 2, 3]
        assert list(store.read_all(limit=0)) == []
        cursor = None
        seen: list[int] = []
        while True:
            page = list(store.read_all(after=cursor, limit=700))
            if not page:
                break
            seen.extend(e.version for e in page)
            cursor = page[-1].checkpoint
        assert seen == list(range(1, 2501))

    def test_category_and_type_filters(self, store: EventStore) -> None:
        order, item, other = new_stream("order"), new_stream("item"), new_stream("other")
        store.append(order, [NewEvent("Created", {}), NewEvent("Paid", {})])
        store.append(item, [NewEvent("Created", {}), NewEvent("Moved", {})])
        store.append(other, [NewEvent("Paid", {})])
        by_cat = [(e.stream_id, e.type) for e in store.read_all(categories=["order", "other"])]
        assert by_cat == [(order, "Created"), (order, "Paid"), (other, "Paid")]
        by_type = [(e.stream_id, e.type) for e in store.read_all(types=["Created"])]
        assert by_type == [(order, "Created"), (item, "Created")]
        both = [(e.stream_id, e.type) for e in store.read_all(categories=["order"], types=["Paid"])]
        assert both == [(order, "Paid")]
        assert list(store.read_all(categories=[])) == []
        assert list(store.read_all(categories=["nobody"])) == []
        first_created = next(store.read_all(types=["Created"]))
        assert [e.stream_id for e in store.read_all(after=first_created.checkpoint, types=["Created"])] == [
            item
        ]
        with pytest.raises(InvalidInputError):
            list(store.read_all(categories="order"))

    def test_filtered_read_with_limit_across_pages(self, store: EventStore) -> None:
        a, b = new_stream("a"), new_stream("b")
        store.append(a, [NewEvent("X", {"n": i}) for i in range(1500)])
        store.append(b, [NewEvent("Y", {"n": i}) for i in range(5)])
        got = list(store.read_all(categories=["b"], limit=4))
        assert [e.data["n"] for e in got] == [0, 1, 2, 3]

    def test_checkpoint_from_another_kind_of_store_is_refused(self, store: EventStore) -> None:
        with pytest.raises(InvalidCheckpointError):
            list(store.read_all(after=Checkpoint("no-such-store", (1,))))
        with pytest.raises(InvalidCheckpointError):
            Checkpoint.parse("garbage")

    def test_empty_store(self, store: EventStore) -> None:
        assert list(store.read_all()) == []
        assert store.head() is None


class StreamInfoTests(ConformanceBase):
    """stream_info and list_streams."""

    def test_stream_info(self, store: EventStore) -> None:
        stream = new_stream("cart")
        info = store.stream_info(stream)
        assert (info.version, info.exists) == (0, False)
        store.append(stream, [event(), event()])
        info = store.stream_info(stream)
        assert (info.stream_id, info.version, info.exists, info.category) == (stream, 2, True, "cart")

    def test_list_streams_by_category_in_pages(self, store: EventStore) -> None:
        carts = sorted(f"cart-{i:03d}" for i in range(7))
        for s in [*carts, "user-1", "user-2", "cartography"]:
            store.append(s, [event()])
        store.append("cart-003", [event()])
        listed = store.list_streams(category="cart", limit=100)
        assert [i.stream_id for i in listed] == carts
        assert {i.stream_id: i.version for i in listed}["cart-003"] == 2
        pages: list[str] = []
        after = None
        while True:
            page = store.list_streams(category="cart", after=after, limit=3)
            if not page:
                break
            pages.extend(i.stream_id for i in page)
            after = page[-1].stream_id
        assert pages == carts
        everything = [i.stream_id for i in store.list_streams(limit=1000)]
        assert everything == sorted(everything)
        assert len(everything) == 10
