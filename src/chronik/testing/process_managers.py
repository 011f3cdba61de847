"""Given/when/then specifications for process managers: events in, the events they produce out.

A specification appends the ``given`` events to a fresh memory store (the history
the process manager reads and decides on, on as many streams as it needs), starts
the process manager after them, appends the ``when`` events and runs it over them
with the real runner. It then checks what the process manager appended, on which
streams, whether it appended them directly or through ``context.execute``::

    spec = ProcessManagerSpec(checkout_saga, registry=registry)

    def test_a_submitted_order_reserves_its_items() -> None:
        spec.given(
            ("order-1", OrderCreated("ada")),
            ("order-1", OrderItemAdded("book", 2, 1250)),
        ).when(
            ("order-1", OrderSubmitted(2500)),
        ).then(
            ("stock-warehouse", StockReservationRejected("1", "out of stock: book")),
        )

Only the ``when`` events are reacted to: what the process manager appends is not
fed back to it here (to test the next step, give it as the ``when`` of another
specification). After :meth:`~ProcessManagerWhen.then` and
:meth:`~ProcessManagerWhen.then_nothing` pass, the ``when`` events are delivered
once more, as a store without transactions does after a crash between a reaction
and its checkpoint, and nothing more may be appended: a process manager reacts
once per event. One whose handlers are deliberately not safe to run twice (they
must then only run on stores with transactions) passes ``idempotent=False``.

A process manager whose handlers are coroutine functions runs on an asyncio memory
store, in ``asyncio.run``. Expected events are typed events, or ``NewEvent`` for
untyped ones (compared by type and data).
"""

from __future__ import annotations

import asyncio
import inspect
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import msgspec

import chronik
from chronik.codec import EventRegistry
from chronik.events import NewEvent, RecordedEvent
from chronik.process_managers import ProcessHandler, ProcessManager, process_manager_runner
from chronik.projections import FailurePolicy, ProjectionFailedError
from chronik.store import AsyncCheckpointStore, CheckpointStore
from chronik.testing.specs import _side_by_side

__all__ = ["ProcessManagerGiven", "ProcessManagerSpec", "ProcessManagerWhen"]

X = TypeVar("X", bound=BaseException)
Pair = tuple[str, object]

# In a specification nothing is worth waiting for: any error fails the reaction at once.
_POLICY = FailurePolicy(retries=0)


class ProcessManagerSpec:
    """The starting point of given/when/then tests for one process manager.

    ``registry`` is the store's registry (the process manager's typed events must be
    registered, as they must be in a real store).
    """

    def __init__(
        self, manager: ProcessManager, *, registry: EventRegistry | None = None, idempotent: bool = True
    ) -> None:
        if not isinstance(manager, ProcessManager):
            raise TypeError(f"ProcessManagerSpec takes a ProcessManager, got {manager!r}")
        self.manager = manager
        self.registry = registry
        self.idempotent = idempotent

    def given(self, *events: Pair | list[Pair]) -> ProcessManagerGiven:
        """The history, as ``(stream_id, event)`` pairs in order: ``given(a, b)``,
        ``given([a, b])`` or ``given()``."""
        return ProcessManagerGiven(self, _pairs("given", events))


class ProcessManagerGiven:
    """A specification with its history; say what arrives with :meth:`when`."""

    def __init__(self, spec: ProcessManagerSpec, events: list[Pair]) -> None:
        self._spec = spec
        self._events = events

    def when(self, *events: Pair | list[Pair]) -> ProcessManagerWhen:
        """The events the process manager reacts to, as ``(stream_id, event)`` pairs."""
        arrived = _pairs("when", events)
        if not arrived:
            raise TypeError("when() needs at least one (stream_id, event) pair to react to")
        return ProcessManagerWhen(self._spec, self._events, arrived)


@dataclass
class _Outcome:
    produced: list[RecordedEvent]
    failure: ProjectionFailedError | None = None
    again: list[RecordedEvent] | None = None  # appended when the events came again
    again_failure: ProjectionFailedError | None = None

    def record(self, again: bool, failure: ProjectionFailedError) -> None:
        if again:
            self.again_failure = failure
        else:
            self.failure = failure

    def appended(self, again: bool, events: list[RecordedEvent]) -> None:
        if again:
            self.again = events
        else:
            self.produced = events


class ProcessManagerWhen:
    """A specification ready to check: :meth:`then`, :meth:`then_nothing` or :meth:`then_raises`."""

    def __init__(self, spec: ProcessManagerSpec, given: list[Pair], when: list[Pair]) -> None:
        self._spec = spec
        self._given = given
        self._when = when

    def then(self, *expected: Pair | list[Pair]) -> list[RecordedEvent]:
        """Assert that the process manager appended exactly ``expected`` (``(stream_id,
        event)`` pairs, in the order of the log), and nothing more when the events came
        again; return the appended events (for their metadata, say)."""
        wanted = _pairs("then", expected)
        outcome = self._outcome(replay=self._spec.idempotent)
        self._succeeded(outcome, f"to append {_count(len(wanted))}")
        produced = outcome.produced
        if len(wanted) != len(produced) or not all(map(_matches, wanted, produced)):
            raise AssertionError(
                f"the process manager appended other events than expected\n{self._scene()}\n\n"
                + _side_by_side(list(wanted), [(e.stream_id, e.data) for e in produced])
            )
        self._once(outcome)
        return produced

    def then_nothing(self) -> None:
        """Assert that the process manager appended nothing (and raised nothing)."""
        outcome = self._outcome(replay=self._spec.idempotent)
        self._succeeded(outcome, "to append nothing")
        if outcome.produced:
            raise AssertionError(
                f"expected the process manager to append nothing, but it appended:\n"
                f"{_listing(outcome.produced)}\n{self._scene()}"
            )
        self._once(outcome)

    def then_raises(self, error: type[X], *, match: str | None = None) -> X:
        """Assert that a handler raised ``error`` (whose message matches ``match``); return it."""
        outcome = self._outcome(replay=False)
        if outcome.failure is None:
            appended = _listing(outcome.produced) if outcome.produced else "  (nothing)"
            raise AssertionError(
                f"expected the process manager to raise {error.__name__}, but it appended:\n"
                f"{appended}\n{self._scene()}"
            )
        cause = outcome.failure.__cause__
        if not isinstance(cause, error):
            raise AssertionError(
                f"expected the process manager to raise {error.__name__}, but it raised "
                f"{_error(cause or outcome.failure)}\n{self._scene()}"
            ) from outcome.failure
        if match is not None and not re.search(match, str(cause)):
            raise AssertionError(
                f"the process manager raised {error.__name__} as expected, but its message "
                f"{str(cause)!r} does not match {match!r}\n{self._scene()}"
            ) from cause
        return cause

    # -- running -------------------------------------------------------------------------

    def _outcome(self, *, replay: bool) -> _Outcome:
        manager = self._spec.manager
        if any(inspect.iscoroutinefunction(h) for h in manager.handlers.values()):
            return asyncio.run(self._run_async(replay))
        return self._run(replay)

    def _run(self, replay: bool) -> _Outcome:
        store = chronik.connect("memory://", registry=self._spec.registry)
        assert isinstance(store, CheckpointStore)
        try:
            for stream_id, event in self._given:
                store.append(stream_id, [event])
            start = store.head()
            for stream_id, event in self._when:
                store.append(stream_id, [event])
            arrived = list(store.read_all(start))
            manager = _reacting_to(self._spec.manager, arrived)
            outcome = _Outcome([])
            for again in (False, True) if replay else (False,):
                # The first time from after the history; again from the same place, as
                # after a crash between the reaction and its checkpoint.
                runner = process_manager_runner(store, manager, policy=_POLICY, warn_unknown_types=False)
                if start is None:
                    store.delete_checkpoint(runner.checkpoint_name)
                else:
                    store.save_checkpoint(runner.checkpoint_name, start)
                after = store.head()
                try:
                    runner.run_until_caught_up()
                except ProjectionFailedError as failed:
                    outcome.record(again, failed)
                    break
                finally:
                    outcome.appended(again, list(store.read_all(after)))
            return outcome
        finally:
            store.close()

    async def _run_async(self, replay: bool) -> _Outcome:
        store = chronik.connect_async("memory://", registry=self._spec.registry)
        assert isinstance(store, AsyncCheckpointStore)
        try:
            for stream_id, event in self._given:
                await store.append(stream_id, [event])
            start = await store.head()
            for stream_id, event in self._when:
                await store.append(stream_id, [event])
            arrived = [e async for e in store.read_all(start)]
            manager = _reacting_to(self._spec.manager, arrived)
            outcome = _Outcome([])
            for again in (False, True) if replay else (False,):
                runner = process_manager_runner(store, manager, policy=_POLICY, warn_unknown_types=False)
                if start is None:
                    await store.delete_checkpoint(runner.checkpoint_name)
                else:
                    await store.save_checkpoint(runner.checkpoint_name, start)
                after = await store.head()
                try:
                    await runner.run_until_caught_up()
                except ProjectionFailedError as failed:
                    outcome.record(again, failed)
                    break
                finally:
                    outcome.appended(again, [e async for e in store.read_all(after)])
            return outcome
        finally:
            await store.close()

    # -- checking ------------------------------------------------------------------------

    def _succeeded(self, outcome: _Outcome, expectation: str) -> None:
        if outcome.failure is not None:
            cause = outcome.failure.__cause__ or outcome.failure
            raise AssertionError(
                f"expected the process manager {expectation}, but it raised {_error(cause)}\n{self._scene()}"
            ) from cause

    def _once(self, outcome: _Outcome) -> None:
        """The ``when`` events delivered again must append nothing more."""
        if outcome.again_failure is not None:
            cause = outcome.again_failure.__cause__ or outcome.again_failure
            raise AssertionError(
                f"handling the same events again (as after a crash before the checkpoint) raised "
                f"{_error(cause)}: a process manager must react once per event (use context.execute, "
                "or context.append without hand-made event ids; or pass idempotent=False if it only "
                f"ever runs on a store with transactions)\n{self._scene()}"
            ) from cause
        if outcome.again:
            raise AssertionError(
                "handling the same events again (as after a crash before the checkpoint) appended "
                f"more:\n{_listing(outcome.again)}\na process manager must react once per event (use "
                "context.execute, or context.append without hand-made event ids; or pass "
                f"idempotent=False if it only ever runs on a store with transactions)\n{self._scene()}"
            )

    def _scene(self) -> str:
        given = _short(self._given) if self._given else "no events"
        return f"  given {given}\n  when  {_short(self._when)}"


def _reacting_to(manager: ProcessManager, arrived: list[RecordedEvent]) -> ProcessManager:
    """``manager``, reacting only to the ``when`` events (not to what it appends itself)."""
    ids = {e.event_id for e in arrived}

    def only(handler: ProcessHandler) -> ProcessHandler:
        if inspect.iscoroutinefunction(handler):

            async def react_async(event: RecordedEvent, context: Any) -> None:
                if event.event_id in ids:
                    await handler(event, context)

            return react_async

        def react(event: RecordedEvent, context: Any) -> Any:
            return handler(event, context) if event.event_id in ids else None

        return react

    return ProcessManager(
        manager.name,
        {type_name: only(h) for type_name, h in manager.handlers.items()},
        version=manager.version,
        categories=manager.categories,
    )


def _pairs(where: str, events: Sequence[Any]) -> list[Pair]:
    if len(events) == 1 and isinstance(events[0], list):
        events = events[0]
    for pair in events:
        if not (isinstance(pair, tuple) and len(pair) == 2 and isinstance(pair[0], str)):
            raise TypeError(f"{where}() takes (stream_id, event) pairs, got {pair!r}")
    return list(events)


def _matches(expected: Pair, actual: RecordedEvent) -> bool:
    stream_id, event = expected
    if stream_id != actual.stream_id:
        return False
    if isinstance(event, NewEvent):
        return (event.type, msgspec.to_builtins(event.data)) == (
            actual.type,
            msgspec.json.decode(actual.raw_data),
        )
    return bool(event == actual.data)


def _count(n: int) -> str:
    return "nothing" if n == 0 else f"{n} event{'' if n == 1 else 's'}"


def _error(err: BaseException) -> str:
    return f"{type(err).__name__}: {err}"


def _listing(events: Sequence[RecordedEvent]) -> str:
    return "\n".join(f"  {i}  {e.stream_id!r}: {_shown(e)}" for i, e in enumerate(events, 1))


def _shown(event: RecordedEvent) -> str:
    data = event.data
    return f"{event.type} {data!r}" if isinstance(data, (dict, list)) else repr(data)


def _short(pairs: list[Pair]) -> str:
    if len(pairs) <= 3:
        return ", ".join(f"{s!r}: {e!r}" for s, e in pairs)
    stream_id, event = pairs[-1]
    return f"{len(pairs)} events, the last {stream_id!r}: {event!r}"
