"""Dynamic Consistency Boundaries in memory: which events a query matches, found through
an index of positions by tag and by type instead of a look at every event.

The log keeps, for every tag and every type, the positions of its events in order
(``MemoryLog.by_tag``, ``by_type``: appended at each commit, under the log's lock; a
scavenged event's position stays, and is passed over, since its row is ``Removed``).
An item with tags looks only at the positions of its rarest tag; one without, at
those of its types; the events there are then matched whole. So a read or a check
costs what it finds, not what the store holds.
"""

from __future__ import annotations

import bisect
import heapq
from collections.abc import Iterable, Iterator, Sequence

from chronik.query import Query, QueryItem
from chronik.stores.memory.reader import MemoryLog, Row

__all__ = ["first_match", "index", "matching", "reindex"]


def index(log: MemoryLog, row: Row) -> None:
    """Index a row as it is committed (its position is after every one indexed)."""
    log.by_type.setdefault(row.event.type, []).append(row.position)
    for tag in row.event.tags:
        log.by_tag.setdefault(tag, []).append(row.position)


def reindex(log: MemoryLog, row: Row) -> None:
    """Index a row replaced in place (``chronik repair``) under its type and tags now.
    What it was indexed under before stays: every candidate is matched against the
    row as it is, so an entry that no longer fits is passed over."""
    lists = [log.by_type.setdefault(row.event.type, [])]
    lists += [log.by_tag.setdefault(tag, []) for tag in row.event.tags]
    for positions in lists:
        at = bisect.bisect_left(positions, row.position)
        if at == len(positions) or positions[at] != row.position:
            positions.insert(at, row.position)


def _candidates(log: MemoryLog, item: QueryItem, start: int) -> Iterator[int]:
    """Positions after ``start`` where ``item`` may match, in order."""
    if item.tags:
        lists: Sequence[list[int]] = [min((log.by_tag.get(tag, []) for tag in item.tags), key=len)]
    else:
        lists = [log.by_type.get(type, []) for type in item.types]
    tails = [positions[bisect.bisect_right(positions, start) :] for positions in lists]
    return iter(tails[0]) if len(tails) == 1 else heapq.merge(*tails)


def _item_matches(log: MemoryLog, item: QueryItem, start: int) -> Iterator[int]:
    rows = log.rows
    for position in _candidates(log, item, start):
        row = rows[position - 1]  # a scavenged event's place holds Removed
        if isinstance(row, Row) and item.matches(row.event.type, row.event.tags):
            yield position


def matching(log: MemoryLog, query: Query, start: int) -> list[Row]:
    """The events after position ``start`` that ``query`` matches, in order; the
    caller holds the log's lock (or its write lock)."""
    rows = log.rows
    if query.matches_all:
        return [row for row in rows[start:] if isinstance(row, Row)]
    if len(query.items) == 1:
        positions: Iterable[int] = _item_matches(log, query.items[0], start)
    else:
        found: set[int] = set()
        for item in query.items:
            found.update(_item_matches(log, item, start))
        positions = sorted(found)
    return [row for row in (rows[p - 1] for p in positions) if isinstance(row, Row)]


def first_match(log: MemoryLog, query: Query, after: int) -> int | None:
    """The position of the first event after ``after`` that ``query`` matches, or None."""
    if query.matches_all:
        return next((row.position for row in log.rows[after:] if isinstance(row, Row)), None)
    firsts = [next(_item_matches(log, item, after), None) for item in query.items]
    found = [p for p in firsts if p is not None]
    return min(found) if found else None
