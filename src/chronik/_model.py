"""What the command handler, snapshots and test specifications need from a model.

A :class:`~chronik.Decider` and an :class:`~chronik.Aggregate` subclass are two ways
to write one thing: an initial state, a fold of events into state, and a decision
that turns a command into new events. :class:`Model` is that common shape. The
handler, the snapshot code and the specs see only a ``Model``, so loading, deciding,
retrying and snapshotting are written once for both styles.

Nothing here does I/O.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import msgspec

from chronik.codec import EventRegistry
from chronik.errors import (
    ConfigurationError,
    NotAnEventError,
    UnhandledEventError,
    UnregisteredEventError,
    WrongCategoryError,
)
from chronik.events import NewEvent, category_of

if TYPE_CHECKING:
    from chronik.events import RecordedEvent

__all__ = ["Model", "check_category", "check_decision", "fold_recorded", "validate_category"]

C = TypeVar("C")
S = TypeVar("S")


class Model(abc.ABC, Generic[C, S]):
    """A decider or an aggregate class, as the machinery sees it."""

    #: Stable short name: the stored type of this model's snapshots.
    name: str
    #: How messages refer to the model: "decider 'order'", "aggregate BankAccount".
    label: str
    #: The category of stream ids this model handles, or None for any stream.
    category: str | None
    #: The type a snapshot of the state decodes into (None when it cannot be known).
    state_type: Any
    #: How messages say that the model produced events.
    decided: str = "decided"

    @abc.abstractmethod
    def initial(self) -> S:
        """A fresh initial state (a new object for models whose state is mutable)."""

    @abc.abstractmethod
    def handles(self, event: object) -> bool:
        """Whether :meth:`evolve` knows this event's type."""

    @abc.abstractmethod
    def evolve(self, state: S, event: object) -> S:
        """The state after one event."""

    def evolver(self, event_type: type) -> Callable[[S, object], S]:
        """:meth:`evolve` for events of one type (a fold looks it up once per type)."""
        return self.evolve

    @abc.abstractmethod
    def decide(self, command: C, state: S) -> object:
        """Run the command; what it returns is checked by :func:`check_decision`."""

    @abc.abstractmethod
    def after(self, state: S, events: list[object]) -> S:
        """The state once the events a decision returned are applied."""

    def check_command(self, command: object) -> None:
        """Refuse a command of the wrong shape before any I/O."""

    def bind(self, state: S, stream_id: str, version: int) -> S:
        """Tell the state which stream and version it reflects (aggregates keep both)."""
        return state

    def describe(self, command: object) -> str:
        """A command as messages show it."""
        return repr(command)


def validate_category(category: object, owner: str) -> str | None:
    """Return a model's declared category if valid (None means any stream)."""
    if category is None:
        return None
    if not isinstance(category, str) or not category or "-" in category or not category.isprintable():
        raise ConfigurationError(
            f"{owner}: category must be a non-empty str without '-' (the part of a stream id "
            f"before the first '-'), got {category!r}"
        )
    return category


def check_category(model: Model[Any, Any], stream_id: str) -> None:
    """Refuse a stream of another category than the model's, before any I/O."""
    if model.category is not None and category_of(stream_id) != model.category:
        raise WrongCategoryError(stream_id, category_of(stream_id), model.category, model.label)


def _is_event_like(value: object) -> bool:
    return isinstance(value, msgspec.Struct) or (
        dataclasses.is_dataclass(value) and not isinstance(value, type)
    )


def check_decision(
    result: object,
    model: Model[Any, Any],
    stream_id: str,
    version: int,
    registry: EventRegistry | None,
) -> list[object]:
    """The events of a decision as a list; raise :class:`NotAnEventError` if any is not one.

    With a ``registry`` each event must be of a registered type; without one (specs
    run without a store) each must at least be a msgspec Struct or a dataclass.
    """
    where = f"for stream {stream_id!r} at version {version}"
    if result is None or isinstance(result, (str, bytes, Mapping)) or not isinstance(result, Iterable):
        hint = "return [] to decide nothing" if result is None else f"got {_short(result)}"
        if _is_event_like(result):
            hint = f"wrap the event in a list: [{_short(result)}]"
        raise NotAnEventError(
            f"{model.label} must decide a list of events {where}, not a {type(result).__qualname__}; {hint}",
            stream_id=stream_id,
            version=version,
            type=type(result).__qualname__,
        )
    events = list(result)
    for index, event in enumerate(events, 1):
        if isinstance(event, NewEvent):
            problem = "a NewEvent; return the event object itself (the handler adds ids and metadata)"
        elif registry is not None and _is_event_like(event):
            try:
                registry.type_of(type(event))
                continue
            except UnregisteredEventError:
                problem = (
                    f"of type {type(event).__qualname__}, which is not registered with the store's "
                    f"registry; register it with @registry.event('{type(event).__name__}')"
                )
        elif _is_event_like(event):
            continue
        else:
            problem = (
                f"{_short(event)}, a {type(event).__qualname__}, which is not an event "
                "(events are frozen msgspec Structs or dataclasses)"
            )
        raise NotAnEventError(
            f"{model.label} {model.decided} {len(events)} event{'' if len(events) == 1 else 's'} {where}; "
            f"event {index} is {problem}. Nothing was written",
            stream_id=stream_id,
            version=version,
            type=type(event).__qualname__,
        )
    return events


def _check_applicable(
    model: Model[Any, Any], event: RecordedEvent, data: object, registry: EventRegistry
) -> None:
    if registry.class_of(event.type) is None:
        raise UnhandledEventError(
            f"stream {event.stream_id!r} version {event.version} holds an event of type "
            f"{event.type!r}, which is not registered with this store's registry, so "
            f"{model.label} cannot apply it. Is this the right stream for {model.label}?",
            stream_id=event.stream_id,
            version=event.version,
            type=event.type,
        )
    if not model.handles(data):
        raise UnhandledEventError(
            f"stream {event.stream_id!r} version {event.version} holds an event of type "
            f"{event.type!r} ({type(data).__qualname__}) that {model.label} has no handler "
            f"for; add one with @applies({type(data).__qualname__}), or check that this is "
            f"the right stream for {model.label}",
            stream_id=event.stream_id,
            version=event.version,
            type=event.type,
        )


def fold_recorded(
    model: Model[Any, S], state: S, events: Iterable[RecordedEvent], registry: EventRegistry
) -> S:
    """Apply stored events to ``state``, in order, naming any event the model cannot apply."""
    # Each stored type is checked once per fold, not per event, and its decoder is
    # looked up once: events at the registered schema version are decoded right here
    # (about a fifth of a fold's time went to the lookups). Anything else, and any
    # payload that fails, goes through event.data, which upcasts and names the event.
    checked: dict[str, tuple[int, msgspec.json.Decoder[Any], Callable[[S, object], S]] | None] = {}
    evolve = model.evolve
    for event in events:
        fast = checked.get(event.type)
        if fast is not None and fast[0] == event.schema_version:
            try:
                data = fast[1].decode(event.raw_data)
            except (msgspec.DecodeError, msgspec.ValidationError):
                data = event.data
            apply = fast[2]
        else:
            data = event.data  # a DecodeError here already names stream, version and type
            apply = evolve
            if event.type not in checked:
                _check_applicable(model, event, data, registry)
                found = registry.decoder_of(event.type)
                checked[event.type] = None if found is None else (*found, model.evolver(type(data)))
        try:
            state = apply(state, data)
        except Exception as err:
            err.add_note(
                f"while {model.label} applied {event.type!r} at stream {event.stream_id!r} "
                f"version {event.version}"
            )
            raise
    return state


def _short(value: object, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
