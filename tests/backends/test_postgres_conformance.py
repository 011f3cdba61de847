"""The PostgreSQL store passes the whole conformance suite and its capability suites, sync and async."""

import asyncio
from typing import ClassVar

import pytest

import chronik
from chronik.testing.conformance import EventStoreConformance, StoreFactory, capabilities

pytestmark = pytest.mark.postgres

PATIENCE = 120.0  # hooked appends wait for older writers of the whole server up to this


class TestPostgresConformance(EventStoreConformance):
    known_deviations: ClassVar[dict[str, str]] = {
        "test_store_append_inside_a_transaction_is_a_clear_error": (
            "PostgreSQL: store.append beside an open transaction of the same thread (or task) "
            "runs on another connection instead of being refused"
        ),
    }

    @pytest.fixture
    def store_factory(self, postgres_store_url: str) -> StoreFactory:
        return StoreFactory.from_url(postgres_store_url, processes=True, visibility_timeout=PATIENCE)


def test_postgres_declares_its_capabilities(postgres_store_url: str) -> None:
    everything = {
        "snapshots",
        "checkpoints",
        "subscriptions",
        "transactions",
        "append_hooks",
        "projection_state",
    }
    with chronik.connect(postgres_store_url) as store:
        assert capabilities(store) == everything
    async_store = chronik.connect_async(postgres_store_url)
    assert capabilities(async_store) == everything
    asyncio.run(async_store.close())
