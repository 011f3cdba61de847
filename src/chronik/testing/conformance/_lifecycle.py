"""Conformance: deleting streams, retaining what their metadata says, repairing events.

Three capability suites, one per power of ``chronik.store``: :class:`DeletionTests`
(``StreamDeletion``), :class:`RetentionTests` (``StreamRetention``) and
:class:`RepairTests` (``EventRepair``); ``docs/lifecycle.md`` is what they hold the
stores to. A test that also needs another power (subscriptions, snapshots) checks
for it and leaves that part out where the store lacks it.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

import chronik
from chronik import NO_STREAM, NewEvent, StreamMetadata
from chronik.cipher import StaticKeys
from chronik.errors import (
    DecodeError,
    EventValidationError,
    InvalidEventError,
    InvalidExpectedVersionError,
    InvalidInputError,
    InvalidStreamIdError,
    InvalidStreamMetadataError,
    StreamDeletedError,
    WrongExpectedVersionError,
)
from chronik.events import RecordedEvent, Snapshot
from chronik.lifecycle import REPAIRS_STREAM, STREAM_DELETED, digest
from chronik.store import EventStore
from chronik.testing.conformance._base import (
    ConformanceBase,
    Deposited,
    capabilities,
    event,
    face_of,
    native,
    needs,
    new_stream,
)
from chronik.testing.conformance._subscriptions import _Feed

__all__ = ["DeletionTests", "RepairTests", "RetentionTests"]


def _numbers(events: list[RecordedEvent]) -> list[int]:
    return [e.version for e in events]


def _race(actions: dict[str, Callable[[], object]]) -> dict[str, object]:
    """Run ``actions`` at once, each on a thread of its own: what each returned, or the
    ``WrongExpectedVersionError`` it raised."""
    outcomes: dict[str, object] = {}
    start = threading.Barrier(len(actions))

    def run(name: str, action: Callable[[], object]) -> None:
        start.wait()
        try:
            outcomes[name] = action()
        except WrongExpectedVersionError as err:
            outcomes[name] = err

    threads = [threading.Thread(target=run, args=item) for item in actions.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return outcomes


def _of(store: EventStore, stream: str) -> list[RecordedEvent]:
    """The stream's events in the global log (hidden or not)."""
    return [e for e in store.read_all() if e.stream_id == stream]


@needs("deletion")
class DeletionTests(ConformanceBase):
    """``StreamDeletion``: soft and hard deletes, what reads, the log and subscribers see."""

    def test_soft_delete_hides_the_stream(self, store: EventStore) -> None:
        face = face_of(store)
        stream = new_stream("order")
        store.append(stream, [event(n=1), event(n=2), event(n=3)])
        result = face.delete_stream(stream)
        assert (result.stream_id, result.mode, result.version, result.hard) == (stream, "soft", 4, False)
        assert result.position is not None
        assert result.checkpoint is not None
        assert store.read_stream(stream) == []
        assert store.read_stream(stream, backwards=True, limit=1) == []
        info = store.stream_info(stream)
        assert (info.version, info.exists, info.deleted) == (0, False, "soft")
        assert stream not in [s.stream_id for s in store.list_streams(category="order")]
        if "retention" in capabilities(store):
            assert face.get_stream_metadata(stream).truncate_before == 5  # the deletion event is 4

    def test_soft_deleted_events_stay_in_the_log_with_the_deletion_event(self, store: EventStore) -> None:
        face = face_of(store)
        stream = new_stream("order")
        store.append(stream, [event(n=1), event(n=2)])
        deleted = face.delete_stream(stream)
        logged = _of(store, stream)
        assert _numbers(logged) == [1, 2, 3]
        marker = logged[-1]
        assert (marker.type, marker.position, marker.checkpoint) == (
            STREAM_DELETED,
            deleted.position,
            deleted.checkpoint,
        )
        assert marker.data == {"mode": "soft", "version": 2}
        assert [e.type for e in store.read_all(categories=["order"]) if e.stream_id == stream][-1] == (
            STREAM_DELETED
        )
        assert [e for e in store.read_all(types=["Happened"]) if e.stream_id == stream] == logged[:2]

    def test_a_soft_deleted_stream_written_again_continues_after_its_deletion(
        self, store: EventStore
    ) -> None:
        face = face_of(store)
        stream = new_stream()
        store.append(stream, [event(n=1), event(n=2)])
        face.delete_stream(stream)
        with pytest.raises(WrongExpectedVersionError) as caught:
            store.append(stream, [event()], expected_version=2)
        assert (caught.value.expected, caught.value.actual) == (2, 0)
        with pytest.raises(WrongExpectedVersionError):
            store.append(stream, [event()], expected_version=chronik.STREAM_EXISTS)
        result = store.append(stream, [event(n=9)], NO_STREAM)
        assert result.version == 4  # after the deletion event, version 3
        assert [e.data["n"] for e in store.read_stream(stream)] == [9]
        info = store.stream_info(stream)
        assert (info.version, info.deleted) == (4, None)
        assert store.append(stream, [event(n=10)], expected_version=4).version == 5
        assert [e.data["n"] for e in store.read_stream(stream)] == [9, 10]
        assert stream in [s.stream_id for s in store.list_streams()]

    def test_hard_delete_removes_the_events_and_forbids_the_id(self, store: EventStore) -> None:
        face = face_of(store)
        stream = new_stream("order")
        store.append(stream, [event(n=1), event(n=2)])
        result = face.delete_stream(stream, hard=True)
        assert (result.mode, result.version, result.hard) == ("hard", 3, True)
        logged = _of(store, stream)
        assert [(e.version, e.type) for e in logged] == [(3, STREAM_DELETED)]
        assert logged[0].data == {"mode": "hard", "version": 2}
        assert store.read_stream(stream) == []
        info = store.stream_info(stream)
        assert (info.version, info.deleted) == (0, "hard")
        for expected in (chronik.ANY, NO_STREAM, 0, 3):
            with pytest.raises(StreamDeletedError) as caught:
                store.append(stream, [event()], expected)
            assert caught.value.stream_id == stream
            assert stream in str(caught.value)
        assert _numbers(_of(store, stream)) == [3]
        again = face.delete_stream(stream, hard=True)
        assert (again.mode, again.version, again.position) == ("hard", 0, None)
        assert face.delete_stream(stream).mode == "hard"
        assert _numbers(_of(store, stream)) == [3]

    def test_a_soft_deleted_stream_can_be_deleted_for_good(self, store: EventStore) -> None:
        face = face_of(store)
        stream = new_stream()
        store.append(stream, [event(), event()])
        face.delete_stream(stream)
        result = face.delete_stream(stream, hard=True)
        assert (result.mode, result.version) == ("hard", 4)
        assert [(e.version, e.type) for e in _of(store, stream)] == [(4, STREAM_DELETED)]
        with pytest.raises(StreamDeletedError):
            store.append(stream, [event()])

    def test_deleting_with_a_wrong_expected_version_deletes_nothing(self, store: EventStore) -> None:
        face = face_of(store)
        stream = new_stream()
        store.append(stream, [event(), event()])
        for hard in (False, True):
            with pytest.raises(WrongExpectedVersionError) as caught:
                face.delete_stream(stream, expected_version=1, hard=hard)
            assert (caught.value.stream_id, caught.value.expected, caught.value.actual) == (stream, 1, 2)
            with pytest.raises(WrongExpectedVersionError):
                face.delete_stream(stream, expected_version=NO_STREAM, hard=hard)
        assert _numbers(store.read_stream(stream)) == [1, 2]
        assert _numbers(_of(store, stream)) == [1, 2]
        assert store.stream_info(stream).deleted is None
        assert face.delete_stream(stream, expected_version=2).mode == "soft"

    def test_a_deleted_stream_is_at_version_0_for_expected_versions(self, store: EventStore) -> None:
        face = face_of(store)
        stream = new_stream()
        store.append(stream, [event()])
        face.delete_stream(stream)
        with pytest.raises(WrongExpectedVersionError):
            face.delete_stream(stream, expected_version=1, hard=True)
        assert face.delete_stream(stream, expected_version=NO_STREAM, hard=True).mode == "hard"

    def test_deleting_a_stream_that_never_was(self, store: EventStore) -> None:
        face = face_of(store)
        nothing = new_stream()
        result = face.delete_stream(nothing)
        assert (result.mode, result.version, result.position) == ("soft", 0, None)
        assert store.stream_info(nothing).deleted is None
        assert _of(store, nothing) == []
        assert store.append(nothing, [event()], NO_STREAM).version == 1
        forbidden = new_stream()
        assert face.delete_stream(forbidden, hard=True).version == 1
        assert store.stream_info(forbidden).deleted == "hard"
        with pytest.raises(StreamDeletedError):
            store.append(forbidden, [event()], NO_STREAM)

    def test_bad_deletes_are_refused(self, store: EventStore) -> None:
        face = face_of(store)
        with pytest.raises(InvalidStreamIdError):
            face.delete_stream("")
        with pytest.raises(InvalidExpectedVersionError):
            face.delete_stream(new_stream(), expected_version=-1)
        with pytest.raises(InvalidInputError, match="audit trail"):
            face.delete_stream(REPAIRS_STREAM)

    def test_an_append_and_a_delete_at_the_same_version_do_not_both_succeed(self, store: EventStore) -> None:
        face = face_of(store)
        for _ in range(5):
            stream = new_stream()
            store.append(stream, [event(), event()])
            outcomes = _race(
                {
                    "append": functools.partial(store.append, stream, [event()], 2),
                    "delete": functools.partial(face.delete_stream, stream, expected_version=2),
                }
            )
            failed = [name for name, outcome in outcomes.items() if isinstance(outcome, Exception)]
            assert len(outcomes) == 2, outcomes
            assert len(failed) == 1, outcomes
            info = store.stream_info(stream)
            if failed == ["append"]:
                assert (info.version, info.deleted) == (0, "soft")
            else:
                assert (info.version, info.deleted) == (3, None)

    def test_subscribers_see_the_deletion_event(self, store: EventStore) -> None:
        if "subscriptions" not in capabilities(store):
            pytest.skip("the store does not declare subscriptions")
        face = face_of(store)
        stream = new_stream("order")
        store.append(stream, [event(n=1)])
        with _Feed(store, categories=["order"]) as feed:
            assert [e.stream_id for e in feed.collect(1)] == [stream]
            face.delete_stream(stream, hard=True)
            [marker] = feed.collect(1)
            assert (marker.stream_id, marker.type, marker.data["mode"]) == (stream, STREAM_DELETED, "hard")

    def test_deletes_work_the_same_on_a_store_that_seals_payloads(self, store: EventStore) -> None:
        # The deletion event stays clear (the store reads it to know the stream's state).
        native(store).codec.protect(cipher=StaticKeys({"k1": StaticKeys.new_key()}), encrypt_metadata=True)
        face = face_of(store)
        stream = new_stream()
        store.append(stream, [event(n=1)])
        face.delete_stream(stream)
        assert store.stream_info(stream).deleted == "soft"
        with pytest.raises(WrongExpectedVersionError):
            store.append(stream, [event()], expected_version=1)
        assert store.append(stream, [event(n=2)], NO_STREAM).version == 3
        face.delete_stream(stream, hard=True)
        with pytest.raises(StreamDeletedError):
            store.append(stream, [event()])
        [tombstone] = _of(store, stream)  # the rest went with the hard delete
        assert (tombstone.type, tombstone.data["mode"]) == (STREAM_DELETED, "hard")
        assert not str(tombstone.raw_data).startswith('{"$chronik"')

    def test_a_delete_drops_the_stream_snapshot(self, store: EventStore) -> None:
        if "snapshots" not in capabilities(store):
            pytest.skip("the store does not declare snapshots")
        face = face_of(store)
        for hard in (False, True):
            stream = new_stream()
            store.append(stream, [event()])
            face.save_snapshot(Snapshot(stream, 1, "State", 1, b"{}"))
            face.delete_stream(stream, hard=hard)
            assert face.load_snapshot(stream) is None


@needs("retention")
class RetentionTests(ConformanceBase):
    """``StreamRetention``: metadata hides at once, ``scavenge`` removes what it hides."""

    def _five(self, store: EventStore) -> str:
        # One append each: a store may keep an append's events together (NATS: one
        # message), and then removes them together, when all are hidden.
        stream = new_stream()
        for i in range(1, 6):
            store.append(stream, [event(n=i)])
        return stream

    def test_metadata_is_kept_and_replaced(self, store: EventStore) -> None:
        face = face_of(store)
        stream = new_stream()
        assert face.get_stream_metadata(stream) == StreamMetadata()
        metadata = StreamMetadata(max_count=3, max_age=timedelta(days=30), truncate_before=2)
        face.set_stream_metadata(stream, metadata)  # a stream without events may have metadata
        assert face.get_stream_metadata(stream) == metadata
        assert store.stream_info(stream).version == 0
        assert stream not in [s.stream_id for s in store.list_streams()]
        face.set_stream_metadata(stream, StreamMetadata(max_count=1))
        assert face.get_stream_metadata(stream) == StreamMetadata(max_count=1)
        face.set_stream_metadata(stream, StreamMetadata())
        assert face.get_stream_metadata(stream) == StreamMetadata()

    def test_max_count_hides_all_but_the_last_events_at_once(self, store: EventStore) -> None:
        face = face_of(store)
        stream = self._five(store)
        face.set_stream_metadata(stream, StreamMetadata(max_count=2))
        assert _numbers(store.read_stream(stream)) == [4, 5]
        assert _numbers(store.read_stream(stream, backwards=True)) == [5, 4]
        assert _numbers(store.read_stream(stream, 1, 4)) == [4]
        assert _numbers(store.read_stream(stream, limit=1)) == [4]
        assert store.stream_info(stream).version == 5
        store.append(stream, [event(n=6)], expected_version=5)
        assert _numbers(store.read_stream(stream)) == [5, 6]

    def test_truncate_before_hides_the_versions_before_it(self, store: EventStore) -> None:
        face = face_of(store)
        stream = self._five(store)
        face.set_stream_metadata(stream, StreamMetadata(truncate_before=3))
        assert _numbers(store.read_stream(stream)) == [3, 4, 5]
        face.set_stream_metadata(stream, StreamMetadata(truncate_before=99))
        assert store.read_stream(stream) == []
        assert store.stream_info(stream).version == 5  # it exists: its events are hidden
        face.set_stream_metadata(stream, StreamMetadata())
        assert _numbers(store.read_stream(stream)) == [1, 2, 3, 4, 5]  # nothing was removed yet

    def test_max_age_hides_old_events(self, store: EventStore) -> None:
        face = face_of(store)
        stream = new_stream()
        store.append(stream, [event(n=1)])
        time.sleep(1.5)
        store.append(stream, [event(n=2)])
        face.set_stream_metadata(stream, StreamMetadata(max_age=timedelta(seconds=1)))
        assert [e.data["n"] for e in store.read_stream(stream)] == [2]
        face.set_stream_metadata(stream, StreamMetadata(max_age=timedelta(hours=1)))
        assert [e.data["n"] for e in store.read_stream(stream)] == [1, 2]

    def test_the_log_keeps_hidden_events_until_a_scavenge(self, store: EventStore) -> None:
        face = face_of(store)
        stream = self._five(store)
        face.set_stream_metadata(stream, StreamMetadata(max_count=2))
        assert _numbers(_of(store, stream)) == [1, 2, 3, 4, 5]
        result = face.scavenge()
        assert (result.events, result.streams) == (3, 1)
        assert _numbers(_of(store, stream)) == [4, 5]
        assert _numbers(store.read_stream(stream)) == [4, 5]
        assert store.stream_info(stream).version == 5
        again = face.scavenge()
        assert (again.events, again.streams) == (0, 0)

    def test_a_scavenge_keeps_the_last_event_of_a_stream(self, store: EventStore) -> None:
        face = face_of(store)
        stream = self._five(store)
        face.set_stream_metadata(stream, StreamMetadata(truncate_before=99))
        assert face.scavenge().events == 4
        assert _numbers(_of(store, stream)) == [5]  # it holds the stream's version
        assert store.read_stream(stream) == []
        assert store.append(stream, [event()], expected_version=5).version == 6

    def test_a_scavenge_removes_what_deletes_hide(self, store: EventStore) -> None:
        if "deletion" not in capabilities(store):
            pytest.skip("the store does not declare deletion")
        face = face_of(store)
        gone = self._five(store)
        face.delete_stream(gone)
        again = self._five(store)
        face.delete_stream(again)
        store.append(again, [event(n=7)], NO_STREAM)
        kept = self._five(store)
        result = face.scavenge()
        assert (result.events, result.streams) == (11, 2)
        assert [(e.version, e.type) for e in _of(store, gone)] == [(6, STREAM_DELETED)]
        assert _numbers(_of(store, again)) == [7]
        assert _numbers(_of(store, kept)) == [1, 2, 3, 4, 5]
        assert store.stream_info(gone).deleted == "soft"
        assert store.append(gone, [event()], NO_STREAM).version == 7

    def test_a_scavenge_of_an_empty_store_does_nothing(self, store: EventStore) -> None:
        face = face_of(store)
        result = face.scavenge()
        assert (result.events, result.streams) == (0, 0)
        assert list(store.read_all()) == []

    def test_metadata_out_of_range_names_the_field(self, store: EventStore) -> None:
        face = face_of(store)
        stream = new_stream()
        face.set_stream_metadata(stream, StreamMetadata(max_count=5))
        bad: list[tuple[str, Any]] = [
            ("max_count", StreamMetadata(max_count=0)),
            ("max_count", StreamMetadata(max_count=True)),
            ("max_count", StreamMetadata(max_count=2**63)),
            ("truncate_before", StreamMetadata(truncate_before=-1)),
            ("truncate_before", StreamMetadata(truncate_before="3")),  # type: ignore[arg-type]
            ("max_age", StreamMetadata(max_age=timedelta(0))),
            ("max_age", StreamMetadata(max_age=timedelta(seconds=-5))),
            ("max_age", StreamMetadata(max_age=30)),  # type: ignore[arg-type]
        ]
        for field, metadata in bad:
            with pytest.raises(InvalidStreamMetadataError) as caught:
                face.set_stream_metadata(stream, metadata)
            assert caught.value.field == field
            assert field in str(caught.value)
        with pytest.raises(InvalidInputError):
            face.set_stream_metadata(stream, {"max_count": 3})
        with pytest.raises(InvalidStreamIdError):
            face.set_stream_metadata("", StreamMetadata())
        assert face.get_stream_metadata(stream) == StreamMetadata(max_count=5)

    def test_the_audit_trail_and_hard_deleted_streams_take_no_metadata(self, store: EventStore) -> None:
        face = face_of(store)
        with pytest.raises(InvalidInputError, match="audit trail"):
            face.set_stream_metadata(REPAIRS_STREAM, StreamMetadata(max_count=1))
        if "deletion" in capabilities(store):
            stream = new_stream()
            face.delete_stream(stream, hard=True)
            with pytest.raises(StreamDeletedError):
                face.set_stream_metadata(stream, StreamMetadata(max_count=1))


def _undecodable(store: EventStore, stream: str) -> None:
    """Two events of ``Deposited``; the second was stored by "newer code" (schema version
    2, which this registry does not know), so it does not decode here."""
    store.append(
        stream,
        [Deposited("acc", 1), NewEvent("Deposited", {"cents": 250}, {"user": "old"}, schema_version=2)],
    )


@needs("repair")
class RepairTests(ConformanceBase):
    """``EventRepair``: replacing an event in place and archiving a stream, audited."""

    def test_an_event_that_does_not_decode_is_replaced_in_place(self, store: EventStore) -> None:
        face = face_of(store)
        stream = new_stream()
        _undecodable(store, stream)
        before = store.read_stream(stream)[1]
        with pytest.raises(DecodeError):
            before.data  # noqa: B018
        record = face.repair_event(
            stream, 2, Deposited("acc", 250, "repaired"), reason="written by a bad release", operator="grace"
        )
        after = store.read_stream(stream)[1]
        assert after.data == Deposited("acc", 250, "repaired")
        assert (after.version, after.position, after.event_id, after.checkpoint) == (
            before.version,
            before.position,
            before.event_id,
            before.checkpoint,
        )
        assert after.recorded_at == before.recorded_at
        assert after.metadata == {"user": "old"}  # kept: the replacement brought none
        assert (record.action, record.stream_id, record.version, record.position) == (
            "replace",
            stream,
            2,
            before.position,
        )
        assert (record.operator, record.reason, record.event_id) == (
            "grace",
            "written by a bad release",
            before.event_id,
        )
        assert (record.old_type, record.old_schema_version, record.new_schema_version) == ("Deposited", 2, 1)
        assert record.digest == digest([before.raw_data, before.raw_metadata])
        assert record.new_digest == digest([after.raw_data, after.raw_metadata])
        [audit] = store.read_stream(REPAIRS_STREAM)
        assert audit.type == "$EventReplaced"
        assert audit.data["digest"] == record.digest
        assert audit.data["operator"] == "grace"
        assert audit.data["reason"] == "written by a bad release"
        assert audit.data["position"] == before.position
        assert audit.metadata == {"user": "grace"}
        assert [e.event_id for e in store.read_all() if e.stream_id == stream] == [
            e.event_id for e in store.read_stream(stream)
        ]
        logged = next(e for e in store.read_all() if e.event_id == before.event_id)
        assert logged.data == Deposited("acc", 250, "repaired")

    def test_a_replacement_may_bring_its_own_metadata(self, store: EventStore) -> None:
        face = face_of(store)
        stream = new_stream()
        _undecodable(store, stream)
        face.repair_event(
            stream,
            2,
            NewEvent("Deposited", {"account": "acc", "amount": 3}, {"fixed": True}),
            reason="r",
            operator="o",
        )
        assert store.read_stream(stream)[1].metadata == {"fixed": True}

    def test_bad_repairs_change_nothing(self, store: EventStore) -> None:
        face = face_of(store)
        stream = new_stream()
        _undecodable(store, stream)
        original = store.read_stream(stream)[1]
        fine = Deposited("acc", 1)
        with pytest.raises(EventValidationError):
            face.repair_event(stream, 2, NewEvent("Deposited", {"amount": "lots"}), reason="r", operator="o")
        with pytest.raises(InvalidInputError, match="no stored event"):
            face.repair_event(stream, 3, fine, reason="r", operator="o")
        with pytest.raises(InvalidInputError, match="no stored event"):
            face.repair_event(new_stream(), 1, fine, reason="r", operator="o")
        with pytest.raises(InvalidInputError):
            face.repair_event(stream, 0, fine, reason="r", operator="o")
        with pytest.raises(InvalidInputError, match="reason"):
            face.repair_event(stream, 2, fine, reason=" ", operator="o")
        with pytest.raises(InvalidInputError, match="operator"):
            face.repair_event(stream, 2, fine, reason="r", operator="")
        with pytest.raises(InvalidEventError, match="keeps its id"):
            face.repair_event(
                stream,
                2,
                NewEvent("Deposited", {"account": "a", "amount": 1}, event_id=chronik.uuid7()),
                reason="r",
                operator="o",
            )
        with pytest.raises(InvalidInputError, match="audit trail"):
            face.repair_event(REPAIRS_STREAM, 1, fine, reason="r", operator="o")
        if "deletion" in capabilities(store):
            gone = new_stream()
            store.append(gone, [event()])
            face.delete_stream(gone)
            with pytest.raises(InvalidInputError, match="chronik's own"):
                face.repair_event(gone, 2, fine, reason="r", operator="o")
        after = store.read_stream(stream)[1]
        assert (after.raw_data, after.type, after.schema_version) == (
            original.raw_data,
            original.type,
            original.schema_version,
        )
        assert store.read_stream(REPAIRS_STREAM) == []

    def test_a_repair_drops_the_stream_snapshot(self, store: EventStore) -> None:
        if "snapshots" not in capabilities(store):
            pytest.skip("the store does not declare snapshots")
        face = face_of(store)
        stream = new_stream()
        _undecodable(store, stream)
        face.save_snapshot(Snapshot(stream, 2, "State", 1, b"{}"))
        face.repair_event(stream, 2, Deposited("acc", 2), reason="r", operator="o")
        assert face.load_snapshot(stream) is None

    def test_an_archived_stream_is_set_aside_and_kept(self, store: EventStore) -> None:
        face = face_of(store)
        stream = new_stream("order")
        _undecodable(store, stream)
        raw = store.read_stream(stream)
        with pytest.raises(WrongExpectedVersionError):
            face.archive_stream(stream, expected_version=1, reason="r", operator="o")
        record = face.archive_stream(stream, expected_version=2, reason="cannot be loaded", operator="ada")
        assert (record.action, record.stream_id, record.version, record.position, record.events) == (
            "archive",
            stream,
            2,
            raw[-1].position,
            2,
        )
        expected = digest([p for e in raw for p in (e.type, e.raw_data, e.raw_metadata)])
        assert record.digest == expected
        info = store.stream_info(stream)
        assert (info.version, info.deleted) == (0, "archived")
        assert store.read_stream(stream) == []
        with pytest.raises(StreamDeletedError) as caught:
            store.append(stream, [event()], NO_STREAM)
        assert caught.value.mode == "archived"
        assert "archived" in str(caught.value)
        [audit] = store.read_stream(REPAIRS_STREAM)
        assert (audit.type, audit.data["reason"], audit.data["operator"]) == (
            "$StreamArchived",
            "cannot be loaded",
            "ada",
        )
        marker = _of(store, stream)[-1]
        assert (marker.type, marker.data["mode"]) == (STREAM_DELETED, "archived")
        if "retention" in capabilities(store):
            face.scavenge()
            assert _numbers(_of(store, stream)) == [1, 2, 3]  # the evidence stays
        # An archived event can still be repaired; then the stream can be deleted for good.
        face.repair_event(stream, 2, Deposited("acc", 250), reason="r", operator="o")
        with pytest.raises(InvalidInputError, match="archived already"):
            face.archive_stream(stream, reason="r", operator="o")
        if "deletion" in capabilities(store):
            assert face.delete_stream(stream, hard=True).mode == "hard"
            with pytest.raises(StreamDeletedError):
                face.archive_stream(stream, reason="r", operator="o")

    def test_archiving_nothing_is_refused(self, store: EventStore) -> None:
        face = face_of(store)
        with pytest.raises(InvalidInputError, match="no events"):
            face.archive_stream(new_stream(), reason="r", operator="o")
        with pytest.raises(InvalidInputError):
            face.archive_stream(REPAIRS_STREAM, reason="r", operator="o")
        with pytest.raises(InvalidInputError, match="reason"):
            face.archive_stream(new_stream(), reason="", operator="o")
        assert store.read_stream(REPAIRS_STREAM) == []
