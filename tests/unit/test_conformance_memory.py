"""The memory store, the reference, passes the whole conformance suite."""

import pytest

from chronik.testing.conformance import EventStoreConformance


class TestMemoryConformance(EventStoreConformance):
    @pytest.fixture
    def store_url(self) -> str:
        return "memory://"
