"""Conformance: Dynamic Consistency Boundaries (tags, reads by query, conditional
appends), where the store declares ``DCBStore`` / ``AsyncDCBStore``."""

from __future__ import annotations

import threading

import pytest

from chronik.errors import AppendConditionFailedError, InvalidQueryError, InvalidTagError
from chronik.events import NewEvent
from chronik.query import AppendCondition, Query, QueryItem
from chronik.store import EventStore
from chronik.testing.conformance._base import ConformanceBase, face_of, needs, new_stream

__all__ = ["DCBTests"]


def tagged(type: str, *tags: str, n: int = 0) -> NewEvent:
    return NewEvent(type, {"n": n}, tags=list(tags))


@needs("dcb")
class DCBTests(ConformanceBase):
    """Tags stored and returned, reads by query, appends with a condition."""

    def test_tags_are_stored_and_returned_sorted_without_repeats(self, store: EventStore) -> None:
        stream = new_stream()
        store.append(stream, [tagged("A", "z", "a", "z"), tagged("B")])
        assert [e.tags for e in store.read_stream(stream)] == [("a", "z"), ()]
        assert [e.tags for e in store.read_all() if e.stream_id == stream] == [("a", "z"), ()]

    def test_bad_tags_are_refused_before_anything_is_written(self, store: EventStore) -> None:
        stream = new_stream()
        for bad in ("a-string", [""], ["tab\there"], [1]):
            with pytest.raises(InvalidTagError):
                store.append(stream, [NewEvent("A", {}, tags=bad)])  # type: ignore[arg-type]
        assert store.read_stream(stream) == []

    def test_read_by_query_ors_items_any_type_all_tags(self, store: EventStore) -> None:
        face = face_of(store)
        stream = new_stream()
        store.append(
            stream,
            [
                tagged("CourseDefined", "course:c1", n=1),
                tagged("StudentSubscribed", "course:c1", "student:s1", n=2),
                tagged("StudentSubscribed", "course:c2", "student:s1", n=3),
                tagged("Other", "course:c1", n=4),
                tagged("StudentSubscribed", "course:c1", "student:s2", n=5),
            ],
        )

        def read(query: Query, **options: object) -> list[int]:
            return [e.data["n"] for e in face.read_query(query, **options).events]

        assert read(Query.of(tags=["course:c1"])) == [1, 2, 4, 5]
        assert read(Query.of(types=["StudentSubscribed", "CourseDefined"], tags=["course:c1"])) == [1, 2, 5]
        assert read(Query.of(types=["StudentSubscribed"], tags=["student:s1", "course:c1"])) == [2]
        assert read(Query.of(types=["Other"])) == [4]
        either = Query(QueryItem(["CourseDefined"], ["course:c1"]), QueryItem(tags=["student:s1"]))
        assert read(either) == [1, 2, 3]
        assert read(Query.all()) == [1, 2, 3, 4, 5]
        assert read(Query.of(tags=["course:nope"])) == []

    def test_read_after_limit_backwards_and_head(self, store: EventStore) -> None:
        face = face_of(store)
        store.append(new_stream(), [tagged("T", "t", n=i) for i in range(1, 6)])
        everything = face.read_query(Query.of(tags=["t"]))
        positions = [e.position for e in everything.events]
        assert everything.head == positions[-1]
        after = face.read_query(Query.of(tags=["t"]), after=positions[1])
        assert [e.data["n"] for e in after.events] == [3, 4, 5]
        limited = face.read_query(Query.of(tags=["t"]), limit=2)
        assert [e.data["n"] for e in limited.events] == [1, 2]
        assert limited.head == positions[1]  # cut short: the head is what it read
        last = face.read_query(Query.of(tags=["t"]), backwards=True, limit=1)
        assert [e.data["n"] for e in last.events] == [5]
        untagged = new_stream()
        store.append(untagged, [tagged("U")])
        # The head is the store's, not the last match's: the decision saw up to there.
        assert face.read_query(Query.of(tags=["t"])).head == store.read_stream(untagged)[0].position
        # A limit met exactly is read the same way on every store: the head is the
        # last event read (the store cannot know that nothing more matches).
        exact = face.read_query(Query.of(tags=["t"]), limit=5)
        assert exact.head == positions[-1]

    def test_append_if_fails_when_a_matching_event_came_after(self, store: EventStore) -> None:
        face = face_of(store)
        query = Query.of(types=["StudentSubscribed"], tags=["course:c9"])
        read = face.read_query(query)
        assert read.events == []
        condition = AppendCondition(query, read.head)
        face.append_if([tagged("StudentSubscribed", "course:c9", "student:s1")], condition)
        with pytest.raises(AppendConditionFailedError) as raised:
            face.append_if([tagged("StudentSubscribed", "course:c9", "student:s2")], condition)
        assert raised.value.query == query
        assert "course:c9" in str(raised.value)
        assert len(face.read_query(query).events) == 1  # nothing of the failed append

    def test_append_if_ignores_events_that_do_not_match(self, store: EventStore) -> None:
        face = face_of(store)
        query = Query.of(tags=["course:c10"])
        read = face.read_query(query)
        store.append(new_stream(), [tagged("StudentSubscribed", "course:c11")])
        result = face.append_if(
            [tagged("StudentSubscribed", "course:c10")], AppendCondition(query, read.head)
        )
        [written] = face.read_query(query).events
        assert (written.position, written.stream_id) == (result.position, result.stream_id)
        assert written.category == "dcb"

    def test_append_if_without_after_fails_when_any_match_exists(self, store: EventStore) -> None:
        face = face_of(store)
        query = Query.of(types=["UsernameClaimed"], tags=["username:ada"])
        face.append_if([tagged("UsernameClaimed", "username:ada")], AppendCondition(query))
        with pytest.raises(AppendConditionFailedError):
            face.append_if([tagged("UsernameClaimed", "username:ada")], AppendCondition(query))

    def test_append_if_to_a_chosen_stream_and_unconditionally(self, store: EventStore) -> None:
        face = face_of(store)
        stream = new_stream()
        face.append_if([tagged("A", "x")], None, stream_id=stream)
        face.append_if([tagged("B", "x")], None, stream_id=stream)
        assert [(e.version, e.type) for e in store.read_stream(stream)] == [(1, "A"), (2, "B")]

    def test_bad_queries_and_conditions_are_refused(self, store: EventStore) -> None:
        face = face_of(store)
        with pytest.raises(InvalidQueryError):
            QueryItem()
        with pytest.raises(InvalidQueryError):
            QueryItem(types="A")
        with pytest.raises(InvalidQueryError):
            face.read_query("not a query")
        with pytest.raises(InvalidQueryError):
            face.read_query(Query.all(), after=-1)
        with pytest.raises(InvalidQueryError):
            AppendCondition(Query.all(), after="1")  # type: ignore[arg-type]
        with pytest.raises(InvalidQueryError):
            face.append_if([tagged("A")], "no")

    def test_concurrent_decisions_never_break_the_rule(self, store: EventStore) -> None:
        # Eight writers race for three seats; each retries on a conflict.
        face = face_of(store)
        query = Query.of(types=["Seated"], tags=["room:r1"])
        errors: list[BaseException] = []

        def take_seat(who: int) -> None:
            try:
                for _ in range(100):
                    read = face.read_query(query)
                    if len(read.events) >= 3:
                        return
                    try:
                        face.append_if(
                            [tagged("Seated", "room:r1", n=who)], AppendCondition(query, read.head)
                        )
                        return
                    except AppendConditionFailedError:
                        continue
            except BaseException as err:  # pragma: no cover - reported below
                errors.append(err)

        threads = [threading.Thread(target=take_seat, args=(i,)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert len(face.read_query(query).events) == 3
