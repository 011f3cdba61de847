"""The SQLite store passes the whole conformance suite, sync and async."""

from pathlib import Path

import pytest

from chronik.testing.conformance import EventStoreConformance


class TestSQLiteConformance(EventStoreConformance):
    supports_processes = True

    @pytest.fixture
    def store_url(self, tmp_path: Path) -> str:
        return f"sqlite:///{tmp_path}/events.db"
