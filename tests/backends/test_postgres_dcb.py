"""DCB on PostgreSQL under 16 concurrent writers: no rule broken, and decisions on
disjoint tags do not wait for each other (no global write lock)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import cast

import psycopg
import pytest

import chronik
from chronik import uuid7
from chronik.errors import AppendConditionFailedError, DuplicateEventError
from chronik.query import AppendCondition, Query, QueryItem, ReadResult, event_keys, lock_keys, query_keys
from chronik.store import DCBStore

WRITERS = 16


def race(url: str, work: Callable[[DCBStore, int], None]) -> None:
    errors: list[BaseException] = []
    barrier = threading.Barrier(WRITERS)

    def run(who: int) -> None:
        try:
            with chronik.connect(url) as store:
                barrier.wait()
                work(cast(DCBStore, store), who)
        except BaseException as err:  # reported below
            errors.append(err)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def decide_until_done(
    store: DCBStore,
    query: Query,
    decide: Callable[[list[chronik.RecordedEvent]], list[chronik.NewEvent]],
) -> None:
    for _ in range(1000):
        read = store.read_query(query)
        events = decide(read.events)
        if not events:
            return
        try:
            store.append_if(events, AppendCondition(query, read.head))
            return
        except AppendConditionFailedError:
            continue
    raise AssertionError("never decided")


def test_sixteen_writers_never_overfill_a_course_or_take_a_name_twice(postgres_store_url: str) -> None:
    capacity = 5
    course = Query.of(types=["StudentSubscribed"], tags=["course:c1"])
    name = Query.of(types=["UsernameClaimed"], tags=["username:ada"])

    def subscribe(store: DCBStore, who: int) -> None:
        def decide(seen: list[chronik.RecordedEvent]) -> list[chronik.NewEvent]:
            if len(seen) >= capacity:
                return []
            tags = ["course:c1", f"student:s{who}"]
            return [chronik.NewEvent("StudentSubscribed", {"student": who}, tags=tags)]

        decide_until_done(store, course, decide)

    def claim(store: DCBStore, who: int) -> None:
        def decide(seen: list[chronik.RecordedEvent]) -> list[chronik.NewEvent]:
            return [] if seen else [chronik.NewEvent("UsernameClaimed", {"user": who}, tags=["username:ada"])]

        decide_until_done(store, name, decide)

    race(postgres_store_url, subscribe)
    race(postgres_store_url, claim)
    with chronik.connect(postgres_store_url) as opened:
        store = cast(DCBStore, opened)
        assert len(store.read_query(course).events) == capacity
        assert len(store.read_query(name).events) == 1


def test_a_decision_does_not_wait_for_one_on_other_tags(postgres_store_url: str, postgres_url: str) -> None:
    # Another session holds, mid-decision, the locks of a decision on course c1 ...
    with chronik.connect(postgres_store_url) as opened:
        store = cast(DCBStore, opened)
        schema = postgres_store_url.rsplit("schema=", 1)[1]
        held = Query.of(types=["StudentSubscribed"], tags=["course:c1"])
        exclusive = query_keys(held)
        shared = event_keys("StudentSubscribed", ["course:c1"]) - exclusive
        with psycopg.connect(postgres_url) as blocker:
            prefix = f"chronik.dcb.{schema}."
            blocker.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended(%s || k, 0)) FROM unnest(%s::text[]) AS k",
                (prefix, lock_keys(exclusive)),
            )
            blocker.execute(
                "SELECT pg_advisory_xact_lock_shared(hashtextextended(%s || k, 0)) "
                "FROM unnest(%s::text[]) AS k",
                (prefix, lock_keys(shared)),
            )
            # ... and a decision on course c2 goes through meanwhile (a global lock would hang it).
            done = threading.Event()

            def other() -> None:
                other_course = Query.of(types=["StudentSubscribed"], tags=["course:c2"])
                event = chronik.NewEvent("StudentSubscribed", {}, tags=["course:c2"])
                store.append_if([event], AppendCondition(other_course, store.read_query(other_course).head))
                done.set()

            thread = threading.Thread(target=other, daemon=True)
            thread.start()
            thread.join(60)  # a liveness bound, not a timing assertion
            assert done.is_set(), "a decision on course c2 waited for one on course c1"
            blocker.rollback()


def _wait_until_blocked(thread: threading.Thread, postgres_url: str) -> None:
    """Until ``thread`` waits on a DCB lock (or, without one, has finished)."""
    with psycopg.connect(postgres_url, autocommit=True) as watcher:
        while thread.is_alive():
            row = watcher.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            ).fetchone()
            if row is not None and row[0]:
                return
            thread.join(0.01)


def test_a_plain_tagged_append_in_flight_is_seen_by_a_decision(
    postgres_store_url: str, postgres_url: str
) -> None:
    # Rule: no student subscribes to a closed course. The close is written with plain
    # append (in a transaction held open here); a decision made meanwhile must wait
    # for it and see it, not subscribe behind its back.
    query = Query.of(types=["CourseClosed", "StudentSubscribed"], tags=["course:c1"])
    outcome: list[str] = []

    def subscribe(store: DCBStore) -> None:
        read = store.read_query(query)
        if any(e.type == "CourseClosed" for e in read.events):
            outcome.append("refused")
            return
        event = chronik.NewEvent("StudentSubscribed", {}, tags=["course:c1", "student:s1"])
        store.append_if([event], AppendCondition(query, read.head))
        outcome.append("subscribed")

    with chronik.connect(postgres_store_url) as opened, chronik.connect(postgres_store_url) as other:
        store = cast(DCBStore, opened)
        with opened.transaction() as tx:
            tx.append("course-c1", [chronik.NewEvent("CourseClosed", {}, tags=["course:c1"])])
            thread = threading.Thread(target=subscribe, args=(cast(DCBStore, other),), daemon=True)
            thread.start()
            _wait_until_blocked(thread, postgres_url)
        thread.join(60)
        assert outcome == ["refused"]
        assert [e.type for e in store.read_query(query).events] == ["CourseClosed"]


def test_sixteen_writers_with_plain_tagged_appends_never_break_a_rule(postgres_store_url: str) -> None:
    # Fifteen decisions subscribe to a course while one writer closes it with a plain
    # append: no subscription may come after the close in the log.
    for course in ("course:c1", "course:c2", "course:c3"):
        query = Query.of(types=["CourseClosed", "StudentSubscribed"], tags=[course])

        def work(store: DCBStore, who: int, course: str = course, query: Query = query) -> None:
            if who == 0:
                store.append(f"course-{course}", [chronik.NewEvent("CourseClosed", {}, tags=[course])])  # type: ignore[attr-defined]
                return

            def decide(seen: list[chronik.RecordedEvent]) -> list[chronik.NewEvent]:
                if any(e.type == "CourseClosed" for e in seen):
                    return []
                return [chronik.NewEvent("StudentSubscribed", {}, tags=[course, f"student:s{who}"])]

            for _ in range(5):
                decide_until_done(store, query, decide)

        race(postgres_store_url, work)
        with chronik.connect(postgres_store_url) as opened:
            types = [e.type for e in cast(DCBStore, opened).read_query(query).events]
            assert "StudentSubscribed" not in types[types.index("CourseClosed") :]


def test_a_read_that_waited_for_a_writer_has_its_event_at_or_below_its_head(
    postgres_store_url: str, postgres_url: str
) -> None:
    # The read takes its head as its lock statement begins, before it waits; an event
    # that commits while it waits is read all the same, and the head it reports is
    # not below it (a decision on that head must not find its own read as a conflict).
    query = Query.of(types=["StudentSubscribed"], tags=["course:c1"])
    reads: list[ReadResult] = []
    with chronik.connect(postgres_store_url) as opened, chronik.connect(postgres_store_url) as other:
        opened.append("course-c2", [chronik.NewEvent("StudentSubscribed", {}, tags=["course:c2"])])
        with opened.transaction() as tx:
            tx.append("course-c1", [chronik.NewEvent("StudentSubscribed", {}, tags=["course:c1"])])
            thread = threading.Thread(
                target=lambda: reads.append(cast(DCBStore, other).read_query(query)), daemon=True
            )
            thread.start()
            _wait_until_blocked(thread, postgres_url)
        thread.join(60)
        (read,) = reads
        (event,) = read.events
        assert read.head is not None and read.head >= event.position
        decided = chronik.NewEvent("StudentSubscribed", {}, tags=["course:c1", "student:s2"])
        cast(DCBStore, other).append_if([decided], AppendCondition(query, read.head))


def test_a_resent_decision_or_tagged_append_is_recognised_not_written_twice(postgres_store_url: str) -> None:
    # The decision's append goes as one statement with no savepoint; a re-sent one
    # (its ids stored already, as after a lost acknowledgement) fails that statement,
    # and the careful way recognises it, in a new transaction.
    with chronik.connect(postgres_store_url) as opened:
        store = cast(DCBStore, opened)
        decided = chronik.NewEvent("StudentSubscribed", {}, tags=["course:c1"], event_id=uuid7())
        first = store.append_if([decided], None, stream_id="course-c1")
        assert store.append_if([decided], None, stream_id="course-c1") == first
        plain = chronik.NewEvent("CourseClosed", {}, tags=["course:c1"], event_id=uuid7())
        closed = opened.append("course-c1", [plain])
        assert opened.append("course-c1", [plain]) == closed
        assert [e.type for e in opened.read_stream("course-c1")] == ["StudentSubscribed", "CourseClosed"]
        with pytest.raises(DuplicateEventError):
            store.append_if([decided], None, stream_id="course-c2")
        query = Query.of(tags=["course:c1"])
        assert [e.event_id for e in store.read_query(query).events] == [decided.event_id, plain.event_id]


# Queries that untagged events match: by types alone, and Query.all().
UNTAGGED_QUERIES = {
    "types": Query(QueryItem(types=["ShopClosed"]), QueryItem(types=["OrderPlaced"], tags=["shop:s1"])),
    "all": Query.all(),
}


@pytest.mark.parametrize("kind", sorted(UNTAGGED_QUERIES))
def test_a_plain_untagged_append_in_flight_is_seen_by_a_decision_on_its_type(
    kind: str, postgres_store_url: str, postgres_url: str
) -> None:
    # Rule: no order in a closed shop. The close is an untagged event, written with a
    # plain append in a transaction held open here; a decision whose query matches it
    # by type (or matches everything) waits for it and sees it.
    query = UNTAGGED_QUERIES[kind]
    outcome: list[str] = []

    def order(store: DCBStore) -> None:
        read = store.read_query(query)
        if any(e.type == "ShopClosed" for e in read.events):
            outcome.append("refused")
            return
        event = chronik.NewEvent("OrderPlaced", {}, tags=["shop:s1"])
        store.append_if([event], AppendCondition(query, read.head))
        outcome.append("ordered")

    with chronik.connect(postgres_store_url) as opened, chronik.connect(postgres_store_url) as other:
        with opened.transaction() as tx:
            tx.append("shop-s1", [chronik.NewEvent("ShopClosed", {})])
            thread = threading.Thread(target=order, args=(cast(DCBStore, other),), daemon=True)
            thread.start()
            _wait_until_blocked(thread, postgres_url)
            assert thread.is_alive(), "the decision did not wait for the untagged append"
        thread.join(60)
        assert outcome == ["refused"]


def test_sixteen_writers_with_plain_untagged_appends_never_break_a_rule(postgres_store_url: str) -> None:
    # Invoice numbers without gaps or repeats (a query by types alone, no tags) while
    # one writer closes the books with a plain, untagged append: no invoice may come
    # after the close in the log, and the numbers before it have no gaps.
    query = Query.of(types=["InvoiceCreated", "BooksClosed"])

    def work(store: DCBStore, who: int) -> None:
        if who == 0:
            for _ in range(3):  # let some invoices in first
                decide_until_done(store, query, decide)
            store.append("books-2026", [chronik.NewEvent("BooksClosed", {})])  # type: ignore[attr-defined]
            return
        for _ in range(5):
            decide_until_done(store, query, decide)

    def decide(seen: list[chronik.RecordedEvent]) -> list[chronik.NewEvent]:
        if any(e.type == "BooksClosed" for e in seen):
            return []
        number = sum(e.type == "InvoiceCreated" for e in seen) + 1
        return [chronik.NewEvent("InvoiceCreated", {"number": number})]

    race(postgres_store_url, work)
    with chronik.connect(postgres_store_url) as opened:
        events = cast(DCBStore, opened).read_query(query).events
        types = [e.type for e in events]
        assert types.count("BooksClosed") == 1
        assert "InvoiceCreated" not in types[types.index("BooksClosed") :]
        numbers = [e.data["number"] for e in events if e.type == "InvoiceCreated"]
        assert numbers == list(range(1, len(numbers) + 1))
