"""The PostgreSQL store's own guarantees: late commits, per-stream order, transactions."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Callable, Iterator

import psycopg
import pytest
from psycopg import sql

import chronik
from chronik import NewEvent, StreamWrite, WrongExpectedVersionError
from chronik.stores.postgres import AsyncPostgresEventStore, PostgresEventStore

pytestmark = pytest.mark.postgres

PATIENCE = 60.0  # seconds a test may wait for a thread; never reached when correct


def _event(n: int = 0) -> NewEvent:
    return NewEvent("Happened", {"n": n}, event_id=chronik.uuid7())


@pytest.fixture
def store(postgres_store_url: str) -> Iterator[PostgresEventStore]:
    with PostgresEventStore(postgres_store_url) as store:
        store.open()
        yield store


def test_an_event_committed_late_is_not_skipped(store: PostgresEventStore) -> None:
    # The failure other stores shipped: T1 inserts first (smaller position) but
    # commits last; T2 inserts later and commits first. A reader ordering by
    # position sees T2's event, checkpoints after it, and skips T1's for ever.
    late = [_event(1)]
    with store.transaction() as tx:
        tx.append("order-late", late)
        store.append("order-early", [_event(2)])
        # T2 is committed, but T1 is older and still running: T2's event is held back.
        reader = store.log_reader()
        try:
            page = reader.read_page(None, 100, None, None)
            assert page.events == []
            assert page.checkpoint is None
        finally:
            reader.close()
    log = list(store.read_all())
    assert [e.stream_id for e in log] == ["order-late", "order-early"]
    assert log[0].position < log[1].position
    assert log[0].checkpoint < log[1].checkpoint


def test_read_all_waits_for_an_older_transaction_to_finish(postgres_store_url: str) -> None:
    # A read returns every event committed before it began, even one held back by
    # an older transaction: it waits for that transaction instead of ending early.
    with PostgresEventStore(postgres_store_url, visibility_timeout=PATIENCE) as store:
        store.open()
        seen: list[list[str]] = []
        entered = threading.Event()
        with store.transaction() as tx:
            tx.append("order-a", [_event(1)])
            store.append("order-b", [_event(2)])

            def read() -> None:
                entered.set()
                seen.append([e.stream_id for e in store.read_all()])

            reader = threading.Thread(target=read)
            reader.start()
            assert entered.wait(PATIENCE)
        reader.join(PATIENCE)
        assert not reader.is_alive()
        # Had the read ended before the transaction committed, it would hold
        # nothing: order-b was held back behind order-a's transaction.
        assert seen == [["order-a", "order-b"]]


def test_a_filtered_read_waits_for_events_held_back(postgres_store_url: str, postgres_url: str) -> None:
    # Regression: final events of other categories must not make a filtered read
    # end before the held-back events it is looking for are released.
    application = f"chronik-test-{uuid.uuid4().hex[:10]}"
    url = f"{postgres_store_url}&application_name={application}"
    waiting = (
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s "
        "AND query LIKE '%%pg_snapshot_xmin(pg_current_snapshot()) >%%'"
    )
    seen: list[list[str]] = []
    with (
        PostgresEventStore(url, visibility_timeout=PATIENCE) as store,
        # autocommit: pg_stat_activity is a snapshot per transaction
        psycopg.connect(postgres_url, autocommit=True) as admin,
    ):
        store.open()
        store.append("other-1", [_event()])
        with store.transaction() as tx:
            tx.execute("SELECT pg_current_xact_id()")  # an older transaction, still running
            store.append("wanted-1", [_event(1)])  # committed, held back behind it
            reader = threading.Thread(
                target=lambda: seen.append([e.stream_id for e in store.read_all(categories=["wanted"])])
            )
            reader.start()
            # Commit only once the read is waiting (or, wrongly, has ended).
            deadline = time.monotonic() + PATIENCE
            while reader.is_alive() and not (admin.execute(waiting, (application,)).fetchone() or (0,))[0]:
                assert time.monotonic() < deadline, "the read neither waited nor ended"
                time.sleep(0.01)
        reader.join(PATIENCE)
    assert seen == [["wanted-1"]]


def test_visibility_timeout_zero_returns_only_what_is_final(
    store: PostgresEventStore, postgres_store_url: str
) -> None:
    with PostgresEventStore(postgres_store_url, visibility_timeout=0) as quick:
        with store.transaction() as tx:
            tx.append("order-a", [_event(1)])
            store.append("order-b", [_event(2)])
            # Without waiting, a read returns what is final: nothing yet.
            assert list(quick.read_all()) == []
            assert quick.head() is None
        # (Other sessions on the server may hold events back for a moment too:
        # the default store waits for them.)
        assert [e.stream_id for e in store.read_all()] == ["order-a", "order-b"]


def test_transaction_cannot_append_behind_a_newer_writer(store: PostgresEventStore) -> None:
    # T1 takes its transaction id first; T2 then appends version 1 and commits.
    # T1 appending version 2 would put it before version 1 in the global log, so
    # it is refused like a lost race, and T1 can still go on with other work.
    with store.transaction() as tx:
        tx.execute("SELECT pg_current_xact_id()")
        store.append("cart-1", [_event(1)])
        with pytest.raises(WrongExpectedVersionError) as info:
            tx.append("cart-1", [_event(2)])
        assert info.value.actual == 1
        tx.append("cart-2", [_event(3)])
    assert store.stream_info("cart-1").version == 1
    assert store.stream_info("cart-2").version == 1
    log = [(e.stream_id, e.version) for e in store.read_all()]
    assert log == [("cart-2", 1), ("cart-1", 1)]


def test_a_stricter_server_default_isolation_changes_nothing(postgres_store_url: str) -> None:
    url = f"{postgres_store_url}&options=-c%20default_transaction_isolation%3Dserializable"
    with PostgresEventStore(url) as store:
        errors: list[BaseException] = []

        def write(i: int) -> None:
            try:
                for k in range(20):
                    store.append("hot-1", [_event(i * 100 + k)])
            except BaseException as err:
                errors.append(err)

        threads = [threading.Thread(target=write, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(PATIENCE)
        assert errors == []
        assert [e.version for e in store.read_stream("hot-1")] == list(range(1, 81))
        with store.transaction() as tx:
            assert tx.execute("SHOW transaction_isolation").fetchone() == ("read committed",)


def test_conflicts_inside_a_transaction_leave_it_usable(store: PostgresEventStore) -> None:
    store.append("cart-1", [_event()])
    with store.transaction() as tx:
        with pytest.raises(WrongExpectedVersionError):
            tx.append("cart-1", [_event()], chronik.NO_STREAM)
        with pytest.raises(chronik.DuplicateEventError):
            taken = store.read_stream("cart-1")[0].event_id
            tx.append("cart-2", [NewEvent("X", {}, event_id=taken)])
        tx.append("cart-1", [_event()], 1)
    assert store.stream_info("cart-1").version == 2
    assert store.stream_info("cart-2").version == 0


def test_each_stream_stays_in_version_order_in_the_global_log(store: PostgresEventStore) -> None:
    errors: list[BaseException] = []

    def write(i: int) -> None:
        try:
            for k in range(30):
                stream = f"shared-{k % 3}"
                store.append(stream, [_event(i), _event(i)])
                store.append_many([StreamWrite(f"own-{i}", [_event(k)]), StreamWrite(stream, [_event(k)])])
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(PATIENCE)
    assert not errors
    last: dict[str, int] = {}
    for e in store.read_all():
        assert e.version == last.get(e.stream_id, 0) + 1, f"{e.stream_id} out of order in the log"
        last[e.stream_id] = e.version


def test_large_append_in_one_statement(store: PostgresEventStore) -> None:
    events = [NewEvent("Imported", {"i": i, "text": "x" * 50}) for i in range(20_000)]
    result = store.append("import-1", events)
    assert result.version == 20_000
    log = list(store.read_all())
    assert [e.data["i"] for e in log] == list(range(20_000))
    positions = [e.position for e in log]
    assert positions == list(range(positions[0], positions[0] + 20_000))


def test_payloads_are_json_readable_in_sql(store: PostgresEventStore, postgres_url: str) -> None:
    store.append("doc-1", [NewEvent("Noted", {"text": "zażółć", "n": 7}, {"user": "ada"})])
    # json, not jsonb: "\u0000" is accepted and kept exactly as encoded.
    store.append("doc-2", [NewEvent("Noted", {"text": "a\u0000b"})])
    query = sql.SQL("SELECT data->>'n', data->>'text', metadata->>'user' FROM {} WHERE stream_id = 'doc-1'")
    raw = sql.SQL("SELECT data::text FROM {} WHERE stream_id = 'doc-2'")
    events = sql.Identifier(store.schema, "events")
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute(query.format(events)).fetchone() == ("7", "zażółć", "ada")
        assert conn.execute(raw.format(events)).fetchone() == ('{"text":"a\\u0000b"}',)
    assert store.read_stream("doc-2")[0].data == {"text": "a\u0000b"}


def test_stores_in_two_schemas_are_independent(
    postgres_url: str, new_postgres_schema: Callable[[], str]
) -> None:
    first = PostgresEventStore(postgres_url, schema=new_postgres_schema())
    second = PostgresEventStore(postgres_url, schema=new_postgres_schema())
    with first, second:
        first.append("order-1", [_event(1)])
        second.append("order-1", [_event(2), _event(3)])
        assert [e.data["n"] for e in first.read_all()] == [1]
        assert [e.data["n"] for e in second.read_all()] == [2, 3]
        assert first.stream_info("order-1").version == 1


def test_async_store_runs_on_the_event_loop(postgres_store_url: str) -> None:
    async def main() -> list[int]:
        async with AsyncPostgresEventStore(postgres_store_url) as store:
            await asyncio.gather(*(store.append(f"task-{i}", [_event(i)]) for i in range(20)))
            async with store.transaction() as tx:
                await tx.append("task-0", [_event(100)], 1)
            return [e.data["n"] async for e in store.read_all(categories=["task"])]

    numbers = asyncio.run(main())
    assert sorted(numbers) == [*range(20), 100]
    assert numbers[-1] == 100
