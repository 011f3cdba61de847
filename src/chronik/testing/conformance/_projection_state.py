"""Conformance: projection state and dead letters (``ProjectionStateStore`` and twin), and
the heartbeats of the runners that run projections (``RunnerHeartbeats``), which every
store that keeps projection state keeps too."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest

from chronik import Checkpoint, InvalidInputError, NewEvent
from chronik.errors import InvalidCheckpointError
from chronik.events import DeadLetter, FailedEvent, ProjectionState, Recovery, Retrying, RunnerHeartbeat
from chronik.store import EventStore
from chronik.testing.conformance._base import ConformanceBase, capabilities, face_of, needs, new_stream
from chronik.testing.conformance._transactions import letter

__all__ = ["ProjectionStateTests", "heartbeat"]

_T0 = datetime(2030, 1, 1, 12, 0, 0, 123456, tzinfo=UTC)


def heartbeat(runner_id: str, name: str = "orders", **fields: Any) -> RunnerHeartbeat:
    """A runner's heartbeat record, with plausible fields (``fields`` replace them)."""
    values: dict[str, Any] = {
        "runner_id": runner_id,
        "name": name,
        "version": 1,
        "kind": "projection",
        "partition": None,
        "host": "worker-1",
        "pid": 4242,
        "state": "caught_up",
        "since": _T0,
        "heard_at": _T0 + timedelta(seconds=30),
        "interval": 5.0,
        "started_at": _T0 - timedelta(minutes=1),
    }
    values.update(fields)
    return RunnerHeartbeat(**values)


@needs("projection_state")
class ProjectionStateTests(ConformanceBase):
    """Where projections keep their state and park the events they could not take."""

    def test_states_saved_replaced_and_listed_in_order(self, store: EventStore) -> None:
        face = face_of(store)
        stream = new_stream("acc")
        store.append(stream, [NewEvent("Added", {"n": 1})])
        [one] = store.read_stream(stream)
        when = datetime(2030, 1, 1, 12, tzinfo=UTC)
        failed = ProjectionState(
            "b", 1, "failed", failure=FailedEvent.of(one, KeyError("x"), 4), updated_at=when
        )
        face.save_projection_state(ProjectionState("b", 2, "building", updated_at=when))
        face.save_projection_state(failed)
        face.save_projection_state(ProjectionState("a", 1, "building"))
        face.save_projection_state(ProjectionState("a", 1, "live", active=True, updated_at=when))
        assert [(s.name, s.version, s.status, s.active) for s in face.projection_states()] == [
            ("a", 1, "live", True),
            ("b", 1, "failed", False),
            ("b", 2, "building", False),
        ]
        assert face.projection_states("b")[0] == failed
        assert face.projection_states("c") == []
        [building] = face.projection_states("a")
        assert building.updated_at == when

    def test_an_unstamped_state_gets_a_time(self, store: EventStore) -> None:
        face = face_of(store)
        face.save_projection_state(ProjectionState("a", 1, "building"))
        [state] = face.projection_states("a")
        assert state.updated_at is not None

    def test_dead_letters_in_parking_order_parked_once(self, store: EventStore) -> None:
        face = face_of(store)
        stream = new_stream("acc")
        store.append(stream, [NewEvent("Added", {"n": n}) for n in range(3)])
        one, two, three = store.read_stream(stream)
        # Parked in the order they came, whatever their time; the same event again is a no-op.
        face.park_event(letter(three, "b"))
        face.park_event(letter(one, "b", 2))
        face.park_event(letter(two, "a"))
        face.park_event(letter(three, "b"))
        parked = [(d.projection, d.projection_version, d.event.version) for d in face.dead_letters()]
        assert parked == [("b", 1, 3), ("b", 2, 1), ("a", 1, 2)], f"not in parking order: {parked}"
        assert face.dead_letters("a") == [letter(two, "a")]
        assert face.dead_letters("c") == []

    def test_delete_forgets_one_version_and_its_dead_letters(self, store: EventStore) -> None:
        face = face_of(store)
        stream = new_stream("acc")
        store.append(stream, [NewEvent("Added", {"n": n}) for n in range(2)])
        one, two = store.read_stream(stream)
        face.save_projection_state(ProjectionState("b", 1, "failed"))
        face.save_projection_state(ProjectionState("b", 2, "building"))
        face.park_event(letter(one, "b", 1))
        face.park_event(letter(two, "b", 2))
        face.delete_projection_state("b", 1)
        assert [(s.name, s.version) for s in face.projection_states("b")] == [("b", 2)]
        assert [d.projection_version for d in face.dead_letters("b")] == [2]
        face.delete_projection_state("b", 7)  # nothing to forget: no error
        face.delete_projection_state("b", 2)
        assert face.projection_states() == []
        assert face.dead_letters() == []

    def test_one_dead_letter_is_deleted_and_the_others_keep_their_order(self, store: EventStore) -> None:
        face = face_of(store)
        stream = new_stream("acc")
        store.append(stream, [NewEvent("Added", {"n": n}) for n in range(4)])
        one, two, three, four = store.read_stream(stream)
        face.save_projection_state(ProjectionState("b", 1, "live", active=True))
        for event, name, version in (
            (three, "b", 1),
            (one, "b", 1),
            (two, "b", 2),
            (four, "a", 1),
            (two, "b", 1),
        ):
            face.park_event(letter(event, name, version))
        face.delete_dead_letter("b", 1, one.position)
        remaining = [(d.projection, d.projection_version, d.event.version) for d in face.dead_letters()]
        assert remaining == [("b", 1, 3), ("b", 2, 2), ("a", 1, 4), ("b", 1, 2)]
        face.delete_dead_letter("b", 1, one.position)  # gone already: no error
        face.delete_dead_letter("b", 3, two.position)  # another version's letter stays
        face.delete_dead_letter("b", 1, two.position)
        assert [(d.projection_version, d.event.version) for d in face.dead_letters("b")] == [(1, 3), (2, 2)]
        assert [(s.name, s.status) for s in face.projection_states()] == [("b", "live")], "the state stays"
        # Deleted, the same event may be parked again, and comes last.
        face.park_event(letter(one, "b", 1))
        assert [d.event.version for d in face.dead_letters("b")] == [3, 2, 1]
        with pytest.raises(InvalidInputError):
            face.delete_dead_letter("", 1, one.position)
        with pytest.raises(InvalidInputError):
            face.delete_dead_letter("b", 1, -1)

    def test_bad_names_and_versions_are_refused(self, store: EventStore) -> None:
        face = face_of(store)
        stream = new_stream("acc")
        store.append(stream, [NewEvent("Added", {})])
        [one] = store.read_stream(stream)
        with pytest.raises(InvalidInputError):
            face.save_projection_state(ProjectionState("", 1, "live"))
        with pytest.raises(InvalidInputError):
            face.save_projection_state(ProjectionState("a", 0, "live"))
        with pytest.raises(InvalidInputError):
            face.park_event(letter(one, ""))
        with pytest.raises(InvalidInputError):
            face.delete_projection_state("a", -1)
        assert face.projection_states() == []
        assert face.dead_letters() == []

    def test_an_unknown_status_is_refused(self, store: EventStore) -> None:
        face = face_of(store)
        with pytest.raises(InvalidInputError, match="status"):
            face.save_projection_state(ProjectionState("a", 1, "sleeping"))  # type: ignore[arg-type]
        assert face.projection_states() == []

    def test_a_dead_letter_from_another_kind_of_store_is_refused(self, store: EventStore) -> None:
        face = face_of(store)
        stream = new_stream("acc")
        store.append(stream, [NewEvent("Added", {})])
        [one] = store.read_stream(stream)
        foreign = msgspec.structs.replace(
            FailedEvent.of(one, ValueError("no"), 1), checkpoint=Checkpoint("another-kind", (1,))
        )
        with pytest.raises(InvalidCheckpointError):
            face.park_event(DeadLetter("a", 1, foreign))
        assert face.dead_letters() == []

    # -- runners' heartbeats ------------------------------------------------------------

    def test_a_store_that_keeps_projection_state_keeps_runners_heartbeats(self, store: EventStore) -> None:
        assert "heartbeats" in capabilities(store), (
            "a store that keeps projection state must keep runners' heartbeats too (RunnerHeartbeats): "
            "they are how other processes see a running runner's state"
        )

    def test_heartbeats_are_replaced_by_runner_listed_in_order_and_round_trip(
        self, store: EventStore
    ) -> None:
        face = face_of(store)
        stream = new_stream("acc")
        store.append(stream, [NewEvent("Added", {})])
        head = store.head()
        assert face.heartbeats() == []
        full = heartbeat(
            "r-full",
            state="retrying",
            checkpoint=head,
            lag_events=12,
            lag_seconds=1.25,
            handled=7,
            parked=1,
            retrying=Retrying(_T0, 3, "OperationalError: the server is restarting (57P01)"),
            recovered=Recovery(_T0 - timedelta(hours=1), _T0 - timedelta(minutes=59), 2, "busy"),
        )
        beats = [
            heartbeat("r-b2", "b", version=2),
            full,
            heartbeat("r-b1p1", "b", partition="1of2", started_at=_T0),
            heartbeat("r-b1p0-late", "b", partition="0of2", started_at=_T0 + timedelta(seconds=1)),
            heartbeat("r-b1p0", "b", partition="0of2", started_at=_T0),
            heartbeat("r-stopped", "b", state="stopped", error="ProjectionFailedError: boom", started_at=_T0),
        ]
        for beat in beats:
            face.save_heartbeat(beat)
        order = [b.runner_id for b in face.heartbeats()]
        assert order == ["r-stopped", "r-b1p0", "r-b1p0-late", "r-b1p1", "r-b2", "r-full"], order
        [stored] = face.heartbeats("orders")
        assert stored == full, "a heartbeat must come back exactly as it was saved"
        assert [b.runner_id for b in face.heartbeats("nobody")] == []
        # A newer heartbeat of the same runner replaces its record, whatever changed.
        later = msgspec.structs.replace(
            full, state="caught_up", retrying=None, heard_at=_T0 + timedelta(minutes=2), version=3
        )
        face.save_heartbeat(later)
        assert face.heartbeats("orders") == [later]
        assert len(face.heartbeats()) == len(beats)

    def test_a_heartbeat_is_forgotten_by_its_runner_id(self, store: EventStore) -> None:
        face = face_of(store)
        face.save_heartbeat(heartbeat("r-1"))
        face.save_heartbeat(heartbeat("r-2"))
        face.save_heartbeat(heartbeat("r-3", "other"))
        face.delete_heartbeat("r-1")
        face.delete_heartbeat("r-1")  # gone already: no error
        face.delete_heartbeat("r-9")
        assert [b.runner_id for b in face.heartbeats()] == ["r-2", "r-3"]
        with pytest.raises(InvalidInputError):
            face.delete_heartbeat("")

    def test_bad_heartbeats_are_refused(self, store: EventStore) -> None:
        face = face_of(store)
        bad = [
            heartbeat(""),
            heartbeat("r\n1"),
            heartbeat("r-1", ""),
            heartbeat("r-1", version=0),
            heartbeat("r-1", state="dozing"),
            heartbeat("r-1", interval=0),
            heartbeat("r-1", heard_at=datetime(2030, 1, 1)),
        ]
        for beat in bad:
            with pytest.raises(InvalidInputError):
                face.save_heartbeat(beat)
        assert face.heartbeats() == []

    def test_heartbeats_are_apart_from_projection_state(self, store: EventStore) -> None:
        face = face_of(store)
        face.save_projection_state(ProjectionState("orders", 1, "live", active=True))
        face.save_heartbeat(heartbeat("r-1"))
        face.delete_projection_state("orders", 1)
        assert [b.runner_id for b in face.heartbeats("orders")] == ["r-1"]
        face.delete_heartbeat("r-1")
        assert face.projection_states() == []
