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

A member works on both faces of a store: on an asyncio store, ``runner`` gives an
:class:`~chronik.projections.AsyncProjectionRunner`, and ``subscribe``,
``load_checkpoint`` and ``save_checkpoint`` are awaited.
"""

from __future__ import annotations

from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar, cast, overload

from chronik._append import normalize_filter
from chronik.errors import ConfigurationError, InvalidInputError
from chronik.events import Checkpoint
from chronik.projections import (
    AsyncProjectionRunner,
    AsyncProjectionTarget,
    Projection,
    ProjectionRunner,
    ProjectionTarget,
)
from chronik.store import (
    AsyncCheckpointStore,
    AsyncEventStore,
    AsyncSubscribable,
    CheckpointStore,
    EventStore,
    is_async,
)
from chronik.subscriptions import DEFAULT_BATCH_SIZE, AsyncSubscription, Partition, Subscription, subscribe

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

    @overload
    def load_checkpoint(self, store: CheckpointStore) -> Checkpoint | None: ...

    @overload
    def load_checkpoint(self, store: AsyncCheckpointStore) -> Coroutine[Any, Any, Checkpoint | None]: ...

    def load_checkpoint(
        self, store: CheckpointStore | AsyncCheckpointStore
    ) -> Checkpoint | Coroutine[Any, Any, Checkpoint | None] | None:
        """This member's stored checkpoint (awaited on an asyncio store)."""
        if _asyncio(store):
            return _async_checkpoints(store).load_checkpoint(self.checkpoint_name)
        return _checkpoints(store).load_checkpoint(self.checkpoint_name)

    @overload
    def save_checkpoint(self, store: CheckpointStore, checkpoint: Checkpoint | None) -> None: ...

    @overload
    def save_checkpoint(
        self, store: AsyncCheckpointStore, checkpoint: Checkpoint | None
    ) -> Coroutine[Any, Any, None]: ...

    def save_checkpoint(
        self, store: CheckpointStore | AsyncCheckpointStore, checkpoint: Checkpoint | None
    ) -> Coroutine[Any, Any, None] | None:
        """Record that this member has handled everything up to ``checkpoint`` (awaited on an
        asyncio store)."""
        if _asyncio(store):
            return self._save_async(_async_checkpoints(store), checkpoint)
        if checkpoint is not None:
            _checkpoints(store).save_checkpoint(self.checkpoint_name, checkpoint)
        return None

    async def _save_async(self, store: AsyncCheckpointStore, checkpoint: Checkpoint | None) -> None:
        if checkpoint is not None:
            await store.save_checkpoint(self.checkpoint_name, checkpoint)

    @overload
    def subscribe(self, store: EventStore, *, batch_size: int = ...) -> Subscription: ...

    @overload
    def subscribe(
        self, store: AsyncEventStore, *, batch_size: int = ...
    ) -> Coroutine[Any, Any, AsyncSubscription]: ...

    def subscribe(
        self, store: EventStore | AsyncEventStore, *, batch_size: int = DEFAULT_BATCH_SIZE
    ) -> Subscription | Coroutine[Any, Any, AsyncSubscription]:
        """This member's share of the log, after its stored checkpoint (on an asyncio store:
        ``subscription = await member.subscribe(store)``).

        Save ``subscription.checkpoint`` with :meth:`save_checkpoint` as events are handled.
        """
        if is_async(store):
            return self._subscribe_async(store, batch_size)
        return subscribe(
            store,
            self.load_checkpoint(_checkpoints(store)),
            categories=self.group.categories,
            types=self.group.types,
            partition=self.partition,
            batch_size=batch_size,
        )

    async def _subscribe_async(self, store: object, batch_size: int) -> AsyncSubscription:
        if not isinstance(store, AsyncSubscribable):
            raise ConfigurationError(f"{store!r} does not support subscriptions (it is not Subscribable)")
        after = await self.load_checkpoint(_async_checkpoints(store))
        return store.subscribe(
            after,
            categories=self.group.categories,
            types=self.group.types,
            partition=self.partition,
            batch_size=batch_size,
        )

    @overload
    def runner(
        self,
        store: EventStore,
        projection: Projection[C],
        target: ProjectionTarget[C] | None = None,
        **options: Any,
    ) -> ProjectionRunner[C]: ...

    @overload
    def runner(
        self,
        store: AsyncEventStore,
        projection: Projection[C],
        target: AsyncProjectionTarget[C] | None = None,
        **options: Any,
    ) -> AsyncProjectionRunner[C]: ...

    def runner(
        self,
        store: EventStore | AsyncEventStore,
        projection: Projection[C],
        target: ProjectionTarget[C] | AsyncProjectionTarget[C] | None = None,
        **options: Any,
    ) -> ProjectionRunner[C] | AsyncProjectionRunner[C]:
        """A projection runner for this member's share (checkpoint ``...:p<index>of<size>``);
        an :class:`~chronik.projections.AsyncProjectionRunner` on an asyncio store."""
        if is_async(store):
            return AsyncProjectionRunner(
                cast("AsyncEventStore", store),
                projection,
                cast("AsyncProjectionTarget[C] | None", target),
                partition=self.partition,
                **options,
            )
        return ProjectionRunner(
            cast("EventStore", store),
            projection,
            cast("ProjectionTarget[C] | None", target),
            partition=self.partition,
            **options,
        )


def _checkpoints(store: object) -> CheckpointStore:
    if not isinstance(store, CheckpointStore):
        raise ConfigurationError(f"{store!r} cannot store checkpoints")
    return store


def _async_checkpoints(store: object) -> AsyncCheckpointStore:
    if not isinstance(store, AsyncCheckpointStore):
        raise ConfigurationError(f"{store!r} cannot store checkpoints")
    return store


def _asyncio(store: object) -> bool:
    """Whether a checkpoint store is asyncio; one that is no event store (no face marker) is sync."""
    try:
        return is_async(store)
    except ConfigurationError:
        return False
