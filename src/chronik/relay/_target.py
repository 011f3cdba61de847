"""The relay's target: a unit publishes its batch, then saves the checkpoint (sync).

GENERATED from ``_async_target.py`` by ``tools/unasync.py``: do not edit; edit
the async module and run the script. The design is described there.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from chronik.brokers._base import Publisher, message_of
from chronik.events import Checkpoint, RecordedEvent
from chronik.store import CheckpointStore, ProjectionStateStore

__all__ = ["RelayTarget", "RelayUnit"]

Batch = list[RecordedEvent]


class RelayUnit:
    """One batch on its way to the broker: the events collected, the checkpoints to save."""

    def __init__(self, checkpoints: CheckpointStore) -> None:
        self._checkpoints = checkpoints
        self.context: Batch = []
        self.saved: dict[str, Checkpoint | None] = {}

    @property
    def states(self) -> ProjectionStateStore | None:
        return None

    def load_checkpoint(self, name: str) -> Checkpoint | None:
        if name in self.saved:
            return self.saved[name]
        return self._checkpoints.load_checkpoint(name)

    def save_checkpoint(self, name: str, checkpoint: Checkpoint) -> None:
        self.saved[name] = checkpoint

    def delete_checkpoint(self, name: str) -> None:
        self.saved[name] = None


class RelayTarget:
    """Publishes each unit's events to ``publisher``, then saves its checkpoint to ``checkpoints``."""

    exactly_once = False

    def __init__(self, publisher: Publisher, checkpoints: CheckpointStore) -> None:
        self.publisher = publisher
        self.checkpoints = checkpoints

    def load_checkpoint(self, name: str) -> Checkpoint | None:
        return self.checkpoints.load_checkpoint(name)

    @contextmanager
    def unit(self) -> Iterator[RelayUnit]:
        unit = RelayUnit(self.checkpoints)
        yield unit
        if unit.context:
            self.publisher.publish([message_of(event) for event in unit.context])
        # Only once the broker has confirmed every message of the batch.
        for name, checkpoint in unit.saved.items():
            if checkpoint is not None:
                self.checkpoints.save_checkpoint(name, checkpoint)
            else:
                self.checkpoints.delete_checkpoint(name)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.publisher!r})"
