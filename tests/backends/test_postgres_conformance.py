"""The PostgreSQL store passes the whole conformance suite and its capability suites, sync and async."""

import asyncio

import pytest

import chronik
from chronik.testing.conformance import EventStoreConformance, StoreFactory, capabilities

pytestmark = pytest.mark.postgres

PATIENCE = 120.0  # hooked appends wait for older writers of the whole server up to this


class TestPostgresConformance(EventStoreConformance):
    # Another pooled connection takes it, in a transaction of its own.
    append_beside_own_transaction = "accepted"

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
        "heartbeats",
        "dcb",
        "subject_keys",
        "deletion",
        "retention",
        "repair",
    }
    with chronik.connect(postgres_store_url) as store:
        assert capabilities(store) == everything
    async_store = chronik.connect_async(postgres_store_url)
    assert capabilities(async_store) == everything
    asyncio.run(async_store.close())
