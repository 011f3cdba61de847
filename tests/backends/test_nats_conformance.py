"""The NATS JetStream store passes the conformance suite and its capability suites, sync and async."""

import asyncio

import pytest

import chronik
from chronik.testing.conformance import EventStoreConformance, StoreFactory, capabilities

pytestmark = pytest.mark.nats

POWERS = {
    "snapshots",
    "checkpoints",
    "subscriptions",
    "projection_state",
    "heartbeats",
    "subject_keys",
    "deletion",
    "retention",
}


class TestNatsConformance(EventStoreConformance):
    # JetStream 2.9 cannot store messages of several subjects atomically.
    append_many_streams = "one"

    @pytest.fixture
    def store_factory(self, nats_store_url: str) -> StoreFactory:
        return StoreFactory.from_url(nats_store_url, processes=True)


def test_nats_declares_its_capabilities(nats_store_url: str) -> None:
    # No transactions (nothing spans the log and the buckets), so no append hooks; no
    # repairs (a stored message cannot be changed).
    with chronik.connect(nats_store_url) as store:
        assert capabilities(store) == POWERS
    async_store = chronik.connect_async(nats_store_url)
    assert capabilities(async_store) == POWERS
    asyncio.run(async_store.close())
