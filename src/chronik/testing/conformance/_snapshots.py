"""Conformance: snapshots and named checkpoints, where the store declares them."""

from __future__ import annotations

import pytest

import chronik
from chronik import InvalidInputError
from chronik.errors import InvalidCheckpointError
from chronik.events import Snapshot
from chronik.store import EventStore
from chronik.testing.conformance._base import ConformanceBase, event, face_of, needs, new_stream

__all__ = ["CheckpointTests", "SnapshotTests"]


@needs("snapshots")
class SnapshotTests(ConformanceBase):
    """``SnapshotStore`` / ``AsyncSnapshotStore``: the latest snapshot of each stream."""

    def test_snapshots_save_load_and_replace(self, store: EventStore) -> None:
        face = face_of(store)
        stream = new_stream()
        assert face.load_snapshot(stream) is None
        face.save_snapshot(Snapshot(stream, 5, "AccountState", 1, b'{"balance":5}'))
        loaded = face.load_snapshot(stream)
        assert loaded is not None
        assert (loaded.version, loaded.type, loaded.schema_version, loaded.data) == (
            5,
            "AccountState",
            1,
            b'{"balance":5}',
        )
        assert loaded.recorded_at is not None
        face.save_snapshot(Snapshot(stream, 9, "AccountState", 2, b'{"balance":9}'))
        replaced = face.load_snapshot(stream)
        assert replaced is not None
        assert (replaced.version, replaced.schema_version) == (9, 2)
        assert face.load_snapshot(new_stream()) is None

    def test_snapshot_of_a_bad_stream_id_is_refused(self, store: EventStore) -> None:
        face = face_of(store)
        with pytest.raises(InvalidInputError):
            face.save_snapshot(Snapshot("", 1, "S", 1, b"{}"))
        with pytest.raises(InvalidInputError):
            face.load_snapshot("")


@needs("checkpoints")
class CheckpointTests(ConformanceBase):
    """``CheckpointStore`` / ``AsyncCheckpointStore``: save, load, replace, delete."""

    def test_checkpoints_save_load_and_replace(self, store: EventStore) -> None:
        face = face_of(store)
        assert face.load_checkpoint("projection-a") is None
        store.append(new_stream(), [event(), event()])
        [first, second] = [e.checkpoint for e in store.read_all()]
        face.save_checkpoint("projection-a", first)
        assert face.load_checkpoint("projection-a") == first
        face.save_checkpoint("projection-a", second)
        face.save_checkpoint("projection-b", first)
        assert face.load_checkpoint("projection-a") == second
        assert face.load_checkpoint("projection-b") == first

    def test_delete_forgets_one_checkpoint(self, store: EventStore) -> None:
        face = face_of(store)
        store.append(new_stream(), [event()])
        head = store.head()
        assert head is not None
        face.save_checkpoint("gone", head)
        face.save_checkpoint("kept", head)
        face.delete_checkpoint("gone")
        assert face.load_checkpoint("gone") is None
        assert face.load_checkpoint("kept") == head
        face.delete_checkpoint("never-saved")  # nothing to forget: no error
        face.save_checkpoint("gone", head)  # and it can be saved again
        assert face.load_checkpoint("gone") == head

    def test_bad_names_and_foreign_checkpoints_are_refused(self, store: EventStore) -> None:
        face = face_of(store)
        with pytest.raises(InvalidInputError):
            face.load_checkpoint("")
        with pytest.raises(InvalidInputError):
            face.delete_checkpoint("")
        with pytest.raises(InvalidCheckpointError):
            face.save_checkpoint("projection-c", chronik.Checkpoint("another-kind", (1, 2, 3)))
        assert face.load_checkpoint("projection-c") is None
