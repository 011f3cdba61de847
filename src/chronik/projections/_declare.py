"""Projections declared as values: a name, a version, handlers by event type, setup and teardown."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Generic, TypeVar, overload

from chronik._append import normalize_filter
from chronik.codec import EventRegistry
from chronik.errors import InvalidInputError
from chronik.events import RecordedEvent
from chronik.projections.errors import DuplicateProjectionError

__all__ = ["EventHandlers", "Handler", "Hook", "Projection", "Projections"]

C = TypeVar("C")
T1 = TypeVar("T1")
T2 = TypeVar("T2")
T3 = TypeVar("T3")
T4 = TypeVar("T4")
R = TypeVar("R", bound="Awaitable[None] | None")
Handler = Callable[[RecordedEvent, C], Awaitable[None] | None]
"""A handler: the event, and the context of the read model (a SQL transaction, a
Redis pipeline, a dict...). For read models that are not committed with the
checkpoint it must be idempotent by ``event.position``. On an asyncio runner it may
be a coroutine function (its result is awaited); a sync runner refuses one."""
Hook = Callable[[C], Awaitable[None] | None]
"""``setup``, ``teardown`` or ``activate``: given the read model's context; a coroutine
function on an asyncio runner, as handlers."""


class EventHandlers(Mapping[str, Handler[C]]):
    """Handlers by event type, registered by class, so that each handler sees its type.

    ``@handlers.on(BookAdded)`` registers a handler under ``BookAdded``'s stored type
    name (from ``registry``), and type checkers hold the handler to it: it takes a
    ``RecordedEvent[BookAdded]`` (its ``event.data`` is a ``BookAdded``) and the
    context ``C``; a handler annotated for another type is an error. Several classes
    give a union: ``@handlers.on(A, B)`` takes a ``RecordedEvent[A | B]``. A stored
    type name (an unregistered type) gives a ``RecordedEvent[Any]``. It is a mapping
    of type names to handlers, so a :class:`Projection` or a process manager takes it
    as its ``handlers``::

        handlers = EventHandlers[Executor](registry)

        @handlers.on(BookAdded)
        def added(event: RecordedEvent[BookAdded], db: Executor) -> None:
            db.execute("INSERT INTO books VALUES (?)", (event.data.isbn,))

        books = Projection("books", handlers)
    """

    def __init__(self, registry: EventRegistry) -> None:
        if not isinstance(registry, EventRegistry):
            raise InvalidInputError(
                f"EventHandlers takes the EventRegistry its event classes are registered in, "
                f"got {type(registry).__name__}"
            )
        self.registry = registry
        self._handlers: dict[str, Handler[C]] = {}

    @overload
    def on(
        self, t1: type[T1], /
    ) -> Callable[[Callable[[RecordedEvent[T1], C], R]], Callable[[RecordedEvent[T1], C], R]]: ...
    @overload
    def on(
        self, t1: type[T1], t2: type[T2], /
    ) -> Callable[[Callable[[RecordedEvent[T1 | T2], C], R]], Callable[[RecordedEvent[T1 | T2], C], R]]: ...
    @overload
    def on(
        self, t1: type[T1], t2: type[T2], t3: type[T3], /
    ) -> Callable[
        [Callable[[RecordedEvent[T1 | T2 | T3], C], R]], Callable[[RecordedEvent[T1 | T2 | T3], C], R]
    ]: ...
    @overload
    def on(
        self, t1: type[T1], t2: type[T2], t3: type[T3], t4: type[T4], /
    ) -> Callable[
        [Callable[[RecordedEvent[T1 | T2 | T3 | T4], C], R]],
        Callable[[RecordedEvent[T1 | T2 | T3 | T4], C], R],
    ]: ...
    @overload
    def on(
        self, *types: type[Any] | str
    ) -> Callable[[Callable[[RecordedEvent[Any], C], R]], Callable[[RecordedEvent[Any], C], R]]: ...
    def on(
        self, *types: type[Any] | str
    ) -> Callable[[Callable[[RecordedEvent[Any], C], R]], Callable[[RecordedEvent[Any], C], R]]:
        """Decorator: register the handler for events of these classes (or stored type names)."""
        if not types:
            raise InvalidInputError("on() needs at least one event class: @handlers.on(BookAdded)")
        names: list[str] = []
        for event_type in types:
            if isinstance(event_type, str) and event_type:
                names.append(event_type)
            elif isinstance(event_type, type):
                names.append(self.registry.type_of(event_type)[0])
            else:
                raise InvalidInputError(f"on() takes event classes or stored type names, got {event_type!r}")

        def register(handler: Callable[[RecordedEvent[Any], C], R]) -> Callable[[RecordedEvent[Any], C], R]:
            if not callable(handler):
                raise InvalidInputError(f"on({', '.join(names)}) decorates a function, got {handler!r}")
            for name in names:
                existing = self._handlers.get(name)
                if existing is not None:
                    raise InvalidInputError(
                        f"{name!r} has a handler already ({_name_of(existing)}); "
                        f"one handler per event type, so {_name_of(handler)} cannot be added"
                    )
            for name in names:
                self._handlers[name] = handler
            return handler

        return register

    def __getitem__(self, type_name: str) -> Handler[C]:
        return self._handlers[type_name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._handlers)

    def __len__(self) -> int:
        return len(self._handlers)

    def __repr__(self) -> str:
        return f"EventHandlers({ {name: _name_of(h) for name, h in self._handlers.items()} })"


def _name_of(handler: object) -> str:
    name = getattr(handler, "__qualname__", None)
    return name if isinstance(name, str) else repr(handler)


def _check_name(name: object) -> str:
    if not isinstance(name, str) or not name or len(name) > 150 or not name.isprintable() or ":" in name:
        raise InvalidInputError(
            f"projection name must be a non-empty printable str of at most 150 characters "
            f"without ':', got {name!r}"
        )
    return name


@dataclass(frozen=True, eq=True)
class Projection(Generic[C]):
    """A projection: which events it handles and how they change its read model.

    ``handlers`` maps stored event type names to handlers. ``setup`` creates the read
    model (it runs once per build, before the first event, and must be idempotent
    when the read model is not committed with the checkpoint); ``teardown`` removes
    it (on reset, and when a newer version replaces this one). ``activate`` runs in
    the unit that makes this version the one that serves queries, e.g. to re-point
    a view at this version's table.

    A new ``version`` builds beside the old one (blue/green): give each version's
    read model its own tables or keys, e.g. ``f"orders_v{version}"``.
    """

    name: str
    handlers: Mapping[str, Handler[C]]
    version: int = 1
    setup: Hook[C] | None = None
    teardown: Hook[C] | None = None
    activate: Hook[C] | None = None
    categories: tuple[str, ...] | None = None
    """Only events of these stream categories (default: every category)."""
    description: str = field(default="", compare=False)
    fallback: Handler[C] | None = None
    """The handler of events of every type that has no handler of its own; with it the
    projection reads events of every type (of its categories), e.g. to forward them
    all elsewhere, as a relay does."""

    def __post_init__(self) -> None:
        _check_name(self.name)
        if isinstance(self.version, bool) or not isinstance(self.version, int) or self.version < 1:
            raise InvalidInputError(
                f"projection {self.name!r}: version must be an int >= 1, got {self.version!r}"
            )
        if not isinstance(self.handlers, Mapping) or not (self.handlers or self.fallback is not None):
            raise InvalidInputError(f"projection {self.name!r} needs handlers: {{'EventType': handler}}")
        for type_name, handler in self.handlers.items():
            if not isinstance(type_name, str) or not type_name:
                raise InvalidInputError(
                    f"projection {self.name!r}: handlers are keyed by stored type name, got {type_name!r}"
                )
            if not callable(handler):
                raise InvalidInputError(
                    f"projection {self.name!r}: handler for {type_name!r} is not callable"
                )
        for hook in ("setup", "teardown", "activate", "fallback"):
            value = getattr(self, hook)
            if value is not None and not callable(value):
                raise InvalidInputError(f"projection {self.name!r}: {hook} must be callable")
        object.__setattr__(self, "handlers", MappingProxyType(dict(self.handlers)))
        object.__setattr__(self, "categories", normalize_filter(self.categories, "categories"))

    @property
    def types(self) -> tuple[str, ...]:
        """The event types it has handlers for, in declaration order."""
        return tuple(self.handlers)

    @property
    def type_filter(self) -> tuple[str, ...] | None:
        """The event types it reads: those it has handlers for, or every type (None)
        when it has a ``fallback``."""
        return None if self.fallback is not None else tuple(self.handlers)

    @property
    def checkpoint_name(self) -> str:
        """The name its checkpoint is stored under: ``projection:<name>:v<version>``."""
        return f"projection:{self.name}:v{self.version}"

    def handle(self, event: RecordedEvent, context: C) -> Awaitable[None] | None:
        """Apply ``event`` to the read model (events of types it does not handle are ignored).

        Returns what the handler returned: an awaitable for a coroutine function."""
        handler = self.handlers.get(event.type, self.fallback)
        if handler is not None:
            return handler(event, context)
        return None

    def __repr__(self) -> str:
        return f"Projection({self.name!r}, version={self.version}, types={list(self.types)})"

    def __hash__(self) -> int:
        return hash((self.name, self.version, self.types))


class Projections:
    """The projections of an application, by name; a second one with a taken name is refused."""

    def __init__(self, projections: Iterable[Projection[Any]] = ()) -> None:
        self._by_name: dict[str, Projection[Any]] = {}
        for projection in projections:
            self.add(projection)

    def add(self, projection: Projection[Any]) -> Projection[Any]:
        if not isinstance(projection, Projection):
            raise InvalidInputError(f"expected a Projection, got {type(projection).__name__}")
        existing = self._by_name.get(projection.name)
        if existing is not None:
            raise DuplicateProjectionError(
                f"projection name {projection.name!r} is taken (by {existing!r}); "
                "names must be unique — to replace a projection, give it a new version instead"
            )
        self._by_name[projection.name] = projection
        return projection

    def __getitem__(self, name: str) -> Projection[Any]:
        return self._by_name[name]

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __iter__(self) -> Iterator[Projection[Any]]:
        return iter(self._by_name.values())

    def __len__(self) -> int:
        return len(self._by_name)

    @property
    def names(self) -> list[str]:
        return sorted(self._by_name)
