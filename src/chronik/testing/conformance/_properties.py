"""Conformance: random sequences of operations give what the memory store gives."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import chronik
from chronik import ANY, NO_STREAM, STREAM_EXISTS, NewEvent, StreamWrite
from chronik.store import EventStore
from chronik.stores.memory import MemoryEventStore
from chronik.testing.conformance._base import ConformanceBase, make_registry

_expected = st.one_of(
    st.just(ANY), st.just(NO_STREAM), st.just(STREAM_EXISTS), st.integers(min_value=0, max_value=6)
)


@dataclass(frozen=True)
class Append:
    stream: int
    size: int
    expected: Any
    resend: int | None  # index of an earlier batch to send again, if any


@dataclass(frozen=True)
class AppendMany:
    writes: tuple[tuple[int, int, Any], ...]


_append = st.builds(
    Append,
    st.integers(0, 3),
    st.integers(1, 3),
    _expected,
    st.one_of(st.none(), st.integers(0, 20)),
)
_append_many = st.builds(
    AppendMany,
    st.lists(
        st.tuples(st.integers(0, 3), st.integers(1, 2), _expected),
        min_size=1,
        max_size=3,
        unique_by=lambda w: w[0],
    ).map(tuple),
)
_operations = st.lists(st.one_of(_append, _append, _append_many), min_size=1, max_size=12)


def _apply(
    store: EventStore, category: str, ops: list[Append | AppendMany], *, one_stream: bool = False
) -> list[Any]:
    """Run ``ops``; event ids are derived from the op index so both stores get the same.

    ``one_stream``: the reference plays a store that refuses ``append_many`` to several
    streams (``append_many_streams = "one"``), with ``InvalidInputError``.
    """
    outcomes: list[Any] = []
    batches: list[tuple[str, list[NewEvent]]] = []

    def batch(op_index: int, part: int, size: int) -> list[NewEvent]:
        return [
            NewEvent(
                "Prop",
                {"op": op_index, "part": part, "i": i},
                event_id=uuid.uuid5(uuid.NAMESPACE_OID, f"{category}/{op_index}/{part}/{i}"),
            )
            for i in range(size)
        ]

    for index, op in enumerate(ops):
        try:
            if isinstance(op, Append):
                if op.resend is not None and batches:
                    stream, events = batches[op.resend % len(batches)]
                else:
                    stream, events = f"{category}-{op.stream}", batch(index, 0, op.size)
                    batches.append((stream, events))
                result = store.append(stream, events, op.expected)
                outcomes.append(("ok", result.stream_id, result.version))
            else:
                writes = [
                    StreamWrite(f"{category}-{s}", batch(index, part, size), expected)
                    for part, (s, size, expected) in enumerate(op.writes)
                ]
                if one_stream and len(writes) > 1:
                    outcomes.append(("error", "InvalidInputError"))
                    continue
                results = store.append_many(writes)
                batches.extend((w.stream_id, list(w.events)) for w in writes)
                outcomes.append(("ok", [(r.stream_id, r.version) for r in results]))
        except chronik.ChronikError as err:
            outcomes.append(("error", type(err).__name__))
    return outcomes


def _snapshot(store: EventStore, category: str) -> tuple[Any, ...]:
    log = [
        (e.stream_id, e.version, e.event_id, e.type, e.data) for e in store.read_all(categories=[category])
    ]
    streams = {
        i.stream_id: [(e.version, e.event_id) for e in store.read_stream(i.stream_id)]
        for i in store.list_streams(category=category, limit=100)
    }
    return tuple(log), tuple(sorted(streams.items()))


class PropertyTests(ConformanceBase):
    """The store under test behaves exactly like the reference memory store."""

    def test_random_operations_match_the_memory_store(self, store: EventStore) -> None:
        @settings(
            max_examples=40,
            deadline=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        )
        @given(ops=_operations)
        def check(ops: list[Append | AppendMany]) -> None:
            category = f"prop{uuid.uuid4().hex[:10]}"
            reference = MemoryEventStore(make_registry())
            one_stream = self.append_many_streams == "one"
            expected = _apply(reference, category, ops, one_stream=one_stream)
            actual = _apply(store, category, ops)
            assert actual == expected
            assert _snapshot(store, category) == _snapshot(reference, category)

        check()
