"""PostgreSQL specifics of deleting and scavenging: a scavenge vacuums the events table;
a stream's row keeps its version and state, events or not."""

from typing import Any

import psycopg
import pytest
from psycopg import sql

import chronik
from chronik import NewEvent, StreamMetadata

pytestmark = pytest.mark.postgres


def _vacuums(url: str, schema: str) -> int:
    # How many times the events table was vacuumed by hand. (Not its size: on a shared
    # server other sessions' transactions can keep VACUUM from reclaiming anything.)
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT vacuum_count FROM pg_stat_user_tables WHERE schemaname = %s AND relname = 'events'",
            (schema,),
        ).fetchone()
        assert row is not None
        count: int = row[0]
        return count


def _fill(store: Any, stream: str, n: int) -> None:
    for start in range(0, n, 200):
        store.append(
            stream, [NewEvent("Noted", {"text": f"filler {i}" * 20}) for i in range(start, start + 200)]
        )


def test_a_scavenge_vacuums_the_events_table(
    postgres_url: str, postgres_store_url: str, postgres_schema: str
) -> None:
    with chronik.connect(postgres_store_url) as store:
        assert store.scavenge() == chronik.ScavengeResult(0, 0)  # empty: nothing to do
        _fill(store, "big-1", 1000)
        before = _vacuums(postgres_url, postgres_schema)
        store.delete_stream("big-1", hard=True)
        # The hard delete removed the events; the scavenge vacuums what they left.
        assert store.scavenge() == chronik.ScavengeResult(0, 0)
        assert _vacuums(postgres_url, postgres_schema) == before + 1
        _fill(store, "big-2", 1000)
        store.set_stream_metadata("big-2", StreamMetadata(max_count=1))
        assert store.scavenge() == chronik.ScavengeResult(999, 1)
        assert _vacuums(postgres_url, postgres_schema) == before + 2
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            table = sql.Identifier(postgres_schema, "events")
            row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(table)).fetchone()
            assert row == (2,)  # big-1's tombstone and big-2's last event


def test_a_stream_with_metadata_and_no_events_is_not_listed(postgres_store_url: str) -> None:
    with chronik.connect(postgres_store_url) as store:
        store.set_stream_metadata("later-1", StreamMetadata(max_count=2))
        assert store.list_streams() == []
        assert store.stream_info("later-1").version == 0
        assert (
            store.append("later-1", [NewEvent("A", {}), NewEvent("A", {}), NewEvent("A", {})], 0).version == 3
        )
        assert [e.version for e in store.read_stream("later-1")] == [2, 3]
        assert [s.stream_id for s in store.list_streams()] == ["later-1"]
