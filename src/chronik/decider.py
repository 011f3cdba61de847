"""The decider: a model written as three plain values.

``decide(command, state)`` returns the events a command causes (or raises to refuse
it), ``evolve(state, event)`` returns the state after one event, and
``initial_state`` is the state of a stream with no events. Both functions are pure,
so a decider is tested without a store and shared by every backend::

    order = Decider(decide=decide, evolve=evolve, initial_state=Order(), category="order")

States should be immutable values (frozen msgspec Structs or dataclasses): the same
``initial_state`` object starts every stream.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import Any, Generic, TypeVar

from chronik._model import Model, validate_category
from chronik.errors import ConfigurationError

__all__ = ["Decider"]

C = TypeVar("C")
E = TypeVar("E")
S = TypeVar("S")


@dataclasses.dataclass(frozen=True)
class Decider(Generic[C, E, S]):
    """A model as ``decide``, ``evolve`` and ``initial_state``, generic over command, event, state.

    ``category`` limits the decider to streams of that category (``order`` for
    ``order-42``): a command sent to another stream is refused before any I/O.
    ``name`` is the stored type of its snapshots (default: the category).
    """

    decide: Callable[[C, S], Iterable[E]]
    evolve: Callable[[S, E], S]
    initial_state: S
    category: str | None = None
    name: str | None = None

    def __post_init__(self) -> None:
        for field in ("decide", "evolve"):
            if not callable(getattr(self, field)):
                raise ConfigurationError(f"Decider {field} must be a function, got {getattr(self, field)!r}")
        validate_category(self.category, "Decider")
        if self.name is not None and (not isinstance(self.name, str) or not self.name):
            raise ConfigurationError(f"Decider name must be a non-empty str, got {self.name!r}")

    def fold(self, events: Iterable[E]) -> S:
        """The state after ``events``, starting from ``initial_state``."""
        current = self.initial_state
        for event in events:
            current = self.evolve(current, event)
        return current


class DeciderModel(Model[C, S]):
    """A :class:`Decider` as the machinery sees it."""

    def __init__(self, decider: Decider[C, Any, S]) -> None:
        self.decider = decider
        self.category = decider.category
        self.name = decider.name or decider.category or "decider"
        self.label = f"decider {self.name!r}"
        initial = decider.initial_state
        self.state_type = None if initial is None else type(initial)

    def initial(self) -> S:
        return self.decider.initial_state

    def handles(self, event: object) -> bool:
        return True

    def evolve(self, state: S, event: object) -> S:
        return self.decider.evolve(state, event)

    def decide(self, command: C, state: S) -> object:
        return self.decider.decide(command, state)

    def after(self, state: S, events: list[object]) -> S:
        for event in events:
            state = self.decider.evolve(state, event)
        return state
