"""The memory store, the reference, passes the whole conformance suite on both faces."""

import asyncio
from typing import ClassVar

import pytest

import chronik
from chronik.testing.conformance import CAPABILITIES, EventStoreConformance, StoreFactory, capabilities


class TestMemoryConformance(EventStoreConformance):
    known_deviations: ClassVar[dict[str, str]] = {
        "test_bad_names_and_versions_are_refused": "memory store: projection state is not validated",
        "test_an_unknown_status_is_refused": "memory store: projection status is not validated",
        "test_a_dead_letter_from_another_kind_of_store_is_refused": (
            "memory store: a dead letter's checkpoint is not checked"
        ),
    }

    @pytest.fixture
    def store_factory(self) -> StoreFactory:
        # Each open of memory:// is a store of its own.
        return StoreFactory.from_url("memory://", shared=False)


def test_memory_declares_its_capabilities() -> None:
    # Every power on both faces: dropping one from either fails here, not as skips.
    with chronik.connect("memory://") as store:
        assert capabilities(store) == set(CAPABILITIES)
    async_store = chronik.connect_async("memory://")
    assert capabilities(async_store) == set(CAPABILITIES)
    asyncio.run(async_store.close())
