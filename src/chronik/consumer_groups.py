"""Consumer groups: N members share one subscription by a stable hash of the stream id.

Member ``i`` of a group of ``n`` handles the streams whose
:func:`~chronik.subscriptions.stable_hash` mod ``n`` is ``i``, so every stream's
events go to exactly one member, in their order, and the members need no
coordination: each reads the log and keeps a checkpoint of its own. Members can
start, stop and restart in any order; the assignment never depends on who came
first.

The group's size is part of the assignment: to change it, stop every member and
start the new ones from the oldest checkpoint of the old ones (each then sees some
events again: at-least-once across a resize).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

from chronik._append import normalize_filter
from chronik.errors import ConfigurationError, InvalidInputError
from chronik.events import Checkpoint
from chronik.projections import Projection, ProjectionRunner, ProjectionTarget
from chronik.store import CheckpointStore, EventStore
from chronik.subscriptions import DEFAULT_BATCH_SIZE, Partition, Subscription, subscribe

__all__ = ["ConsumerGroup", "GroupMember"]

C = TypeVar("C")


@dataclass(frozen=True)
class ConsumerGroup:
    """A named group of ``size`` members sharing the events of ``categories`` / ``types``."""

    name: str
    size: int
    categories: tuple[str, ...] | None = None
    types: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name or ":" in self.name or not self.name.isprintable():
            raise InvalidInputError(
                f"group name must be a non-empty printable str without ':', got {self.name!r}"
            )
        if isinstance(self.size, bool) or not isinstance(self.size, int) or self.size < 1:
            raise InvalidInputError(f"group size must be an int >= 1, got {self.size!r}")
        object.__setattr__(self, "categories", normalize_filter(self.categories, "categories"))
        object.__setattr__(self, "types", normalize_filter(self.types, "types"))

    def member(self, index: int) -> GroupMember:
        """Member ``index`` (0-based)."""
        return GroupMember(self, Partition(index, self.size))

    @property
    def members(self) -> list[GroupMember]:
        return [self.member(i) for i in range(self.size)]

    def member_of(self, stream_id: str) -> int:
        """The index of the member that handles ``stream_id``."""
        return next(i for i in range(self.size) if Partition(i, self.size).owns(stream_id))


@dataclass(frozen=True)
class GroupMember:
    """One member of a consumer group: its share of the log and its own checkpoint."""

    group: ConsumerGroup
    partition: Partition

    @property
    def checkpoint_name(self) -> str:
        """``group:<name>:<index>of<size>``."""
        return f"group:{self.group.name}:{self.partition}"

    def owns(self, stream_id: str) -> bool:
        return self.partition.owns(stream_id)

    def load_checkpoint(self, store: CheckpointStore) -> Checkpoint | None:
        return _checkpoints(store).load_checkpoint(self.checkpoint_name)

    def save_checkpoint(self, store: CheckpointStore, checkpoint: Checkpoint | None) -> None:
        """Record that this member has handled everything up to ``checkpoint``."""
        if checkpoint is not None:
            _checkpoints(store).save_checkpoint(self.checkpoint_name, checkpoint)

    def subscribe(self, store: Any, *, batch_size: int = DEFAULT_BATCH_SIZE) -> Subscription:
        """This member's share of the log, after its stored checkpoint.

        Save ``subscription.checkpoint`` with :meth:`save_checkpoint` as events are handled.
        """
        return subscribe(
            store,
            self.load_checkpoint(store),
            categories=self.group.categories,
            types=self.group.types,
            partition=self.partition,
            batch_size=batch_size,
        )

    def runner(
        self,
        store: EventStore,
        projection: Projection[C],
        target: ProjectionTarget[C] | None = None,
        **options: Any,
    ) -> ProjectionRunner[C]:
        """A projection runner for this member's share (checkpoint ``...:p<index>of<size>``)."""
        return ProjectionRunner(store, projection, target, partition=self.partition, **options)


def _checkpoints(store: object) -> CheckpointStore:
    if not isinstance(store, CheckpointStore):
        raise ConfigurationError(f"{store!r} cannot store checkpoints")
    return store
