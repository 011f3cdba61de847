"""Deciders and command handlers for Dynamic Consistency Boundaries (dcb.events).

A :class:`DCBDecider` is a :class:`~chronik.Decider` whose state is not one stream
but the events matching a query the command names: ``query(command)`` says which
events the decision depends on (by types and tags), ``evolve`` folds them from
``initial_state``, and ``decide(command, state)`` returns the new events (or raises
to refuse). ``tags(event)`` gives the tags of each decided event (a decided
:class:`~chronik.NewEvent` keeps its own).

A :class:`DCBCommandHandler` runs a command on a store with the DCB power
(``read_query``, ``append_if``): it reads the matching events, folds them, decides,
and appends on the condition that no event matching the query was appended after
the head it read. When another writer got there first it reads and decides again,
up to ``retries`` times, as :class:`~chronik.CommandHandler` does, then raises
:class:`~chronik.errors.DecisionRetriesExhaustedError`. The logic is one generator
that yields its two requests; the sync and the asyncio handlers only perform them.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Collection, Generator, Iterable, Mapping
from typing import Any, Generic, NamedTuple, TypeVar

from chronik import _spans
from chronik._command_io import run_flow, run_flow_async
from chronik.codec import EventRegistry
from chronik.errors import (
    AppendConditionFailedError,
    ConfigurationError,
    DecisionRetriesExhaustedError,
    InvalidQueryError,
    NotAnEventError,
)
from chronik.events import AppendResult, NewEvent, RecordedEvent
from chronik.handling import DEFAULT_RETRIES, _Stamp
from chronik.query import AppendCondition, Query, ReadResult
from chronik.store import AsyncDCBStore, DCBStore, is_async

__all__ = ["AsyncDCBCommandHandler", "DCBCommandHandler", "DCBDecider", "DCBResult"]

C = TypeVar("C")
E = TypeVar("E")
S = TypeVar("S")


@dataclasses.dataclass(frozen=True)
class DCBDecider(Generic[C, E, S]):
    """A decision over the events a command's query matches.

    ``query(command)`` names the events the decision depends on; ``evolve(state,
    event)`` folds each of them (decoded: typed when its type is registered) from
    ``initial_state``; ``decide(command, state)`` returns the events to append;
    ``tags(event)`` the tags of each (default: none; a decided ``NewEvent`` keeps its own).
    """

    query: Callable[[C], Query]
    decide: Callable[[C, S], Iterable[E]]
    evolve: Callable[[S, E], S]
    initial_state: S
    tags: Callable[[E], Collection[str]] | None = None

    def __post_init__(self) -> None:
        for field in ("query", "decide", "evolve"):
            if not callable(getattr(self, field)):
                raise ConfigurationError(
                    f"DCBDecider {field} must be a function, got {getattr(self, field)!r}"
                )
        if self.tags is not None and not callable(self.tags):
            raise ConfigurationError(f"DCBDecider tags must be a function or None, got {self.tags!r}")

    def fold(self, events: Iterable[E]) -> S:
        """The state after ``events``, starting from ``initial_state``."""
        current = self.initial_state
        for event in events:
            current = self.evolve(current, event)
        return current


@dataclasses.dataclass(frozen=True)
class DCBResult(Generic[S]):
    """What a handled command did: the ``state`` it decided on, the ``events`` it
    appended (empty when it decided nothing), the ``position`` of the last of them
    (else the head it read), and the ``attempts`` it took (1 unless it retried)."""

    state: S
    events: tuple[object, ...]
    position: int | None
    attempts: int = 1

    @property
    def appended(self) -> bool:
        return bool(self.events)


class _Read(NamedTuple):
    query: Query


class _AppendIf(NamedTuple):
    events: list[NewEvent]
    condition: AppendCondition
    stream_id: str | None


_Flow = Generator[_Read | _AppendIf, Any, DCBResult[S]]


def _flow(
    decider: DCBDecider[C, Any, S],
    registry: EventRegistry,
    retries: int,
    command: C,
    stamp: _Stamp,
    stream_id: str | None,
) -> _Flow[S]:
    query = decider.query(command)
    if not isinstance(query, Query):
        raise InvalidQueryError(f"DCBDecider query must return a Query, got {type(query).__name__}")
    conflict: AppendConditionFailedError | None = None
    for attempt in range(1, retries + 2):
        read: ReadResult = yield _Read(query)
        state = decider.fold(e.data for e in read.events)
        decided = decider.decide(command, state)
        if decided is None or isinstance(decided, (str, bytes, Mapping)) or not isinstance(decided, Iterable):
            raise NotAnEventError(
                f"DCBDecider decide must return a list of events (return [] to decide nothing), "
                f"got {type(decided).__name__}",
                stream_id=stream_id or "dcb",
                version=0,
                type=type(decided).__qualname__,
            )
        events = list(decided)
        if not events:
            return DCBResult(state, (), read.head, attempt)
        new = [_new_event(decider, registry, event, stamp, i) for i, event in enumerate(events)]
        try:
            result: AppendResult = yield _AppendIf(new, AppendCondition(query, read.head), stream_id)
        except AppendConditionFailedError as err:
            conflict = err  # a matching event came after the read: read and decide again
            continue
        return DCBResult(state, tuple(events), result.position, attempt)
    raise DecisionRetriesExhaustedError(query, retries + 1) from conflict


def _new_event(
    decider: DCBDecider[Any, Any, Any], registry: EventRegistry, event: object, stamp: _Stamp, index: int
) -> NewEvent:
    if isinstance(event, NewEvent):
        return event
    tags = decider.tags(event) if decider.tags is not None else ()
    return registry.new_event(
        event, metadata=stamp.metadata, event_id=stamp.event_id("dcb", index), tags=tags
    )


def _registry(store: object, kind: str) -> EventRegistry:
    codec = getattr(store, "codec", None)
    if codec is None or not isinstance(getattr(codec, "registry", None), EventRegistry):
        raise ConfigurationError(f"{kind} needs an event store with a codec, got {type(store).__name__}")
    return codec.registry  # type: ignore[no-any-return]


def _check(store: object, retries: object, asyncio: bool) -> None:
    wanted = AsyncDCBStore if asyncio else DCBStore
    if not isinstance(store, wanted) or is_async(store) != asyncio:
        raise ConfigurationError(
            f"{'AsyncDCBCommandHandler' if asyncio else 'DCBCommandHandler'} needs "
            f"{'an asyncio' if asyncio else 'a sync'} store with read_query and append_if "
            f"(memory, SQLite, PostgreSQL), got {type(store).__name__}"
        )
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ConfigurationError(f"retries must be an int >= 0, got {retries!r}")


class DCBCommandHandler(Generic[C, S]):
    """Handles commands of one :class:`DCBDecider` on a sync store with the DCB power."""

    def __init__(
        self, store: DCBStore, decider: DCBDecider[C, Any, S], *, retries: int = DEFAULT_RETRIES
    ) -> None:
        _check(store, retries, asyncio=False)
        self.store = store
        self.decider = decider
        self.retries = retries
        self._registry = _registry(store, "DCBCommandHandler")

    def handle(
        self,
        command: C,
        *,
        stream_id: str | None = None,
        command_id: str | uuid.UUID | None = None,
        metadata: Mapping[str, Any] | None = None,
        caused_by: RecordedEvent | None = None,
    ) -> DCBResult[S]:
        """Read what ``command``'s query matches, decide, append on the condition; retry
        on a conflict. ``stream_id``: the stream the events go to (default: a new
        ``dcb-<uuid7>``); metadata as ``CommandHandler.handle``."""
        stamp = _Stamp.make(command_id, metadata, caused_by)
        flow = _flow(self.decider, self._registry, self.retries, command, stamp, stream_id)
        store = self.store

        def perform(request: _Read | _AppendIf) -> Any:
            if isinstance(request, _Read):
                return store.read_query(request.query)
            return store.append_if(request.events, request.condition, stream_id=request.stream_id)

        with _spans.handling("handle", "dcb", stream_id, command) as span:
            done: DCBResult[S] = span.done(run_flow(flow, perform))
        return done

    def __repr__(self) -> str:
        return f"DCBCommandHandler({self.store!r}, retries={self.retries})"


class AsyncDCBCommandHandler(Generic[C, S]):
    """The asyncio twin of :class:`DCBCommandHandler`."""

    def __init__(
        self, store: AsyncDCBStore, decider: DCBDecider[C, Any, S], *, retries: int = DEFAULT_RETRIES
    ) -> None:
        _check(store, retries, asyncio=True)
        self.store = store
        self.decider = decider
        self.retries = retries
        self._registry = _registry(store, "AsyncDCBCommandHandler")

    async def handle(
        self,
        command: C,
        *,
        stream_id: str | None = None,
        command_id: str | uuid.UUID | None = None,
        metadata: Mapping[str, Any] | None = None,
        caused_by: RecordedEvent | None = None,
    ) -> DCBResult[S]:
        """The asyncio twin of :meth:`DCBCommandHandler.handle`."""
        stamp = _Stamp.make(command_id, metadata, caused_by)
        flow = _flow(self.decider, self._registry, self.retries, command, stamp, stream_id)
        store = self.store

        async def perform(request: _Read | _AppendIf) -> Any:
            if isinstance(request, _Read):
                return await store.read_query(request.query)
            return await store.append_if(request.events, request.condition, stream_id=request.stream_id)

        with _spans.handling("handle", "dcb", stream_id, command) as span:
            done: DCBResult[S] = span.done(await run_flow_async(flow, perform))
        return done

    def __repr__(self) -> str:
        return f"AsyncDCBCommandHandler({self.store!r}, retries={self.retries})"
