"""The relay's target: a projection target whose unit publishes its batch, then saves the checkpoint.

The relay runs on the projection runner: its projection only collects each batch's
events in the unit's context, and the unit, when its block ends well, publishes them
to the broker in log order and returns once the broker has confirmed every one;
only then is the checkpoint saved (to the event store's checkpoint power). A crash
or a broker fault anywhere before that leaves the checkpoint where it was, so the
batch is published again: at least once, each stream's events in their order, each
message with its event id as message id. The runner treats a failed publish as it
treats any failure of its own work: a transient one (the broker restarting, a lost
connection) is retried from the stored checkpoint with backoff for as long as it
lasts (status ``retrying``); any other stops the relay, since skipping an event
would break the order it promises.

The sync target (``_target.py``) is generated from this module by ``tools/unasync.py``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from chronik.brokers._base import AsyncPublisher, message_of
from chronik.events import Checkpoint, RecordedEvent
from chronik.projections._async_targets import AsyncCheckpointedUnit
from chronik.store import AsyncCheckpointStore

__all__ = ["AsyncRelayTarget"]

Batch = list[RecordedEvent]


class AsyncRelayTarget:
    """Publishes each unit's events to ``publisher``, then saves its checkpoint to ``checkpoints``."""

    exactly_once = False

    def __init__(self, publisher: AsyncPublisher, checkpoints: AsyncCheckpointStore) -> None:
        self.publisher = publisher
        self.checkpoints = checkpoints

    async def load_checkpoint(self, name: str) -> Checkpoint | None:
        return await self.checkpoints.load_checkpoint(name)

    @asynccontextmanager
    async def unit(self) -> AsyncIterator[AsyncCheckpointedUnit[Batch]]:
        # A checkpointed target's unit, whose context is the batch the projection collects.
        unit = AsyncCheckpointedUnit[Batch]([], self.checkpoints)
        yield unit
        if unit.context:
            await self.publisher.publish([message_of(event) for event in unit.context])
        # Only once the broker has confirmed every message of the batch.
        await unit.commit()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.publisher!r})"
