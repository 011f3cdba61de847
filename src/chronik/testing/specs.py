"""Given/when/then specifications for deciders and aggregates, in plain pytest.

A specification replays the ``given`` events, runs the ``when`` command, and checks
what it decided, with no store at all::

    given = Specification(order_decider).given

    def test_cannot_submit_an_empty_order() -> None:
        given(OrderCreated("ada")).when(SubmitOrder()).then_raises(OrderError)

    def test_adding_an_item() -> None:
        given(OrderCreated("ada")).when(AddItem("book", 1, 1200)).then(OrderItemAdded("book", 1, 1200))

For an aggregate, pass the class and make the command a function of the aggregate:
``Specification(BankAccount).given(...).when(lambda account: account.withdraw(50))``.

A failed expectation raises ``AssertionError`` with the expected and the actual
events side by side.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar, overload

from chronik._model import Model, check_decision
from chronik.aggregate import Aggregate
from chronik.codec import EventRegistry
from chronik.decider import Decider
from chronik.errors import UnhandledEventError
from chronik.handling import as_model

__all__ = ["Given", "Specification", "When"]

C = TypeVar("C")
S = TypeVar("S")
A = TypeVar("A", bound=Aggregate)
X = TypeVar("X", bound=BaseException)

_STREAM = "(spec)"
_SIDE_BY_SIDE_WIDTH = 60


class Specification(Generic[C, S]):
    """The starting point of given/when/then tests for one decider or aggregate class.

    With ``registry``, decided events must also be of registered types, as they must
    be when a real handler appends them.
    """

    @overload
    def __init__(
        self: Specification[C, S], model: Decider[C, Any, S], *, registry: EventRegistry | None = None
    ) -> None: ...

    @overload
    def __init__(
        self: Specification[Callable[[A], object], A],
        model: type[A],
        *,
        registry: EventRegistry | None = None,
    ) -> None: ...

    def __init__(self, model: Any, *, registry: EventRegistry | None = None) -> None:
        self.model: Model[C, S] = as_model(model)
        self.registry = registry

    def given(self, *events: object) -> Given[C, S]:
        """The events already in the stream: ``given(a, b)``, ``given([a, b])`` or ``given()``."""
        if len(events) == 1 and isinstance(events[0], (list, tuple)):
            events = tuple(events[0])
        return Given(self, list(events))


class Given(Generic[C, S]):
    """A specification with its history; say what happens next with :meth:`when`."""

    def __init__(self, spec: Specification[C, S], events: list[object]) -> None:
        self._spec = spec
        self._events = events

    def when(self, command: C) -> When[S]:
        """The command to decide against the state the given events lead to."""
        self._spec.model.check_command(command)
        return When(self._spec, self._events, command)


class When(Generic[S]):
    """A specification ready to check: :meth:`then`, :meth:`then_raises` or :meth:`then_nothing`."""

    def __init__(self, spec: Specification[Any, S], given: list[object], command: object) -> None:
        self._model = spec.model
        self._registry = spec.registry
        self._given = given
        self._command = command

    def _run(self) -> tuple[list[object], S] | Exception:
        """The decided events and the state after them, or what the command raised."""
        model = self._model
        state = model.initial()
        for version, event in enumerate(self._given, 1):
            if not model.handles(event):
                raise UnhandledEventError(
                    f"given event {version}, {event!r}, has no handler in {model.label}",
                    stream_id=_STREAM,
                    version=version,
                    type=type(event).__qualname__,
                )
            state = model.evolve(state, event)
        state = model.bind(state, _STREAM, len(self._given))
        try:
            decided = check_decision(
                model.decide(self._command, state), model, _STREAM, len(self._given), self._registry
            )
        except Exception as err:
            return err
        return decided, model.after(state, decided)

    def _scene(self) -> str:
        if not self._given:
            given = "no events"
        elif len(self._given) <= 3:
            given = ", ".join(map(repr, self._given))
        else:
            given = f"{len(self._given)} events, the last {self._given[-1]!r}"
        return f"  given {given}\n  when  {self._model.describe(self._command)}"

    def then(self, *expected: object) -> S:
        """Assert that the command decided exactly ``expected``, in order; return the new state."""
        if len(expected) == 1 and isinstance(expected[0], (list, tuple)):
            expected = tuple(expected[0])
        outcome = self._run()
        if isinstance(outcome, Exception):
            raise AssertionError(
                f"expected the command to decide {_count(len(expected))}, but it raised "
                f"{_error(outcome)}\n{self._scene()}"
            ) from outcome
        decided, state = outcome
        if list(expected) != decided:
            raise AssertionError(
                f"the command decided other events than expected\n{self._scene()}\n\n"
                f"{_side_by_side(list(expected), decided)}"
            )
        return state

    def then_raises(self, error: type[X], *, match: str | None = None) -> X:
        """Assert that the command raised ``error`` (whose message matches ``match``); return it."""
        outcome = self._run()
        if not isinstance(outcome, Exception):
            decided = _listing(outcome[0]) if outcome[0] else "  (nothing)"
            raise AssertionError(
                f"expected the command to raise {error.__name__}, but it decided:\n{decided}\n{self._scene()}"
            )
        if not isinstance(outcome, error):
            raise AssertionError(
                f"expected the command to raise {error.__name__}, but it raised "
                f"{_error(outcome)}\n{self._scene()}"
            ) from outcome
        if match is not None and not re.search(match, str(outcome)):
            raise AssertionError(
                f"the command raised {error.__name__} as expected, but its message "
                f"{str(outcome)!r} does not match {match!r}\n{self._scene()}"
            ) from outcome
        return outcome

    def then_nothing(self) -> S:
        """Assert that the command decided no events (and raised nothing); return the state."""
        outcome = self._run()
        if isinstance(outcome, Exception):
            raise AssertionError(
                f"expected the command to decide nothing, but it raised {_error(outcome)}\n{self._scene()}"
            ) from outcome
        decided, state = outcome
        if decided:
            raise AssertionError(
                "expected the command to decide nothing, but it decided:\n"
                f"{_listing(decided)}\n{self._scene()}"
            )
        return state


def _count(n: int) -> str:
    return "nothing" if n == 0 else f"{n} event{'' if n == 1 else 's'}"


def _error(err: BaseException) -> str:
    return f"{type(err).__name__}: {err}"


def _listing(events: Sequence[object]) -> str:
    return "\n".join(f"  {i}  {e!r}" for i, e in enumerate(events, 1))


def _side_by_side(expected: list[object], actual: list[object]) -> str:
    """Expected and actual events by position, marking where they differ."""
    rows = []
    for i in range(max(len(expected), len(actual))):
        left = repr(expected[i]) if i < len(expected) else "(none)"
        right = repr(actual[i]) if i < len(actual) else "(none)"
        same = i < len(expected) and i < len(actual) and expected[i] == actual[i]
        rows.append((str(i + 1), left, right, same))
    width = max([len("expected"), *(len(left) for _, left, _, _ in rows)])
    if width <= _SIDE_BY_SIDE_WIDTH:
        lines = [f"  #  {'expected':<{width}}  | actual"]
        for number, left, right, same in rows:
            mark = "" if same else "   <- differs"
            lines.append(f"  {number:<2} {left:<{width}}  | {right}{mark}")
        return "\n".join(lines)
    lines = []
    for number, left, right, same in rows:
        mark = "" if same else "   <- differs"
        lines.append(f"  {number:<2} expected: {left}\n     actual:   {right}{mark}")
    return "\n".join(lines)
