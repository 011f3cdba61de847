"""A third-party backend (``chronik_dictstore``, a store over a dict written only against
``chronik.backend``) is found by its entry point and passes the conformance suite and
the capability suites it declares, on both faces, opened through ``chronik.connect``."""

from __future__ import annotations

import asyncio
import uuid
from importlib.metadata import distribution, entry_points
from pathlib import Path

import pytest

import chronik
from chronik._connect import find_backend
from chronik.testing.conformance import EventStoreConformance, StoreFactory, capabilities

PLUGIN = Path(__file__).parent


class TestDictStoreConformance(EventStoreConformance):
    @pytest.fixture
    def store_factory(self) -> StoreFactory:
        # A name of its own per test: every open within the test is the same store.
        return StoreFactory.from_url(f"dict://test-{uuid.uuid4().hex}")


def test_found_through_its_entry_point() -> None:
    [entry] = entry_points(group="chronik.backends", name="dict")
    assert entry.value == "chronik_dictstore:backend"
    dist = distribution("chronik_dictstore")
    assert dist.version == "0.1.0"
    assert Path(str(dist.locate_file(""))).resolve() == PLUGIN.resolve()
    assert find_backend("dict") is entry.load()


def test_connect_opens_it_and_it_declares_its_capabilities() -> None:
    with chronik.connect("dict://") as store:
        assert type(store).__module__ == "chronik_dictstore"
        assert capabilities(store) == {"snapshots", "checkpoints", "subscriptions"}
        store.append("order-1", [chronik.NewEvent("Created", {})])
    async_store = chronik.connect_async("dict://")
    assert capabilities(async_store) == {"snapshots", "checkpoints", "subscriptions"}
    asyncio.run(async_store.close())


def test_named_stores_are_shared_and_private_ones_are_not() -> None:
    with chronik.connect("dict://shared-name") as one, chronik.connect("dict://shared-name") as two:
        one.append("order-1", [chronik.NewEvent("Created", {})])
        assert two.stream_info("order-1").version == 1
    with chronik.connect("dict://") as one, chronik.connect("dict://") as two:
        one.append("order-1", [chronik.NewEvent("Created", {})])
        assert two.stream_info("order-1").version == 0


def test_the_plugin_uses_only_the_backend_api() -> None:
    source = (PLUGIN / "chronik_dictstore" / "__init__.py").read_text()
    imported = {
        line.split()[1] for line in source.splitlines() if line.startswith(("from chronik", "import chronik"))
    }
    assert imported <= {"chronik.backend", "chronik.codec", "chronik.errors", "chronik.events"}


def test_the_adapter_declares_only_the_powers_of_its_store() -> None:
    from chronik.backend import AsyncStoreAdapter

    sync = chronik.connect("dict://")
    adapter = AsyncStoreAdapter(sync)
    try:
        assert capabilities(adapter) == capabilities(sync)
    finally:
        asyncio.run(adapter.close())
