"""Dynamic Consistency Boundaries on the sync PostgreSQL store: locks, reads, checks.

GENERATED from ``_async/dcb.py`` by ``tools/unasync.py``: do not edit; edit
the async module and run the script. The design is described there.
"""

from __future__ import annotations

from typing import Any, Final

from chronik.backend import PreparedWrite, unlock_events
from chronik.errors import AppendConditionFailedError
from chronik.events import AppendResult, RecordedEvent
from chronik.query import AppendCondition, Query, event_keys, lock_keys, query_keys, read_head
from chronik.stores.postgres import sql
from chronik.stores.postgres._common import record
from chronik.stores.postgres._decide import MAX_APPEND_ATTEMPTS, OutOfOrderError
from chronik.stores.postgres._sync.connections import Conn, Connections
from chronik.stores.postgres._sync.writing import (
    PostgresTransaction,
    TryCarefully,
    append_once,
    lock_params,
)

__all__ = ["append_if", "read_query"]

_RECENT: Final = 1000  # events after a check's ``after``, at most, for its prepared plan


def _lock(conn: Conn, statements: sql.Statements, exclusive: list[str], shared: list[str]) -> int | None:
    """Take the keys; the store's head as the statement began (None when empty)."""
    cursor = conn.execute(statements.dcb_lock, lock_params(exclusive, shared))
    row = cursor.fetchone()
    return None if row is None else row[1]


def _names(names: tuple[str, ...]) -> str | None:
    return "\x1f".join(names) if names else None  # see sql.py: one text, not an array


def _statement(
    statements: sql.Statements, query: Query, start: int, limit: int | None, *, backwards: bool, how: str
) -> tuple[str, list[Any]]:
    """The one statement of a read by query (``sql.dcb_statement``) and its parameters."""
    params: list[Any] = []
    kinds: list[str] = []
    tail = [limit] if how == "limit" else []
    for item in query.items:
        if item.tags:
            types = _names(item.types)
            params += [_names(item.tags), types, types, start, *tail]
            kinds.append("tagged")
        else:
            params += [_names(item.types), start, *tail]
            kinds.append("types")
    if query.matches_all:
        params = [start, *tail]
    elif len(kinds) > 1:
        params += tail
    return sql.dcb_statement(statements, tuple(kinds), backwards, how), params


def _first_match(
    conn: Conn, statements: sql.Statements, query: Query, after: int, head: int | None
) -> int | None:
    """The position of the first event matching ``query`` after ``after``, or None;
    ``head``: the store's head as the decision's locks were asked for."""
    statement, params = _statement(statements, query, after, None, backwards=False, how="first")
    # A check after a recent head (a decision made on a read just now) runs prepared;
    # one far behind, or with no ``after``, is planned for its parameters (see "Plans").
    recent = head is None or head - after <= _RECENT
    cursor = conn.execute(statement, params, prepare=None if recent else False)
    row = cursor.fetchone()
    return None if row is None else row[0]


def read_query(
    shared: Connections, query: Query, start: int, limit: int | None, backwards: bool
) -> tuple[list[RecordedEvent], int | None]:
    """The events matching ``query`` after ``start`` and the head (see the module's docstring)."""
    statements, codec = shared.statements, shared.codec
    keys = lock_keys(query_keys(query))

    def op(conn: Conn) -> tuple[list[RecordedEvent], int | None]:
        if limit == 0:
            return [], _lock(conn, statements, [], [])
        how = "all" if limit is None else "limit"
        statement, params = _statement(statements, query, start, limit, backwards=backwards, how=how)
        with conn.transaction():
            head = _lock(conn, statements, keys, [])
            # Prepared without a limit, planned afresh with one (see "Plans" above).
            cursor = conn.execute(statement, params, binary=True, prepare=None if how == "all" else False)
            rows = cursor.fetchall()
        # Matching events that committed while the read waited for its locks come
        # after the head the lock statement saw; the read has them all (see above).
        if rows:
            last = max(rows[0][2], rows[-1][2])
            head = last if head is None else max(head, last)
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

    def decide(conn: Conn, careful: bool) -> AppendResult:
        with conn.transaction():
            head = _lock(conn, statements, exclusive_keys, shared_keys)
            if condition is not None:
                query = condition.fail_if_events_match
                found = _first_match(conn, statements, query, condition.after or 0, head)
                if found is not None:
                    raise AppendConditionFailedError(query, condition.after, found)
            if careful or shared.hooks:
                tx = PostgresTransaction(shared, conn, fresh=False)
                return (tx.append_prepared([prepared], locked=True))[0]
            return (append_once(conn, statements, [prepared]))[0]

    def op(conn: Conn) -> AppendResult:
        careful = False
        for attempt in range(MAX_APPEND_ATTEMPTS):
            try:
                return decide(conn, careful)
            except TryCarefully:
                careful = True
            except OutOfOrderError:
                # Only with inline projections: a writer without them appended to
                # the stream meanwhile (as in writing.commit); go again.
                if attempt == MAX_APPEND_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")

    result = shared.run(op)
    shared.poke()
    return result
