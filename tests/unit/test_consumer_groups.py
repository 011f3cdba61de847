"""Consumer groups: every stream to exactly one member, in order, whatever the join order."""

from __future__ import annotations

import itertools
import threading
from collections import defaultdict
from typing import Any

import pytest

import chronik
from chronik import InvalidInputError, NewEvent, RecordedEvent
from chronik.consumer_groups import ConsumerGroup
from chronik.projections import CheckpointedTarget, Projection
from chronik.stores.memory import MemoryEventStore

STREAMS = [f"job-{i}" for i in range(24)]


def _store() -> MemoryEventStore:
    store = chronik.connect("memory://")
    assert isinstance(store, MemoryEventStore)
    return store


def _write_round(store: MemoryEventStore, round_: int) -> None:
    for s in STREAMS:
        store.append(s, [NewEvent("Step", {"round": round_})])


def test_group_validates() -> None:
    with pytest.raises(InvalidInputError):
        ConsumerGroup("g", 0)
    with pytest.raises(InvalidInputError):
        ConsumerGroup("a:b", 2)
    group = ConsumerGroup("g", 3)
    assert [m.checkpoint_name for m in group.members] == ["group:g:0of3", "group:g:1of3", "group:g:2of3"]
    assert all(group.member(group.member_of(s)).owns(s) for s in STREAMS)


@pytest.mark.parametrize("order", list(itertools.permutations(range(3))))
def test_members_joining_in_any_order_share_every_stream_exactly_once(order: tuple[int, ...]) -> None:
    store = _store()
    group = ConsumerGroup("workers", 3, categories=("job",))
    seen: dict[int, list[RecordedEvent]] = defaultdict(list)
    _write_round(store, 0)
    for step, index in enumerate(order):
        # One member joins, reads its share, and records its checkpoint; then
        # more events arrive before the next one joins.
        member = group.member(index)
        with member.subscribe(store) as subscription:
            while batch := subscription.next_batch(0):
                seen[index].extend(batch)
            member.save_checkpoint(store, subscription.checkpoint)
        _write_round(store, step + 1)
    for index in range(3):  # everyone catches up on the rest
        member = group.member(index)
        with member.subscribe(store) as subscription:
            while batch := subscription.next_batch(0):
                seen[index].extend(batch)
    owners: dict[str, set[int]] = defaultdict(set)
    for index, events in seen.items():
        for e in events:
            owners[e.stream_id].add(index)
        for s in {e.stream_id for e in events}:
            assert [e.data["round"] for e in events if e.stream_id == s] == [0, 1, 2, 3], (
                "out of order or lost"
            )
    assert set(owners) == set(STREAMS)
    assert all(len(o) == 1 for o in owners.values()), "a stream went to two members"
    assert sum(len(v) for v in seen.values()) == len(STREAMS) * 4, "an event was delivered twice"


def test_members_as_projection_runners_on_threads() -> None:
    store = _store()
    group = ConsumerGroup("billing", 3)
    handled: dict[int, list[tuple[str, int]]] = defaultdict(list)
    lock = threading.Lock()

    def projection(index: int) -> Projection[Any]:
        def step(event: RecordedEvent, _: Any) -> None:
            with lock:
                handled[index].append((event.stream_id, event.data["round"]))

        return Projection("billing", {"Step": step})

    _write_round(store, 0)
    runners = [
        group.member(i).runner(store, projection(i), CheckpointedTarget(None, store)) for i in (2, 0, 1)
    ]
    for r in runners:
        r.run_in_background()
    try:
        for round_ in range(1, 4):
            _write_round(store, round_)
        for r in runners:
            assert r.wait_for(store.head(), timeout=60)
    finally:
        for r in runners:
            r.stop(timeout=60)
    assert all(r.error is None for r in runners)
    all_streams = [s for pairs in handled.values() for s, _ in pairs]
    assert sorted(set(all_streams)) == sorted(STREAMS)
    for index, pairs in handled.items():
        for s in {s for s, _ in pairs}:
            assert [r for t, r in pairs if t == s] == [0, 1, 2, 3]
            assert group.member_of(s) == index
    names = {r.checkpoint_name for r in runners}
    assert names == {f"projection:billing:v1:p{i}of3" for i in range(3)}
