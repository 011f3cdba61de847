"""The SQLite store passes the whole conformance suite and its capability suites, sync and async."""

import asyncio
from pathlib import Path

import pytest

import chronik
from chronik.testing.conformance import CAPABILITIES, EventStoreConformance, StoreFactory, capabilities


class TestSQLiteConformance(EventStoreConformance):
    @pytest.fixture
    def store_factory(self, tmp_path: Path) -> StoreFactory:
        return StoreFactory.from_url(f"sqlite:///{tmp_path}/events.db", processes=True)


def test_sqlite_declares_its_capabilities(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/events.db"
    # Every power on both faces: dropping one from either fails here, not as skips.
    with chronik.connect(url) as store:
        assert capabilities(store) == set(CAPABILITIES)
    async_store = chronik.connect_async(url)
    assert capabilities(async_store) == set(CAPABILITIES)
    asyncio.run(async_store.close())
