"""Aggregates: a model written as a class.

Command methods check the rules and :meth:`~Aggregate.record` events; methods marked
``@applies(EventType)`` apply one event type to the state, for new events and for
stored ones alike. Events are explicit classes registered with the store's registry;
handlers are found through the ``@applies`` mark, never by method name, and there is
no metaclass::

    @dataclass
    class BankAccount(Aggregate):
        category = "account"
        balance: int = 0

        def deposit(self, amount: int) -> None:
            if amount <= 0:
                raise ValueError("deposit a positive amount")
            self.record(Deposited(amount))

        @applies(Deposited)
        def _deposited(self, event: Deposited) -> None:
            self.balance += event.amount

An aggregate whose state is in dataclass fields can be snapshotted as it is. The
handler creates aggregates with ``YourClass()``, so every field needs a default.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
from collections.abc import Callable
from typing import Any, ClassVar, Final, TypeVar, overload

import msgspec

from chronik._model import Model, validate_category
from chronik.errors import ConfigurationError, InvalidInputError, NotAnEventError, UnhandledEventError

__all__ = ["Aggregate", "applies"]

A = TypeVar("A", bound="Aggregate")
S = TypeVar("S")
T1 = TypeVar("T1")
T2 = TypeVar("T2")
T3 = TypeVar("T3")
T4 = TypeVar("T4")

_MARK: Final = "__chronik_applies__"


# Typed so that the method takes what it is marked for: ``@applies(Deposited)`` on a
# method whose event parameter is a ``Withdrawn`` is an error for type checkers, and
# ``@applies(A, B)`` wants a method that takes ``A | B``.
@overload
def applies(t1: type[T1], /) -> Callable[[Callable[[S, T1], None]], Callable[[S, T1], None]]: ...
@overload
def applies(
    t1: type[T1], t2: type[T2], /
) -> Callable[[Callable[[S, T1 | T2], None]], Callable[[S, T1 | T2], None]]: ...
@overload
def applies(
    t1: type[T1], t2: type[T2], t3: type[T3], /
) -> Callable[[Callable[[S, T1 | T2 | T3], None]], Callable[[S, T1 | T2 | T3], None]]: ...
@overload
def applies(
    t1: type[T1], t2: type[T2], t3: type[T3], t4: type[T4], /
) -> Callable[[Callable[[S, T1 | T2 | T3 | T4], None]], Callable[[S, T1 | T2 | T3 | T4], None]]: ...
@overload
def applies(*event_types: type) -> Callable[[Callable[[S, Any], None]], Callable[[S, Any], None]]: ...
def applies(*event_types: type) -> Callable[[Callable[[S, Any], None]], Callable[[S, Any], None]]:
    """Mark an aggregate method as the one that applies events of these types to the state."""
    if not event_types:
        raise ConfigurationError("@applies needs at least one event class: @applies(Deposited)")
    for event_type in event_types:
        if not isinstance(event_type, type):
            raise ConfigurationError(f"@applies takes event classes, got {event_type!r}")

    def mark(method: Callable[[S, Any], None]) -> Callable[[S, Any], None]:
        setattr(method, _MARK, (*getattr(method, _MARK, ()), *event_types))
        return method

    return mark


class Aggregate:
    """Base class of class-based models; see the module docstring for an example.

    ``category`` (a class attribute) limits the aggregate to streams of that
    category. :attr:`version` is the stream version the aggregate reflects and
    :attr:`pending_events` what it recorded since; the command handler keeps both.
    """

    # Slots, not instance attributes: they stay out of dataclass fields, equality
    # and snapshots, and do not clash with the application's own attribute names.
    __slots__ = ("_chronik_pending", "_chronik_stream_id", "_chronik_version")

    category: ClassVar[str | None] = None
    _chronik_handlers: ClassVar[dict[type, str]] = {}
    # Event type -> handler function, or None: the MRO walk is done once per type.
    _chronik_resolved: ClassVar[dict[type, Callable[[Any, Any], object] | None]] = {}

    _chronik_pending: list[object]
    _chronik_stream_id: str
    _chronik_version: int

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        validate_category(cls.category, cls.__qualname__)
        handlers: dict[type, str] = {}
        for klass in reversed(cls.__mro__):
            own: dict[type, str] = {}
            for name, member in vars(klass).items():
                for event_type in getattr(member, _MARK, ()):
                    if event_type in own:
                        raise ConfigurationError(
                            f"{klass.__qualname__} has two handlers for {event_type.__qualname__}: "
                            f"{own[event_type]} and {name}"
                        )
                    own[event_type] = name
            handlers.update(own)
        # By name, so a subclass that overrides a handler method is the one called.
        cls._chronik_handlers = handlers
        cls._chronik_resolved = {}

    @property
    def version(self) -> int:
        """The stream version this aggregate reflects (0 for a new stream)."""
        try:
            return self._chronik_version
        except AttributeError:
            return 0

    @property
    def pending_events(self) -> list[object]:
        """Events recorded since the aggregate was loaded, not stored yet (a copy)."""
        return list(self._pending())

    def record(self, event: object) -> None:
        """Apply a new event to this aggregate and keep it to be stored."""
        if not (isinstance(event, msgspec.Struct) or _is_dataclass_instance(event)):
            raise NotAnEventError(
                f"{type(self).__qualname__} recorded {event!r}, a {type(event).__qualname__}, "
                "which is not an event (events are frozen msgspec Structs or dataclasses)",
                stream_id=self._where()[0],
                version=self.version,
                type=type(event).__qualname__,
            )
        self.apply(event)
        self._pending().append(event)

    def apply(self, event: object) -> None:
        """Apply one event, new or stored, with the method marked ``@applies`` for its type."""
        try:
            handler = type(self)._chronik_resolved[type(event)]
        except KeyError:
            handler = _resolve(type(self), type(event))
        if handler is None:
            stream_id, where = self._where()
            raise UnhandledEventError(
                f"{type(self).__qualname__} has no handler for {type(event).__qualname__}{where}; "
                f"mark the method that applies it with @applies({type(event).__qualname__})",
                stream_id=stream_id,
                version=self.version,
                type=type(event).__qualname__,
            )
        handler(self, event)

    def _pending(self) -> list[object]:
        try:
            return self._chronik_pending
        except AttributeError:
            self._chronik_pending = []
            return self._chronik_pending

    def _where(self) -> tuple[str, str]:
        try:
            stream_id = self._chronik_stream_id
        except AttributeError:
            return "", ""
        return stream_id, f" (stream {stream_id!r} at version {self.version})"


def _is_dataclass_instance(value: object) -> bool:
    return dataclasses.is_dataclass(value) and not isinstance(value, type)


def _resolve(cls: type[Aggregate], event_type: type) -> Callable[[Any, Any], object] | None:
    """The function that applies ``event_type`` to a ``cls``, remembered on the class."""
    name = _handler_name(cls, event_type)
    handler = None if name is None else getattr(cls, name)
    cls._chronik_resolved[event_type] = handler
    return handler


def _handler_name(cls: type[Aggregate], event_type: type) -> str | None:
    handlers = cls._chronik_handlers
    for klass in event_type.__mro__:
        name = handlers.get(klass)
        if name is not None:
            return name
    return None


class AggregateModel(Model[Callable[[A], object], A]):
    """An :class:`Aggregate` subclass as the machinery sees it.

    A command is a function that takes the aggregate and calls its methods, such as
    ``lambda account: account.deposit(100)``.
    """

    def __init__(self, cls: type[A]) -> None:
        try:
            inspect.signature(cls).bind()
        except TypeError as err:
            raise ConfigurationError(
                f"{cls.__qualname__}() must work without arguments, so that the handler can "
                f"start every stream from it: give every field a default ({err})"
            ) from err
        except ValueError:  # no signature to inspect: find out when it is first called
            pass
        self.cls = cls
        self.name = cls.__name__
        self.label = f"aggregate {cls.__qualname__}"
        self.decided = "recorded"
        self.category = cls.category
        self.state_type = cls if dataclasses.is_dataclass(cls) else None

    def initial(self) -> A:
        return self.cls()

    def handles(self, event: object) -> bool:
        resolved = self.cls._chronik_resolved
        handler = resolved[type(event)] if type(event) in resolved else _resolve(self.cls, type(event))
        return handler is not None

    def evolve(self, state: A, event: object) -> A:
        state.apply(event)
        return state

    def evolver(self, event_type: type) -> Callable[[A, object], A]:
        resolved = self.cls._chronik_resolved
        handler = resolved[event_type] if event_type in resolved else _resolve(self.cls, event_type)
        if handler is None:
            return self.evolve  # which names the missing handler

        def evolve(state: A, event: object) -> A:
            handler(state, event)
            return state

        return evolve

    def check_command(self, command: object) -> None:
        if not callable(command):
            raise InvalidInputError(
                f"a command for {self.label} is a function that takes the aggregate, such as "
                f"lambda {self.name.lower()}: {self.name.lower()}.some_method(...); got {command!r}"
            )

    def decide(self, command: Callable[[A], object], state: A) -> object:
        command(state)
        pending = state._pending()
        state._chronik_pending = []
        return pending

    def after(self, state: A, events: list[object]) -> A:
        return state  # record() applied each event as it was recorded

    def bind(self, state: A, stream_id: str, version: int) -> A:
        state._chronik_stream_id = stream_id
        state._chronik_version = version
        state._chronik_pending = []
        return state

    def describe(self, command: object) -> str:
        if getattr(command, "__name__", None) == "<lambda>":
            code = getattr(command, "__code__", None)
            where = f" at {os.path.basename(code.co_filename)}:{code.co_firstlineno}" if code else ""
            return f"a lambda on {self.cls.__qualname__}{where}"
        name = getattr(command, "__qualname__", None)
        return name if isinstance(name, str) else repr(command)
