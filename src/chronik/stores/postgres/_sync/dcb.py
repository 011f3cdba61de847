"""Dynamic Consistency Boundaries on the sync PostgreSQL store: locks, reads, checks.

GENERATED from ``_async/dcb.py`` by ``tools/unasync.py``: do not edit; edit
the async module and run the script. The design is described there.
"""

from __future__ import annotations

from typing import Any

from chronik.backend import PreparedWrite, unlock_events
from chronik.errors import AppendConditionFailedError
from chronik.events import AppendResult, RecordedEvent
from chronik.query import AppendCondition, Query, QueryItem, event_keys, lock_keys, query_keys, read_head
from chronik.stores.postgres import sql
from chronik.stores.postgres._common import record
from chronik.stores.postgres._decide import MAX_APPEND_ATTEMPTS, OutOfOrderError
from chronik.stores.postgres._sync.connections import Conn, Connections
from chronik.stores.postgres._sync.writing import PostgresTransaction

__all__ = ["append_if", "read_query"]

_NO_LIMIT = None  # LIMIT NULL: no limit


def _lock(conn: Conn, statements: sql.Statements, exclusive: list[str], shared: list[str]) -> None:
    keys = exclusive + shared
    flags = [True] * len(exclusive) + [False] * len(shared)
    conn.execute(statements.dcb_lock, {"keys": keys, "exclusive": flags})


def _item_rows(
    conn: Conn, statements: sql.Statements, item: QueryItem, start: int, limit: int | None, backwards: bool
) -> list[Any]:
    params = {"after": start, "limit": limit, "types": list(item.types) or None, "tags": list(item.tags)}
    if item.tags:
        statement = statements.dcb_tagged_backward if backwards else statements.dcb_tagged
    else:
        statement = statements.dcb_types_backward if backwards else statements.dcb_types
    cursor = conn.execute(statement, params, binary=True)
    return cursor.fetchall()


def _rows(
    conn: Conn, statements: sql.Statements, query: Query, start: int, limit: int | None, backwards: bool
) -> list[Any]:
    if query.matches_all:
        statement = statements.dcb_all_backward if backwards else statements.dcb_all
        cursor = conn.execute(statement, {"after": start, "limit": limit}, binary=True)
        return cursor.fetchall()
    if len(query.items) == 1:
        return _item_rows(conn, statements, query.items[0], start, limit, backwards)
    # Each item's first ``limit`` rows hold the first ``limit`` rows of their union.
    merged: dict[int, Any] = {}
    for item in query.items:
        for row in _item_rows(conn, statements, item, start, limit, backwards):
            merged[row[2]] = row
    rows = [merged[p] for p in sorted(merged, reverse=backwards)]
    return rows if limit is None else rows[:limit]


def read_query(
    shared: Connections, query: Query, start: int, limit: int | None, backwards: bool
) -> tuple[list[RecordedEvent], int | None]:
    """The events matching ``query`` after ``start`` and the head (see the module's docstring)."""
    statements, codec = shared.statements, shared.codec
    keys = lock_keys(query_keys(query))

    def op(conn: Conn) -> tuple[list[RecordedEvent], int | None]:
        with conn.transaction():
            _lock(conn, statements, keys, [])
            cursor = conn.execute(statements.dcb_head)
            row = cursor.fetchone()
            head = None if row is None else row[0]
            rows = _rows(conn, statements, query, start, limit, backwards)
        return [record(r, codec) for r in rows], head

    events, head = shared.run(op)
    unlock_events(codec, events)
    return events, read_head(head, events[-1].position if events else None, len(events), limit, backwards)


def append_if(
    shared: Connections, prepared: PreparedWrite, condition: AppendCondition | None
) -> AppendResult:
    """Append ``prepared`` unless ``condition`` fails (see the module's docstring)."""
    statements = shared.statements
    exclusive = set() if condition is None else query_keys(condition.fail_if_events_match)
    covered: set[tuple[str, str]] = set()
    for event in prepared.events:
        covered |= event_keys(event.type, event.tags)
    exclusive_keys = lock_keys(exclusive)
    shared_keys = lock_keys(covered - exclusive)

    def op(conn: Conn) -> AppendResult:
        for attempt in range(MAX_APPEND_ATTEMPTS):
            try:
                with conn.transaction():
                    _lock(conn, statements, exclusive_keys, shared_keys)
                    if condition is not None:
                        query = condition.fail_if_events_match
                        found = _rows(conn, statements, query, condition.after or 0, 1, False)
                        if found:
                            raise AppendConditionFailedError(query, condition.after, found[0][2])
                    tx = PostgresTransaction(shared, conn, fresh=False)
                    return (tx.append_prepared([prepared], locked=True))[0]
            except OutOfOrderError:
                # Only with inline projections: a writer without them appended to
                # the stream meanwhile (as in writing.commit); go again.
                if attempt == MAX_APPEND_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")

    result = shared.run(op)
    shared.poke()
    return result
