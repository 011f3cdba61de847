"""Conformance: appending, expected versions, idempotency, atomicity, bad input."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import chronik
import chronik.errors
import chronik.events
import chronik.store
from chronik import (
    ANY,
    NO_STREAM,
    STREAM_EXISTS,
    DuplicateEventError,
    InvalidInputError,
    NewEvent,
    StoreClosedError,
    StreamWrite,
    WrongExpectedVersionError,
)
from chronik.errors import (
    EventEncodeError,
    EventTooLargeError,
    EventValidationError,
    InvalidEventError,
    InvalidExpectedVersionError,
    InvalidStreamIdError,
    UnregisteredEventError,
)
from chronik.events import AppendResult
from chronik.store import EventStore
from chronik.testing.conformance._base import (
    ConformanceBase,
    Deposited,
    OpenStore,
    Renamed,
    event,
    new_stream,
)

# (stream exists at version 2?, expected version, accepted?)
EXPECTED_MATRIX: list[tuple[bool, Any, bool]] = [
    (False, ANY, True),
    (True, ANY, True),
    (False, NO_STREAM, True),
    (True, NO_STREAM, False),
    (False, STREAM_EXISTS, False),
    (True, STREAM_EXISTS, True),
    (False, 0, True),
    (True, 0, False),
    (False, 2, False),
    (True, 2, True),
    (True, 1, False),
    (True, 3, False),
    (False, 1, False),
]


def _count(store: EventStore) -> int:
    return sum(1 for _ in store.read_all())


class AppendTests(ConformanceBase):
    """Appends: versions, positions, what is read back."""

    def test_append_returns_version_and_position_of_last_event(self, store: EventStore) -> None:
        stream = new_stream()
        first = store.append(stream, [event(), event()], NO_STREAM)
        assert first.stream_id == stream
        assert first.version == 2
        second = store.append(stream, [event()], 2)
        assert second.version == 3
        assert second.next_expected_version == 3
        assert second.position > first.position
        assert second.checkpoint > first.checkpoint
        events = store.read_stream(stream)
        assert [e.version for e in events] == [1, 2, 3]
        assert events[-1].position == second.position
        assert events[1].position == first.position

    def test_recorded_event_carries_what_was_appended(self, store: EventStore) -> None:
        stream = new_stream("order")
        event_id = chronik.uuid7()
        before = datetime.now(UTC) - timedelta(seconds=5)
        meta = {"correlation_id": "c-1", "causation_id": "k-9", "user": "ada", "custom": [1, 2]}
        store.append(stream, [NewEvent("OrderCreated", {"id": 42, "lines": ["x"]}, meta, event_id, 3)])
        [recorded] = store.read_stream(stream)
        assert recorded.stream_id == stream
        assert recorded.category == "order"
        assert recorded.version == 1
        assert recorded.event_id == event_id
        assert recorded.type == "OrderCreated"
        assert recorded.schema_version == 3
        assert recorded.data == {"id": 42, "lines": ["x"]}
        assert recorded.metadata == meta
        assert recorded.recorded_at.tzinfo is not None
        assert before <= recorded.recorded_at <= datetime.now(UTC) + timedelta(seconds=5)
        assert recorded.checkpoint == next(e for e in store.read_all() if e.event_id == event_id).checkpoint

    @pytest.mark.parametrize(
        "meta",
        [
            {"when": datetime(2024, 5, 1, 12, tzinfo=UTC)},
            {"id": uuid.UUID(int=1)},
            {"nested": {"pair": (1, 2)}},
            {"by_key": {1: "one"}},
        ],
        ids=["datetime", "uuid", "tuple", "int-key"],
    )
    def test_metadata_that_would_not_read_back_as_given_is_refused(
        self, store: EventStore, meta: dict[str, Any]
    ) -> None:
        # JSON would hand back a str, a list or a str key: not what was appended.
        with pytest.raises(EventEncodeError, match="would read back as"):
            store.append(new_stream(), [NewEvent("X", {}, meta)])
        assert store.head() is None

    def test_event_ids_are_generated_as_uuid7(self, store: EventStore) -> None:
        stream = new_stream()
        store.append(stream, [NewEvent("A", {}), NewEvent("B", {})])
        ids = [e.event_id for e in store.read_stream(stream)]
        assert all(isinstance(i, uuid.UUID) and i.version == 7 for i in ids)
        assert ids[0] != ids[1]

    def test_typed_events_round_trip(self, store: EventStore) -> None:
        stream = new_stream("account")
        store.append(stream, [Deposited("a-1", 10, "first"), Renamed("savings")])
        read = store.read_stream(stream)
        assert [e.type for e in read] == ["Deposited", "Renamed"]
        assert read[0].data == Deposited("a-1", 10, "first")
        assert read[1].data == Renamed("savings")
        assert read[0].schema_version == 1

    def test_unregistered_type_reads_back_as_json(self, store: EventStore) -> None:
        stream = new_stream()
        store.append(stream, [NewEvent("SomethingElse", {"k": [1, "two", None]})])
        assert store.read_stream(stream)[0].data == {"k": [1, "two", None]}

    def test_strict_registry_refuses_unknown_types_on_read(self, open_store: OpenStore) -> None:
        store = open_store(registry=chronik.EventRegistry(strict=True))
        stream = new_stream()
        store.append(stream, [NewEvent("Unknown", {"a": 1})])
        [recorded] = store.read_stream(stream)
        with pytest.raises(chronik.errors.UnknownEventTypeError, match="Unknown"):
            _ = recorded.data

    def test_unregistered_object_is_refused(self, store: EventStore) -> None:
        class NotRegistered:
            pass

        stream = new_stream()
        with pytest.raises(UnregisteredEventError, match="NotRegistered"):
            store.append(stream, [event(), NotRegistered()])
        assert store.stream_info(stream).version == 0

    def test_a_payload_that_does_not_fit_its_registered_type_is_refused(self, store: EventStore) -> None:
        # A Struct does not check its fields' types when built, and a NewEvent's data
        # is free JSON: both are checked against the registered type before writing.
        stream = new_stream()
        wrong_typed = Deposited("acc", "ten")  # type: ignore[arg-type]
        wrong_raw = NewEvent("Deposited", {"account": 7, "amount": 10})
        for bad in (wrong_typed, wrong_raw):
            with pytest.raises(EventValidationError, match=r"'Deposited'.*\$\.(amount|account)") as caught:
                store.append(stream, [event(), bad])
            assert (caught.value.stream_id, caught.value.type) == (stream, "Deposited")
        assert store.stream_info(stream).version == 0
        store.append(stream, [NewEvent("Deposited", {"account": "acc", "amount": 10})])
        store.append(stream, [NewEvent("Unregistered", {"account": 7})])  # free-form
        assert [e.data for e in store.read_stream(stream)] == [Deposited("acc", 10), {"account": 7}]

    def test_unencodable_payload_is_refused_and_nothing_written(self, store: EventStore) -> None:
        stream = new_stream()
        with pytest.raises(EventEncodeError, match="cannot be encoded"):
            store.append(stream, [event(), NewEvent("Bad", {"x": object()})])
        assert store.read_stream(stream) == []

    def test_event_over_size_limit_is_refused(self, open_store: OpenStore) -> None:
        store = open_store(max_event_size=1000)
        stream = new_stream()
        store.append(stream, [NewEvent("Fits", {"s": "x" * 900})])
        with pytest.raises(EventTooLargeError) as info:
            store.append(stream, [event(), NewEvent("Big", {"s": "x" * 1000})])
        assert info.value.limit == 1000
        assert info.value.type == "Big"
        assert store.stream_info(stream).version == 1

    def test_default_size_limit_is_one_mebibyte(self, store: EventStore) -> None:
        stream = new_stream()
        body = "é" * (1024 * 1024 // 2 - 100)  # about 1 MiB of UTF-8
        store.append(stream, [NewEvent("Large", {"s": body})])
        assert store.read_stream(stream)[0].data == {"s": body}
        with pytest.raises(EventTooLargeError):
            store.append(stream, [NewEvent("TooLarge", {"s": "x" * (1024 * 1024)})])

    def test_unicode_round_trips(self, store: EventStore) -> None:
        stream = f"unicode-日本語-{uuid.uuid4().hex[:6]}-ñ-🙂"
        data = {"text": "zażółć gęślą jaźń — 漢字 — 🙂🚀 — e\u0301", "nul": "a\u0000b", "rtl": "עברית"}
        store.append(stream, [NewEvent("Unicode ✓", data, {"user": "Zoë"})])
        [recorded] = store.read_stream(stream)
        assert recorded.data == data
        assert recorded.type == "Unicode ✓"
        assert recorded.metadata == {"user": "Zoë"}
        assert store.stream_info(stream).version == 1
        assert [e.stream_id for e in store.read_all(categories=["unicode"])] == [stream]

    @pytest.mark.parametrize(
        "bad",
        ["", " ", "   ", "x" * 201, "line\nbreak", "tab\there", "nul\x00", "a\ud800", None, 42, b"bytes"],
        ids=[
            "empty",
            "space",
            "spaces",
            "too-long",
            "newline",
            "tab",
            "nul",
            "surrogate",
            "none",
            "int",
            "bytes",
        ],
    )
    def test_invalid_stream_ids_are_refused(self, store: EventStore, bad: Any) -> None:
        with pytest.raises(InvalidStreamIdError):
            store.append(bad, [event()])
        with pytest.raises(InvalidStreamIdError):
            store.read_stream(bad)
        assert store.head() is None

    def test_longest_stream_id_is_accepted(self, store: EventStore) -> None:
        stream = "s" * 200
        store.append(stream, [event()])
        assert store.stream_info(stream).version == 1

    @pytest.mark.parametrize("bad", [-1, "1", 1.0, True, None, "ANY"])
    def test_invalid_expected_versions_are_refused(self, store: EventStore, bad: Any) -> None:
        with pytest.raises(InvalidExpectedVersionError):
            store.append(new_stream(), [event()], bad)
        assert store.head() is None

    @pytest.mark.parametrize(
        ("exists", "expected", "accepted"), EXPECTED_MATRIX, ids=[f"{e}-{x!r}" for e, x, _ in EXPECTED_MATRIX]
    )
    def test_expected_version_matrix(
        self, store: EventStore, exists: bool, expected: Any, accepted: bool
    ) -> None:
        stream = new_stream()
        if exists:
            store.append(stream, [event(), event()])
        actual = 2 if exists else 0
        before = _count(store)
        if accepted:
            result = store.append(stream, [event()], expected)
            assert result.version == actual + 1
            assert _count(store) == before + 1
        else:
            with pytest.raises(WrongExpectedVersionError) as info:
                store.append(stream, [event()], expected)
            assert info.value.stream_id == stream
            assert info.value.expected == expected
            assert info.value.actual == actual
            assert _count(store) == before
            assert store.stream_info(stream).version == actual

    def test_empty_batch_is_refused(self, store: EventStore) -> None:
        with pytest.raises(InvalidEventError, match="at least one event"):
            store.append(new_stream(), [])

    def test_events_must_be_a_list(self, store: EventStore) -> None:
        with pytest.raises(InvalidEventError):
            store.append(new_stream(), event())  # type: ignore[arg-type]

    def test_closed_store_refuses_use(self, open_store: OpenStore) -> None:
        store = open_store()
        store.close()
        with pytest.raises((StoreClosedError, chronik.PersistenceError)):
            store.append(new_stream(), [event()])


class IdempotencyTests(ConformanceBase):
    """Re-sending the same events succeeds without writing them twice."""

    def test_resending_a_batch_writes_nothing(self, store: EventStore) -> None:
        stream = new_stream()
        batch = [event(), event()]
        first = store.append(stream, batch, NO_STREAM)
        again = store.append(stream, batch, NO_STREAM)
        assert again == first
        assert len(store.read_stream(stream)) == 2
        assert _count(store) == 2

    def test_resending_after_the_stream_moved_on(self, store: EventStore) -> None:
        stream = new_stream()
        batch = [event()]
        first = store.append(stream, batch, 0)
        store.append(stream, [event(), event()], 1)
        assert store.append(stream, batch, 0) == first
        assert store.append(stream, batch, ANY) == first
        assert store.append(stream, batch, NO_STREAM) == first
        assert store.stream_info(stream).version == 3

    def test_resend_with_an_expected_version_that_never_held_is_refused(self, store: EventStore) -> None:
        stream = new_stream()
        batch = [event()]
        store.append(stream, [event()])
        store.append(stream, batch, 1)
        with pytest.raises((DuplicateEventError, WrongExpectedVersionError)):
            store.append(stream, batch, 0)

    def test_event_id_stored_in_another_stream_is_refused(self, store: EventStore) -> None:
        taken = event()
        store.append(new_stream(), [taken])
        other = new_stream()
        with pytest.raises(DuplicateEventError) as info:
            store.append(other, [event(), taken])
        assert info.value.event_id == taken.event_id
        assert store.stream_info(other).version == 0
        assert _count(store) == 1

    def test_partly_stored_batch_is_refused(self, store: EventStore) -> None:
        stream = new_stream()
        stored = event()
        store.append(stream, [stored])
        with pytest.raises(DuplicateEventError):
            store.append(stream, [stored, event()])
        assert store.stream_info(stream).version == 1

    def test_same_id_twice_in_one_batch_is_refused(self, store: EventStore) -> None:
        e = event()
        with pytest.raises(InvalidEventError, match="repeats"):
            store.append(new_stream(), [e, e])
        assert store.head() is None


class AtomicityTests(ConformanceBase):
    """Batches and multi-stream appends commit whole or not at all."""

    def _several(self, store: EventStore, writes: list[StreamWrite]) -> list[AppendResult] | None:
        """``append_many(writes)`` over several streams, where the store takes several;
        elsewhere (``append_many_streams = "one"``) it checks the refusal and gives None."""
        if self.append_many_streams == "several":
            return store.append_many(writes)
        assert self.append_many_streams == "one", self.append_many_streams
        before = _count(store)
        versions = [store.stream_info(w.stream_id).version for w in writes]
        with pytest.raises(InvalidInputError, match="atomic"):
            store.append_many(writes)
        assert _count(store) == before
        assert [store.stream_info(w.stream_id).version for w in writes] == versions
        return None

    def test_append_many_commits_every_stream(self, store: EventStore) -> None:
        a, b = new_stream("a"), new_stream("b")
        store.append(b, [event()])
        results = self._several(
            store, [StreamWrite(a, [event(), event()], NO_STREAM), StreamWrite(b, [event()], 1)]
        )
        if results is None:  # one stream per call: that one commits whole
            [result] = store.append_many([StreamWrite(a, [event(), event()], NO_STREAM)])
            assert (result.stream_id, result.version) == (a, 2)
            assert store.stream_info(a).version == 2
            return
        assert [(r.stream_id, r.version) for r in results] == [(a, 2), (b, 2)]
        assert store.stream_info(a).version == 2
        assert store.stream_info(b).version == 2
        positions = [e.position for e in store.read_all()]
        assert positions == sorted(positions)

    def test_append_many_with_one_conflict_writes_nothing(self, store: EventStore) -> None:
        a, b = new_stream("a"), new_stream("b")
        store.append(b, [event()])
        before = _count(store)
        if self.append_many_streams == "one":
            self._several(store, [StreamWrite(a, [event()], NO_STREAM), StreamWrite(b, [event()], NO_STREAM)])
            with pytest.raises(WrongExpectedVersionError) as info:
                store.append_many([StreamWrite(b, [event()], NO_STREAM)])
        else:
            with pytest.raises(WrongExpectedVersionError) as info:
                store.append_many(
                    [StreamWrite(a, [event()], NO_STREAM), StreamWrite(b, [event()], NO_STREAM)]
                )
        assert info.value.stream_id == b
        assert info.value.actual == 1
        assert store.stream_info(a).version == 0
        assert _count(store) == before

    def test_append_many_with_bad_input_writes_nothing(self, store: EventStore) -> None:
        a, b = new_stream("a"), new_stream("b")
        with pytest.raises(EventEncodeError):
            store.append_many([StreamWrite(a, [event()]), StreamWrite(b, [NewEvent("X", {1j: 1})])])
        with pytest.raises(InvalidStreamIdError):
            store.append_many([StreamWrite(a, [event()]), StreamWrite("", [event()])])
        with pytest.raises(InvalidInputError, match="twice"):
            store.append_many([StreamWrite(a, [event()]), StreamWrite(a, [event()])])
        with pytest.raises(InvalidInputError):
            store.append_many([])
        assert store.head() is None

    def test_append_many_duplicate_elsewhere_writes_nothing(self, store: EventStore) -> None:
        taken = event()
        store.append(new_stream(), [taken])
        a, b = new_stream("a"), new_stream("b")
        if self.append_many_streams == "one":
            self._several(store, [StreamWrite(a, [event()]), StreamWrite(b, [taken])])
            with pytest.raises(DuplicateEventError):
                store.append_many([StreamWrite(b, [event(), taken])])
        else:
            with pytest.raises(DuplicateEventError):
                store.append_many([StreamWrite(a, [event()]), StreamWrite(b, [taken])])
        assert store.stream_info(a).version == 0
        assert store.stream_info(b).version == 0
        assert _count(store) == 1

    def test_append_many_resend_is_idempotent(self, store: EventStore) -> None:
        writes = [StreamWrite(new_stream("a"), [event()], NO_STREAM), StreamWrite(new_stream("b"), [event()])]
        if self.append_many_streams == "one":
            self._several(store, writes)
            writes = writes[:1]
        first = store.append_many(writes)
        assert store.append_many(writes) == first
        assert _count(store) == len(writes)

    def test_batch_positions_are_contiguous_in_the_log(self, store: EventStore) -> None:
        a, b = new_stream("a"), new_stream("b")
        store.append(a, [event()])
        store.append(b, [event(), event(), event()])
        store.append(a, [event()])
        log = [e.stream_id for e in store.read_all()]
        assert log == [a, b, b, b, a]
