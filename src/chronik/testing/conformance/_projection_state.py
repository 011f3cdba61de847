"""Conformance: projection state and dead letters (``ProjectionStateStore`` and twin)."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
import pytest

from chronik import Checkpoint, InvalidInputError, NewEvent
from chronik.errors import InvalidCheckpointError
from chronik.events import DeadLetter, FailedEvent, ProjectionState
from chronik.store import EventStore
from chronik.testing.conformance._base import ConformanceBase, face_of, needs, new_stream
from chronik.testing.conformance._transactions import letter

__all__ = ["ProjectionStateTests"]


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
