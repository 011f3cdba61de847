"""Process managers: react to events by appending events and deciding commands elsewhere.

A process manager is declared like a projection (a name, a version, handlers by
event type) and runs on the same runner, from a subscription with a checkpoint.
Its handlers get a :class:`ProcessContext` that writes where the checkpoint is
written:

- on a store with transactions (SQLite, PostgreSQL) everything a handler appends
  commits in one transaction with the checkpoint that moves past the event, so a
  crash at any point neither loses nor doubles a reaction;
- elsewhere, what it appends carries event ids derived from the event it reacts
  to, so handling the event again after a crash re-sends the same events and the
  store's idempotent append writes them once.

Every appended event carries the reacting event's correlation id (or, when it has
none, its event id) and the reacting event's id as its causation id.

A handler can also issue commands through the application's ``CommandHandler``
with ``caused_by=event``: a command handler does not apply the same reaction twice,
but it commits on its own, outside the process manager's transaction.

On an asyncio store :func:`process_manager_runner` gives an
:class:`~chronik.projections.AsyncProjectionRunner`, and handlers get an
:class:`AsyncProcessContext` (``await context.append(...)``): write them as
coroutine functions.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol, cast, overload

import msgspec

from chronik.codec import Codec
from chronik.errors import ConfigurationError, InvalidInputError
from chronik.events import ANY, AppendResult, ExpectedVersion, NewEvent, RecordedEvent
from chronik.projections import (
    AsyncCheckpointedTarget,
    AsyncProjectionRunner,
    AsyncProjectionTarget,
    AsyncTransactionalTarget,
    CheckpointedTarget,
    FailurePolicy,
    Projection,
    ProjectionRunner,
    ProjectionTarget,
    TransactionalTarget,
)
from chronik.store import (
    AsyncCheckpointStore,
    AsyncEventStore,
    AsyncTransactional,
    CheckpointStore,
    EventStore,
    Transactional,
    is_async,
)

__all__ = ["AsyncProcessContext", "ProcessContext", "ProcessManager", "process_manager_runner"]

_IDS: Final = uuid.UUID("5b0c1c1e-4d0e-4f57-9a8e-6b1b1f2d7c3a")
PROPAGATED: Final = ("user", "tenant")
"""Metadata keys copied from the event a process manager reacts to onto what it appends."""


class _Writer(Protocol):
    """What a process context writes through: a store transaction or the store."""

    def append(
        self, stream_id: str, events: Sequence[object], expected_version: ExpectedVersion = ANY
    ) -> AppendResult: ...

    def read_stream(
        self, stream_id: str, from_version: int = 1, to_version: int | None = None
    ) -> list[Any]: ...


class _AsyncWriter(Protocol):
    """What an asyncio process context writes through."""

    async def append(
        self, stream_id: str, events: Sequence[object], expected_version: ExpectedVersion = ANY
    ) -> AppendResult: ...

    async def read_stream(
        self, stream_id: str, from_version: int = 1, to_version: int | None = None
    ) -> list[Any]: ...


class _DeciderLike(Protocol):
    """A ``chronik.Decider``, or anything with the same three members."""

    @property
    def initial_state(self) -> Any: ...

    @property
    def decide(self) -> Callable[[Any, Any], Iterable[Any]]: ...

    @property
    def evolve(self) -> Callable[[Any, Any], Any]: ...


ProcessHandler = Callable[[RecordedEvent, Any], Awaitable[None] | None]
"""``handler(event, context)``: a plain function given a :class:`ProcessContext` on a
sync store, a coroutine function given an :class:`AsyncProcessContext` on an asyncio one."""


class _Reaction:
    """The stamping both faces share: ids derived from the trigger, correlation, causation."""

    def __init__(self, manager: str, trigger: RecordedEvent, codec: Codec) -> None:
        self.manager = manager
        self.trigger = trigger
        self._codec = codec
        self._sent = 0
        metadata = trigger.metadata
        self.correlation_id: str = str(metadata.get("correlation_id") or trigger.event_id)
        self.metadata: dict[str, Any] = {k: metadata[k] for k in PROPAGATED if k in metadata}
        self.metadata["correlation_id"] = self.correlation_id
        self.metadata["causation_id"] = str(trigger.event_id)

    def _stamp(self, stream_id: str, event: object) -> NewEvent:
        self._sent += 1
        event_id = uuid.uuid5(
            _IDS, f"{self.manager}\x1f{self.trigger.event_id}\x1f{stream_id}\x1f{self._sent}"
        )
        if isinstance(event, NewEvent):
            metadata = {**self.metadata, **(event.metadata or {})}
            return msgspec.structs.replace(event, metadata=metadata, event_id=event.event_id or event_id)
        return self._codec.registry.new_event(event, metadata=self.metadata, event_id=event_id)

    def _stamped(self, stream_id: str, events: Sequence[object]) -> list[NewEvent]:
        if isinstance(events, (str, bytes, NewEvent)) or not isinstance(events, Sequence):
            raise InvalidInputError(f"append takes a list of events, got {type(events).__name__}")
        return [self._stamp(stream_id, e) for e in events]


def _decide(decider: _DeciderLike, history: list[RecordedEvent], command: object) -> list[object]:
    state = decider.initial_state
    for recorded in history:
        state = decider.evolve(state, recorded.data)
    return list(decider.decide(command, state))


class ProcessContext(_Reaction):
    """What a process manager's handler writes through, for one event it reacts to."""

    def __init__(self, manager: str, trigger: RecordedEvent, writer: _Writer, codec: Codec) -> None:
        super().__init__(manager, trigger, codec)
        self._writer = writer

    def append(
        self, stream_id: str, events: Sequence[object], expected_version: ExpectedVersion = ANY
    ) -> AppendResult:
        """Append ``events`` (typed or ``NewEvent``) with this reaction's correlation and causation."""
        return self._writer.append(stream_id, self._stamped(stream_id, events), expected_version)

    def read_stream(self, stream_id: str) -> list[RecordedEvent]:
        """A stream as the reaction's transaction sees it."""
        events: list[RecordedEvent] = self._writer.read_stream(stream_id)
        return events

    def execute(self, decider: _DeciderLike, stream_id: str, command: object) -> list[object]:
        """Decide ``command`` on ``stream_id``'s state and append what it decides.

        The append expects the version the state was read at; inside a transaction
        nothing can come between. Elsewhere a concurrent writer makes it fail and the
        runner handles the event again (decide must then see its own earlier
        reaction and decide nothing new). Returns the events decided.
        """
        history = self.read_stream(stream_id)
        decided = _decide(decider, history, command)
        if decided:
            self.append(stream_id, decided, history[-1].version if history else 0)
        return decided


class AsyncProcessContext(_Reaction):
    """The asyncio twin of :class:`ProcessContext`: ``await`` its methods (same event ids,
    correlation and causation)."""

    def __init__(self, manager: str, trigger: RecordedEvent, writer: _AsyncWriter, codec: Codec) -> None:
        super().__init__(manager, trigger, codec)
        self._writer = writer

    async def append(
        self, stream_id: str, events: Sequence[object], expected_version: ExpectedVersion = ANY
    ) -> AppendResult:
        """As :meth:`ProcessContext.append`."""
        return await self._writer.append(stream_id, self._stamped(stream_id, events), expected_version)

    async def read_stream(self, stream_id: str) -> list[RecordedEvent]:
        """A stream as the reaction's transaction sees it."""
        events: list[RecordedEvent] = await self._writer.read_stream(stream_id)
        return events

    async def execute(self, decider: _DeciderLike, stream_id: str, command: object) -> list[object]:
        """As :meth:`ProcessContext.execute`."""
        history = await self.read_stream(stream_id)
        decided = _decide(decider, history, command)
        if decided:
            await self.append(stream_id, decided, history[-1].version if history else 0)
        return decided


@dataclass(frozen=True)
class ProcessManager:
    """A process manager: a name, a version and handlers by event type."""

    name: str
    handlers: Mapping[str, ProcessHandler]
    version: int = 1
    categories: tuple[str, ...] | None = None

    def projection(self, codec: Codec, *, asyncio: bool = False) -> Projection[Any]:
        """The process manager as a projection whose context is the unit's writer;
        ``asyncio=True``: for an asyncio runner (handlers get an :class:`AsyncProcessContext`)."""
        context = AsyncProcessContext if asyncio else ProcessContext

        def wrap(handler: ProcessHandler) -> Callable[[RecordedEvent, Any], Awaitable[None] | None]:
            def handle(event: RecordedEvent, writer: Any) -> Awaitable[None] | None:
                return handler(event, context(self.name, event, writer, codec))

            return handle

        return Projection(
            self.name,
            {type_name: wrap(h) for type_name, h in self.handlers.items()},
            version=self.version,
            categories=self.categories,
        )


class _StoreWriter:
    """The store itself as a process context's writer (no transactions)."""

    def __init__(self, store: EventStore) -> None:
        self.store = store

    def append(
        self, stream_id: str, events: Sequence[object], expected_version: ExpectedVersion = ANY
    ) -> AppendResult:
        return self.store.append(stream_id, events, expected_version)

    def read_stream(self, stream_id: str, from_version: int = 1, to_version: int | None = None) -> list[Any]:
        return self.store.read_stream(stream_id, from_version, to_version)


class _AsyncStoreWriter:
    """An asyncio store itself as a process context's writer (no transactions)."""

    def __init__(self, store: AsyncEventStore) -> None:
        self.store = store

    async def append(
        self, stream_id: str, events: Sequence[object], expected_version: ExpectedVersion = ANY
    ) -> AppendResult:
        return await self.store.append(stream_id, events, expected_version)

    async def read_stream(
        self, stream_id: str, from_version: int = 1, to_version: int | None = None
    ) -> list[Any]:
        return await self.store.read_stream(stream_id, from_version, to_version)


@overload
def process_manager_runner(
    store: EventStore, manager: ProcessManager, *, policy: FailurePolicy | None = None, **options: Any
) -> ProjectionRunner[Any]: ...


@overload
def process_manager_runner(
    store: AsyncEventStore, manager: ProcessManager, *, policy: FailurePolicy | None = None, **options: Any
) -> AsyncProjectionRunner[Any]: ...


def process_manager_runner(
    store: EventStore | AsyncEventStore,
    manager: ProcessManager,
    *,
    policy: FailurePolicy | None = None,
    **options: Any,
) -> ProjectionRunner[Any] | AsyncProjectionRunner[Any]:
    """A runner for ``manager`` on ``store``: in the store's transactions when it has them.

    On an asyncio store, an :class:`~chronik.projections.AsyncProjectionRunner` whose
    handlers get an :class:`AsyncProcessContext`.
    """
    if is_async(store):
        return _async_runner(cast("AsyncEventStore", store), manager, policy, options)
    store = cast("EventStore", store)
    target: ProjectionTarget[Any]
    if isinstance(store, Transactional):
        target = TransactionalTarget(store)
    elif isinstance(store, CheckpointStore):
        target = CheckpointedTarget(_StoreWriter(store), store)
    else:
        raise ConfigurationError(f"{store!r} can neither share transactions nor store checkpoints")
    return ProjectionRunner(store, manager.projection(store.codec), target, policy=policy, **options)


def _async_runner(
    store: AsyncEventStore, manager: ProcessManager, policy: FailurePolicy | None, options: dict[str, Any]
) -> AsyncProjectionRunner[Any]:
    target: AsyncProjectionTarget[Any]
    if isinstance(store, AsyncTransactional):
        target = AsyncTransactionalTarget(store)
    elif isinstance(store, AsyncCheckpointStore):
        target = AsyncCheckpointedTarget(_AsyncStoreWriter(store), store)
    else:
        raise ConfigurationError(f"{store!r} can neither share transactions nor store checkpoints")
    projection = manager.projection(store.codec, asyncio=True)
    return AsyncProjectionRunner(store, projection, target, policy=policy, **options)
