"""Fixtures and helpers every conformance test class shares."""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import uuid
from collections.abc import Callable, Coroutine, Iterator, Mapping
from typing import Any, ClassVar, TypeVar

import msgspec
import pytest

import chronik
from chronik.codec import EventRegistry
from chronik.events import NewEvent
from chronik.store import (
    AppendHooks,
    AsyncAppendHooks,
    AsyncCheckpointStore,
    AsyncDCBStore,
    AsyncEventRepair,
    AsyncEventStore,
    AsyncProjectionStateStore,
    AsyncRunnerHeartbeats,
    AsyncSnapshotStore,
    AsyncStreamDeletion,
    AsyncStreamRetention,
    AsyncSubjectKeyStore,
    AsyncSubscribable,
    AsyncTransactional,
    CheckpointStore,
    DCBStore,
    EventRepair,
    EventStore,
    ProjectionStateStore,
    RunnerHeartbeats,
    SnapshotStore,
    StreamDeletion,
    StreamRetention,
    SubjectKeyStore,
    Subscribable,
    Transactional,
)
from chronik.testing.bridge import BlockingStore

__all__ = [
    "CAPABILITIES",
    "Blocking",
    "ConformanceBase",
    "Deposited",
    "OpenStore",
    "Renamed",
    "StoreFactory",
    "capabilities",
    "event",
    "face_of",
    "make_registry",
    "native",
    "needs",
    "new_stream",
    "require",
    "run",
]

OpenStore = Callable[..., EventStore]
T = TypeVar("T")

CAPABILITIES: dict[str, tuple[type, type]] = {
    "snapshots": (SnapshotStore, AsyncSnapshotStore),
    "checkpoints": (CheckpointStore, AsyncCheckpointStore),
    "subscriptions": (Subscribable, AsyncSubscribable),
    "transactions": (Transactional, AsyncTransactional),
    "append_hooks": (AppendHooks, AsyncAppendHooks),
    "projection_state": (ProjectionStateStore, AsyncProjectionStateStore),
    "heartbeats": (RunnerHeartbeats, AsyncRunnerHeartbeats),
    "dcb": (DCBStore, AsyncDCBStore),
    "deletion": (StreamDeletion, AsyncStreamDeletion),
    "retention": (StreamRetention, AsyncStreamRetention),
    "repair": (EventRepair, AsyncEventRepair),
    "subject_keys": (SubjectKeyStore, AsyncSubjectKeyStore),
}
"""Each optional capability: its sync Protocol and its asyncio twin (``chronik.store``)."""


class Deposited(msgspec.Struct, frozen=True):
    """A typed test event (msgspec Struct)."""

    account: str
    amount: int
    memo: str = ""


@dataclasses.dataclass(frozen=True)
class Renamed:
    """A typed test event (frozen dataclass)."""

    name: str


def make_registry(*, strict: bool = False) -> EventRegistry:
    registry = EventRegistry(strict=strict)
    registry.register(Deposited, "Deposited", version=1)
    registry.register(Renamed, "Renamed", version=1)
    return registry


def event(type: str = "Happened", **data: Any) -> NewEvent:
    """A :class:`NewEvent` with a fresh id and ``data`` as its payload."""
    return NewEvent(type, data or {"n": 0}, event_id=chronik.uuid7())


def new_stream(category: str = "test") -> str:
    """A stream id no other test uses: ``category-<random>``."""
    return f"{category}-{uuid.uuid4().hex[:12]}"


def capabilities(store: object) -> set[str]:
    """The optional capabilities ``store`` declares on its face (see :data:`CAPABILITIES`).

    A :class:`BlockingStore` is judged by the asyncio store it wraps.
    """
    if isinstance(store, BlockingStore):
        store = store.async_store
    twin = 1 if chronik.store.is_async(store) else 0
    return {name for name, protocols in CAPABILITIES.items() if isinstance(store, protocols[twin])}


@dataclasses.dataclass(frozen=True)
class StoreFactory:
    """Opens the store under test, fresh for each test, on the faces the backend offers.

    ``open(**options)`` gives a sync store, ``open_async(**options)`` an asyncio one
    (either may be None: that face is not tested). Options are ``chronik.connect``'s
    (``registry``, ``max_event_size``...). Within one test every call opens the same
    store when ``shared`` (a second handle sees the first one's events).
    ``process_url``: a URL other processes can open the same store with; the tests
    that write from other processes skip without it.
    """

    open: Callable[..., EventStore] | None = None
    open_async: Callable[..., AsyncEventStore] | None = None
    process_url: str | None = None
    shared: bool = False

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        sync: bool = True,
        asyncio: bool = True,
        processes: bool = False,
        shared: bool = True,
        **defaults: Any,
    ) -> StoreFactory:
        """A factory opening ``url`` with ``chronik.connect`` / ``chronik.connect_async``.

        ``processes``: other processes can open ``url`` too (it becomes ``process_url``).
        ``shared``: opening ``url`` twice opens the same store. ``defaults``: options
        every open gets unless the test gives its own.
        """

        def open_(**options: Any) -> EventStore:
            store: EventStore = chronik.connect(url, **{**defaults, **options})
            return store

        def open_async(**options: Any) -> AsyncEventStore:
            store: AsyncEventStore = chronik.connect_async(url, **{**defaults, **options})
            return store

        return cls(
            open_ if sync else None,
            open_async if asyncio else None,
            process_url=url if processes else None,
            shared=shared,
        )

    @property
    def faces(self) -> tuple[str, ...]:
        return tuple(
            face for face, opener in (("sync", self.open), ("async", self.open_async)) if opener is not None
        )


def run(store: EventStore, coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on the event loop of the asyncio store behind ``store`` (a bridge)."""
    assert isinstance(store, BlockingStore)
    return asyncio.run_coroutine_threadsafe(coro, store._loop).result()


def native(store: EventStore) -> Any:
    """The store of the face under test: the sync store, or the asyncio one behind the bridge."""
    return store.async_store if isinstance(store, BlockingStore) else store


class Blocking:
    """Any object of the asyncio face seen as its sync twin: every coroutine a method
    returns is run on the bridge's event loop and its result returned (``execute``
    results are wrapped too, so ``fetchall()`` works on either face)."""

    def __init__(self, target: Any, bridge: BlockingStore) -> None:
        self._target = target
        self._bridge = bridge

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._target, name)
        if not callable(attribute):
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            result = attribute(*args, **kwargs)
            if inspect.isawaitable(result):
                result = run(self._bridge, _awaited(result))
            if name == "execute":
                return Blocking(result, self._bridge)
            return result

        return call


async def _awaited(awaitable: Any) -> Any:
    return await awaitable


def face_of(store: EventStore) -> Any:
    """The face under test as a sync object: the store itself, or a :class:`Blocking`
    over the asyncio store (for capabilities the bridge does not forward)."""
    if isinstance(store, BlockingStore):
        return Blocking(store.async_store, store)
    return store


C = TypeVar("C", bound=type)


def needs(capability: str) -> Callable[[C], C]:
    """Class decorator: every test the class defines runs only where the store on the
    face under test declares ``capability`` (a key of :data:`CAPABILITIES`)."""
    assert capability in CAPABILITIES, capability

    def mark(cls: C) -> C:
        for name, member in vars(cls).items():
            if name.startswith("test_") and callable(member):
                member._chronik_needs = capability
        return cls

    return mark


class ConformanceBase:
    """Implement the ``store_factory`` fixture; every test runs on each face it offers.

    ``known_deviations``: tests the store is known to fail, by name (``"test_x"``, or
    ``"test_x[sync]"`` for one face), with the reason. They are marked as expected
    failures (strict: one that starts passing fails, so the entry gets removed).

    ``append_beside_own_transaction``: what ``store.append`` does while the same thread
    (or task) has a transaction open: ``"refused"`` (``InvalidInputError``: a store with
    one writer, which the transaction holds) or ``"accepted"`` (it commits apart, on
    another connection, as on PostgreSQL). Never a deadlock either way.

    ``append_many_streams``: how many streams one ``append_many`` may write, atomically:
    ``"several"`` (a SQL store: one transaction) or ``"one"`` (a store that cannot
    commit several streams atomically, as NATS JetStream before 2.12: it refuses a
    call naming several with ``InvalidInputError``, mentioning atomicity, before
    writing anything, and the tests hold it to exactly that).
    """

    known_deviations: ClassVar[Mapping[str, str]] = {}
    append_beside_own_transaction: ClassVar[str] = "refused"
    append_many_streams: ClassVar[str] = "several"

    @pytest.fixture(autouse=True)
    def _applies(self, request: pytest.FixtureRequest) -> None:
        node = request.node
        name = getattr(node, "originalname", node.name)
        face = getattr(getattr(node, "callspec", None), "params", {}).get("face")
        reason = self.known_deviations.get(f"{name}[{face}]") or self.known_deviations.get(name)
        if reason is not None:
            node.add_marker(pytest.mark.xfail(reason=reason, strict=True))
        capability = getattr(request.function, "_chronik_needs", None)
        if capability is not None:
            require(request.getfixturevalue("store"), capability)

    @pytest.fixture(params=["sync", "async"])
    def face(self, request: pytest.FixtureRequest, store_factory: StoreFactory) -> str:
        face: str = request.param
        if face not in store_factory.faces:
            pytest.skip(f"this store has no {face} face")
        return face

    @pytest.fixture
    def open_store(self, store_factory: StoreFactory, face: str) -> Iterator[OpenStore]:
        opened: list[EventStore] = []

        def open_(**options: Any) -> EventStore:
            options["registry"] = options.get("registry") or make_registry()
            store: EventStore
            if face == "sync":
                assert store_factory.open is not None
                store = store_factory.open(**options)
            else:
                assert store_factory.open_async is not None
                store = BlockingStore(store_factory.open_async(**options))
            opened.append(store)
            return store

        yield open_
        for store in opened:
            if isinstance(store, BlockingStore):
                store.shutdown()
            else:
                store.close()

    @pytest.fixture
    def store(self, open_store: OpenStore) -> EventStore:
        return open_store()

    @pytest.fixture
    def process_url(self, store_factory: StoreFactory) -> str:
        """The URL other processes open the store with (skips when there is none)."""
        if store_factory.process_url is None:
            pytest.skip("this store cannot be shared between processes")
        return store_factory.process_url


def require(store: EventStore, capability: str) -> None:
    """Skip unless the store on the face under test declares ``capability``."""
    if capability not in capabilities(store):
        face = "asyncio" if isinstance(store, BlockingStore) else "sync"
        pytest.skip(f"the {face} face of this store does not declare {capability}")
