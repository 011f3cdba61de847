"""The PostgreSQL store passes the whole conformance suite, sync and async."""

import pytest

from chronik.testing.conformance import EventStoreConformance

pytestmark = pytest.mark.postgres


class TestPostgresConformance(EventStoreConformance):
    supports_processes = True

    @pytest.fixture
    def store_url(self, postgres_store_url: str) -> str:
        return postgres_store_url
