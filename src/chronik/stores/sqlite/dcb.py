"""Dynamic Consistency Boundaries on SQLite: reads by query, and the condition check.

A read runs in one read transaction, so its head and its events come from the same
snapshot. ``append_if`` checks its condition inside the append's own transaction,
after ``BEGIN IMMEDIATE`` took the file's write lock: no event can be stored between
the check and the append, and positions follow commit order, so "no matching event
after ``after``" is exactly "nothing the decision read has changed".
"""

from __future__ import annotations

import sqlite3
from typing import Any, Final

import msgspec

from chronik.backend import Codec
from chronik.events import RecordedEvent
from chronik.query import AppendCondition, Query, QueryItem, read_head
from chronik.stores.sqlite import sql
from chronik.stores.sqlite.reader import records

__all__ = ["first_conflict", "read_query"]

_NO_LIMIT: Final = -1  # SQLite's LIMIT -1: no limit


def _json(values: tuple[str, ...]) -> str:
    return msgspec.json.encode(values).decode()


def _item_rows(
    conn: sqlite3.Connection, item: QueryItem, start: int, limit: int, backwards: bool
) -> list[Any]:
    if item.tags:
        statement = sql.QUERY_TAGGED_BACKWARD if backwards else sql.QUERY_TAGGED
        types = _json(item.types) if item.types else None
        params: tuple[Any, ...] = (item.tags[0], start, types, _json(item.tags[1:]), limit)
    else:
        statement = sql.QUERY_TYPES_BACKWARD if backwards else sql.QUERY_TYPES
        params = (_json(item.types), start, limit)
    return conn.execute(statement, params).fetchall()


def _rows(
    conn: sqlite3.Connection, query: Query, start: int, limit: int | None, backwards: bool
) -> list[Any]:
    """Rows matching ``query`` after ``start``, in position order (reversed if ``backwards``)."""
    wanted = _NO_LIMIT if limit is None else limit
    if query.matches_all:
        statement = sql.QUERY_ALL_BACKWARD if backwards else sql.QUERY_ALL
        return conn.execute(statement, (start, wanted)).fetchall()
    if len(query.items) == 1:
        return _item_rows(conn, query.items[0], start, wanted, backwards)
    # Each item's first ``limit`` rows hold the first ``limit`` rows of their union.
    merged: dict[int, Any] = {}
    for item in query.items:
        for row in _item_rows(conn, item, start, wanted, backwards):
            merged[row[2]] = row
    rows = [merged[p] for p in sorted(merged, reverse=backwards)]
    return rows if limit is None else rows[:limit]


def read_query(
    conn: sqlite3.Connection, codec: Codec, query: Query, start: int, limit: int | None, backwards: bool
) -> tuple[list[RecordedEvent], int | None]:
    """The events matching ``query`` and the head, from one snapshot of the file."""
    own = not conn.in_transaction
    if own:
        conn.execute("BEGIN")  # deferred: a read snapshot, taken at the first SELECT
    try:
        head = conn.execute(sql.HEAD).fetchone()[0]
        rows = _rows(conn, query, start, limit, backwards)
    finally:
        if own:
            conn.execute("COMMIT")
    events = records(rows, codec)
    return events, read_head(head, events[-1].position if events else None, len(events), limit, backwards)


def first_conflict(conn: sqlite3.Connection, condition: AppendCondition) -> int | None:
    """The position of the first event matching the condition's query after its
    ``after``, or None; run inside the append's write transaction."""
    rows = _rows(conn, condition.fail_if_events_match, condition.after or 0, 1, False)
    return rows[0][2] if rows else None
