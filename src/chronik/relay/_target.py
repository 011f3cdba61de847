"""The relay's target: a unit publishes its batch, then saves the checkpoint (sync).

GENERATED from ``_async_target.py`` by ``tools/unasync.py``: do not edit; edit
the async module and run the script. The design is described there.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from chronik.brokers._base import Publisher, message_of
from chronik.events import Checkpoint, RecordedEvent
from chronik.projections._targets import CheckpointedUnit
from chronik.store import CheckpointStore

__all__ = ["RelayTarget"]

Batch = list[RecordedEvent]


class RelayTarget:
    """Publishes each unit's events to ``publisher``, then saves its checkpoint to ``checkpoints``."""

    exactly_once = False

    def __init__(self, publisher: Publisher, checkpoints: CheckpointStore) -> None:
        self.publisher = publisher
        self.checkpoints = checkpoints

    def load_checkpoint(self, name: str) -> Checkpoint | None:
        return self.checkpoints.load_checkpoint(name)

    @contextmanager
    def unit(self) -> Iterator[CheckpointedUnit[Batch]]:
        # A checkpointed target's unit, whose context is the batch the projection collects.
        unit = CheckpointedUnit[Batch]([], self.checkpoints)
        yield unit
        if unit.context:
            self.publisher.publish([message_of(event) for event in unit.context])
        # Only once the broker has confirmed every message of the batch.
        unit.commit()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.publisher!r})"
