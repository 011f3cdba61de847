"""Fixtures and helpers every conformance test class shares."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import msgspec
import pytest

import chronik
from chronik.codec import EventRegistry
from chronik.events import NewEvent
from chronik.store import EventStore
from chronik.testing.bridge import BlockingStore

__all__ = [
    "ConformanceBase",
    "Deposited",
    "OpenStore",
    "Renamed",
    "event",
    "make_registry",
    "new_stream",
]

OpenStore = Callable[..., EventStore]


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


class ConformanceBase:
    """Implement the ``store_url`` fixture; every test runs on the sync and async face.

    ``supports_processes``: the URL can be opened from several processes at once.
    ``supports_snapshots`` / ``supports_checkpoints``: the optional capabilities.
    """

    supports_processes: ClassVar[bool] = False
    supports_snapshots: ClassVar[bool] = True
    supports_checkpoints: ClassVar[bool] = True

    @pytest.fixture(params=["sync", "async"])
    def face(self, request: pytest.FixtureRequest) -> str:
        face: str = request.param
        return face

    @pytest.fixture
    def open_store(self, store_url: str, face: str) -> Iterator[OpenStore]:
        opened: list[EventStore] = []

        def open_(**options: Any) -> EventStore:
            registry = options.pop("registry", None) or make_registry()
            store: EventStore
            if face == "sync":
                store = chronik.connect(store_url, registry=registry, **options)
            else:
                store = BlockingStore(chronik.connect_async(store_url, registry=registry, **options))
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
