"""Process managers: react to events by appending events and deciding commands elsewhere.

A process manager is declared like a projection (a name, a version, handlers by
event type) and runs on the same runner, from a subscription with a checkpoint
(its messages and errors call it a process manager). Its handlers get a
:class:`ProcessContext` that writes where the checkpoint is written:

- on a store with transactions (SQLite, PostgreSQL) everything a handler appends
  commits in one transaction with the checkpoint that moves past the event, so a
  crash at any point neither loses nor doubles a reaction;
- elsewhere, what it appends carries event ids derived from the event it reacts
  to, so handling the event again after a crash re-sends the same events and the
  store's idempotent append writes them once.

Every appended event carries the reacting event's correlation id (or, when it has
none, its event id) and the reacting event's id as its causation id.

:meth:`ProcessContext.execute` runs a command on a decider or an aggregate class as
a ``CommandHandler`` does (load the stream, decide, append expecting the version
loaded, decide again after a conflict), in the reaction's transaction. Its events
get the reaction's ids, so a reaction handled again after a crash finds its own
earlier events and does not decide twice.

On an asyncio store :func:`process_manager_runner` gives an
:class:`~chronik.projections.AsyncProjectionRunner`, and handlers get an
:class:`AsyncProcessContext` (``await context.append(...)``): write them as
coroutine functions.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeVar, cast, overload

import msgspec

from chronik import _spans
from chronik._command_io import AsyncWriter, Writer, drive, drive_async
from chronik.aggregate import Aggregate
from chronik.codec import Codec
from chronik.decider import Decider
from chronik.errors import ConfigurationError, InvalidInputError
from chronik.events import ANY, AppendResult, ExpectedVersion, NewEvent, RecordedEvent
from chronik.handling import CommandResult, Loaded, as_model, command_flow, load_flow
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

C = TypeVar("C")
S = TypeVar("S")
A = TypeVar("A", bound=Aggregate)

_IDS: Final = uuid.UUID("5b0c1c1e-4d0e-4f57-9a8e-6b1b1f2d7c3a")
KIND: Final = "process manager"
PROPAGATED: Final = ("user", "tenant")
"""Metadata keys copied from the event a process manager reacts to onto what it appends."""


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

    def event_id(self, stream_id: str, sent: int) -> uuid.UUID:
        """The id of the ``sent``-th event (from 1) this reaction appends, to ``stream_id``."""
        return uuid.uuid5(_IDS, f"{self.manager}\x1f{self.trigger.event_id}\x1f{stream_id}\x1f{sent}")

    def _stamp(self, stream_id: str, event: object) -> NewEvent:
        self._sent += 1
        event_id = self.event_id(stream_id, self._sent)
        if isinstance(event, NewEvent):
            metadata = {**self.metadata, **(event.metadata or {})}
            return msgspec.structs.replace(event, metadata=metadata, event_id=event.event_id or event_id)
        return self._codec.registry.new_event(event, metadata=self.metadata, event_id=event_id)

    def _stamped(self, stream_id: str, events: Sequence[object]) -> list[NewEvent]:
        if isinstance(events, (str, bytes, NewEvent)) or not isinstance(events, Sequence):
            raise InvalidInputError(f"append takes a list of events, got {type(events).__name__}")
        return [self._stamp(stream_id, e) for e in events]

    def _command(self) -> _CommandStamp:
        return _CommandStamp(self, self._sent)

    def _executed(self, result: CommandResult[Any]) -> None:
        self._sent += len(result.events)


class _CommandStamp:
    """A command's events within a reaction: the next ids of the reaction's sequence."""

    explicit: Final = True

    def __init__(self, reaction: _Reaction, sent: int) -> None:
        self._reaction = reaction
        self._sent = sent  # what the reaction had appended before this command
        self.metadata = reaction.metadata

    def event_id(self, stream_id: str, index: int) -> uuid.UUID:
        return self._reaction.event_id(stream_id, self._sent + index + 1)

    def earlier(self, stream_id: str, events: list[RecordedEvent]) -> list[RecordedEvent]:
        """This command's events, if a delivery of the same event appended them before:
        its first id, and then the ids after it (one append: consecutive versions)."""
        first = self.event_id(stream_id, 0)
        for start, event in enumerate(events):
            if event.event_id == first:
                found = [event]
                for later in events[start + 1 :]:
                    if later.event_id != self.event_id(stream_id, len(found)):
                        break
                    found.append(later)
                return found
        return []


class ProcessContext(_Reaction):
    """What a process manager's handler writes through, for one event it reacts to."""

    def __init__(self, manager: str, trigger: RecordedEvent, writer: Writer, codec: Codec) -> None:
        super().__init__(manager, trigger, codec)
        self._writer = writer

    def append(
        self, stream_id: str, events: Sequence[object], expected_version: ExpectedVersion = ANY
    ) -> AppendResult:
        """Append ``events`` (typed or ``NewEvent``) with this reaction's correlation and causation."""
        return self._writer.append(stream_id, self._stamped(stream_id, events), expected_version)

    def read_stream(self, stream_id: str) -> list[RecordedEvent]:
        """A stream as the reaction's transaction sees it."""
        return self._writer.read_stream(stream_id)

    @overload
    def execute(
        self,
        model: Decider[C, Any, S],
        stream_id: str,
        command: C,
        *,
        expected_version: ExpectedVersion = ANY,
    ) -> CommandResult[S]: ...

    @overload
    def execute(
        self,
        model: type[A],
        stream_id: str,
        command: Callable[[A], object],
        *,
        expected_version: ExpectedVersion = ANY,
    ) -> CommandResult[A]: ...

    def execute(
        self, model: Any, stream_id: str, command: Any, *, expected_version: ExpectedVersion = ANY
    ) -> CommandResult[Any]:
        """Run ``command`` on ``stream_id`` with a decider or an aggregate class, as
        ``CommandHandler.handle`` does, in this reaction's transaction.

        For a decider the command is a value for its ``decide``; for an aggregate a
        function of the aggregate (``lambda account: account.withdraw(10)``). The
        stream is loaded, the command decided, and its events appended expecting the
        version loaded; when another writer got there first (possible only outside
        SQLite's transactions) it loads and decides again. ``expected_version`` is
        what the stream must be at: ``STREAM_EXISTS`` (else
        :class:`~chronik.errors.StreamNotFoundError`), ``NO_STREAM`` or an exact
        version, as for ``CommandHandler.handle``.

        The events carry the reaction's correlation, causation and event ids: when
        the event is handled again (a store without transactions, after a crash)
        the command finds what it appended the first time and appends nothing
        (``already_handled``). Returns the :class:`~chronik.handling.CommandResult`.
        """
        found = as_model(model)
        with _spans.handling("execute", found.name, stream_id, command) as span:
            stamp = self._command()
            flow = command_flow(found, self._codec.registry, stream_id, command, stamp, expected_version)
            result = span.done(drive(self._writer, None, flow))
        self._executed(result)
        return result

    @overload
    def load(self, model: Decider[Any, Any, S], stream_id: str) -> Loaded[S]: ...

    @overload
    def load(self, model: type[A], stream_id: str) -> Loaded[A]: ...

    def load(self, model: Any, stream_id: str) -> Loaded[Any]:
        """The state of ``stream_id`` for a decider or an aggregate class, as the reaction's
        transaction sees it (as ``CommandHandler.load``)."""
        return drive(self._writer, None, load_flow(as_model(model), self._codec.registry, stream_id))


class AsyncProcessContext(_Reaction):
    """The asyncio twin of :class:`ProcessContext`: ``await`` its methods (same event ids,
    correlation and causation)."""

    def __init__(self, manager: str, trigger: RecordedEvent, writer: AsyncWriter, codec: Codec) -> None:
        super().__init__(manager, trigger, codec)
        self._writer = writer

    async def append(
        self, stream_id: str, events: Sequence[object], expected_version: ExpectedVersion = ANY
    ) -> AppendResult:
        """As :meth:`ProcessContext.append`."""
        return await self._writer.append(stream_id, self._stamped(stream_id, events), expected_version)

    async def read_stream(self, stream_id: str) -> list[RecordedEvent]:
        """A stream as the reaction's transaction sees it."""
        return await self._writer.read_stream(stream_id)

    @overload
    async def execute(
        self,
        model: Decider[C, Any, S],
        stream_id: str,
        command: C,
        *,
        expected_version: ExpectedVersion = ANY,
    ) -> CommandResult[S]: ...

    @overload
    async def execute(
        self,
        model: type[A],
        stream_id: str,
        command: Callable[[A], object],
        *,
        expected_version: ExpectedVersion = ANY,
    ) -> CommandResult[A]: ...

    async def execute(
        self, model: Any, stream_id: str, command: Any, *, expected_version: ExpectedVersion = ANY
    ) -> CommandResult[Any]:
        """As :meth:`ProcessContext.execute`."""
        found = as_model(model)
        with _spans.handling("execute", found.name, stream_id, command) as span:
            stamp = self._command()
            flow = command_flow(found, self._codec.registry, stream_id, command, stamp, expected_version)
            result = span.done(await drive_async(self._writer, None, flow))
        self._executed(result)
        return result

    @overload
    async def load(self, model: Decider[Any, Any, S], stream_id: str) -> Loaded[S]: ...

    @overload
    async def load(self, model: type[A], stream_id: str) -> Loaded[A]: ...

    async def load(self, model: Any, stream_id: str) -> Loaded[Any]:
        """As :meth:`ProcessContext.load`."""
        return await drive_async(
            self._writer, None, load_flow(as_model(model), self._codec.registry, stream_id)
        )


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
        target = CheckpointedTarget(store, store)  # no transactions: the store itself writes
    else:
        raise ConfigurationError(f"{store!r} can neither share transactions nor store checkpoints")
    projection = manager.projection(store.codec)
    return ProjectionRunner(store, projection, target, policy=policy, kind=KIND, **options)


def _async_runner(
    store: AsyncEventStore, manager: ProcessManager, policy: FailurePolicy | None, options: dict[str, Any]
) -> AsyncProjectionRunner[Any]:
    target: AsyncProjectionTarget[Any]
    if isinstance(store, AsyncTransactional):
        target = AsyncTransactionalTarget(store)
    elif isinstance(store, AsyncCheckpointStore):
        target = AsyncCheckpointedTarget(store, store)
    else:
        raise ConfigurationError(f"{store!r} can neither share transactions nor store checkpoints")
    projection = manager.projection(store.codec, asyncio=True)
    return AsyncProjectionRunner(store, projection, target, policy=policy, kind=KIND, **options)
