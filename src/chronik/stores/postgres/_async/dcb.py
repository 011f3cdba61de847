"""Dynamic Consistency Boundaries on PostgreSQL: reads by query and conditional
appends, correct under concurrent writers without a global write lock.

Written for asyncio; ``_sync/dcb.py`` is generated from this file by
``tools/unasync.py``.

THE PROBLEM. A decision reads the events matching its query, decides, and appends
on the condition that no matching event was stored after the position ``after`` it
read up to. On PostgreSQL positions are taken at insert time, not at commit (see
the ordering guarantee in ``sql.py``): a writer can hold position 10 uncommitted
while position 11 commits. A decision that read up to 11 and then checked "nothing
matching after 11" would miss 10 when it commits, and two decisions that each
should have seen the other would both commit (two students in the last seat). A
global write lock (``LOCK TABLE ... EXCLUSIVE``, as ``eventsourcing.dcb`` takes)
fixes it by making every writer wait for every other.

THE LOCKS. Instead, every event is covered by a few keys, (type, *), (type, tag)
and (*, tag) for each of its tags, and (*, *); a query needs one key of each item
that every event it matches is covered by (``chronik.query.query_keys``). The keys
are hashed into transaction-level advisory locks, always taken in hash order (so
no two transactions wait for each other in a cycle) and released at commit:

- ``append_if`` holds its events' keys SHARED from before its events get their
  positions until it commits, and its condition's keys EXCLUSIVE; then it checks
  the condition, in a statement that starts after the locks were granted;
- ``read_query`` takes its query's keys EXCLUSIVE (for the moment the read lasts),
  reading the store's head in the same statement, then reads the events; the head
  it reports is the larger of that head and the last position it read.

Why that is enough. (1) A read waits for every writer of a matching event that is
under way; one that starts later waits for the read to finish and then takes a
position from the sequence, higher than any the read saw (the head, taken as the
lock statement began, and every position it read were handed out before). So every
matching event at or below the read's head is visible to the read: what it read is
complete up to its head. (2) The condition check waits the same way, so every matching event
written before it is visible to it, and one written after it waits for this
decision to commit. Together: the check finds a matching event after ``after``
exactly when one exists that the decision did not read, and of two conflicting
decisions the second to take the lock sees the first's events. (3) Decisions and
reads on disjoint keys never share an exclusive lock, so they never wait for each
other; writers only share locks in shared mode, which do not wait at all.

Plain appends. Every append statement, plain or in a transaction, of tagged events
or not, holds its events' keys SHARED from before its events get positions until
its transaction commits, the keys ``append_if`` takes for its own events (the lock
is taken inside the statement: ``sql._APPEND_TEMPLATE``). So a decision is
serialized against plain appends exactly as against other decisions, whatever its
query: by tags, by types alone, or ``Query.all()``. Untagged events are covered by
(type, *) and (*, *): they wait only for decisions on their type or on everything.
A transaction that appends twice takes keys in two batches and may deadlock with a
decision that holds one of them and wants the other; PostgreSQL then rolls one of
them back (a transient ``OperationalError``).

Round trips (each costs both sides CPU, and on a machine with few cores that CPU
is what bounds decisions per second: docs/dcb.md): a read is four statements
(BEGIN, locks and head, events, COMMIT), a decision five (BEGIN, locks, check,
append, COMMIT). The append runs without a savepoint; when it does not go through
(an event id stored already: a re-sent decision), the transaction is rolled back
and the decision goes again the careful way (``writing.append_writes``), whose
savepoints keep the transaction usable between its attempts.

Plans. A read by query is one statement whatever its items (their union:
``sql.dcb_statement``). Which index is right depends on the tags, the types, the
``after`` and the limit it is given, and a generic plan (what a prepared statement
switches to after five runs) knows none of them. With a limit PostgreSQL's generic
plan walked the primary key and filtered every event by its tags: 6 to 13 ms a read
in a store of 20,000 events, against 0.15 to 0.3 ms planned for the parameters
(``prepare=False``, planning included), which is how a read with a limit runs.
Without a limit (a decision's read) nothing makes a walk in position order pay, and
the generic plan is the tags index's: that read runs prepared (70 microseconds of
the server's time for one item, 170 for two, against 140 and 270 planned each time).
A condition's check after a recent head (what a decision on a read just made has)
runs prepared too: its generic plan walks the primary key from ``after`` through
the few events since (20 microseconds, against 330 to plan it afresh); a check
further behind, or with no ``after``, is planned for its parameters.

Limit, stated in docs/dcb.md: the position sequence must hand out increasing numbers
across sessions (the identity's default ``CACHE 1``).
"""

from __future__ import annotations

from typing import Any, Final

from chronik.backend import PreparedWrite, unlock_events_async
from chronik.errors import AppendConditionFailedError
from chronik.events import AppendResult, RecordedEvent
from chronik.query import AppendCondition, Query, event_keys, lock_keys, query_keys, read_head
from chronik.stores.postgres import sql
from chronik.stores.postgres._async.connections import Conn, Connections
from chronik.stores.postgres._async.writing import (
    AsyncPostgresTransaction,
    TryCarefully,
    append_once,
    lock_params,
)
from chronik.stores.postgres._common import record
from chronik.stores.postgres._decide import MAX_APPEND_ATTEMPTS, OutOfOrderError

__all__ = ["append_if", "read_query"]

_RECENT: Final = 1000  # events after a check's ``after``, at most, for its prepared plan


async def _lock(
    conn: Conn, statements: sql.Statements, exclusive: list[str], shared: list[str]
) -> int | None:
    """Take the keys; the store's head as the statement began (None when empty)."""
    cursor = await conn.execute(statements.dcb_lock, lock_params(exclusive, shared))
    row = await cursor.fetchone()
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


async def _first_match(
    conn: Conn, statements: sql.Statements, query: Query, after: int, head: int | None
) -> int | None:
    """The position of the first event matching ``query`` after ``after``, or None;
    ``head``: the store's head as the decision's locks were asked for."""
    statement, params = _statement(statements, query, after, None, backwards=False, how="first")
    # A check after a recent head (a decision made on a read just now) runs prepared;
    # one far behind, or with no ``after``, is planned for its parameters (see "Plans").
    recent = head is None or head - after <= _RECENT
    cursor = await conn.execute(statement, params, prepare=None if recent else False)
    row = await cursor.fetchone()
    return None if row is None else row[0]


async def read_query(
    shared: Connections, query: Query, start: int, limit: int | None, backwards: bool
) -> tuple[list[RecordedEvent], int | None]:
    """The events matching ``query`` after ``start`` and the head (see the module's docstring)."""
    statements, codec = shared.statements, shared.codec
    keys = lock_keys(query_keys(query))

    async def op(conn: Conn) -> tuple[list[RecordedEvent], int | None]:
        if limit == 0:
            return [], await _lock(conn, statements, [], [])
        how = "all" if limit is None else "limit"
        statement, params = _statement(statements, query, start, limit, backwards=backwards, how=how)
        async with conn.transaction():
            head = await _lock(conn, statements, keys, [])
            # Prepared without a limit, planned afresh with one (see "Plans" above).
            cursor = await conn.execute(
                statement, params, binary=True, prepare=None if how == "all" else False
            )
            rows = await cursor.fetchall()
        # Matching events that committed while the read waited for its locks come
        # after the head the lock statement saw; the read has them all (see above).
        if rows:
            last = max(rows[0][2], rows[-1][2])
            head = last if head is None else max(head, last)
        return [record(r, codec) for r in rows], head

    events, head = await shared.run(op)
    await unlock_events_async(codec, events)
    return events, read_head(head, events[-1].position if events else None, len(events), limit, backwards)


async def append_if(
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

    async def decide(conn: Conn, careful: bool) -> AppendResult:
        async with conn.transaction():
            head = await _lock(conn, statements, exclusive_keys, shared_keys)
            if condition is not None:
                query = condition.fail_if_events_match
                found = await _first_match(conn, statements, query, condition.after or 0, head)
                if found is not None:
                    raise AppendConditionFailedError(query, condition.after, found)
            if careful or shared.hooks:
                tx = AsyncPostgresTransaction(shared, conn, fresh=False)
                return (await tx.append_prepared([prepared], locked=True))[0]
            return (await append_once(conn, statements, [prepared]))[0]

    async def op(conn: Conn) -> AppendResult:
        careful = False
        for attempt in range(MAX_APPEND_ATTEMPTS):
            try:
                return await decide(conn, careful)
            except TryCarefully:
                careful = True
            except OutOfOrderError:
                # Only with inline projections: a writer without them appended to
                # the stream meanwhile (as in writing.commit); go again.
                if attempt == MAX_APPEND_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")

    result = await shared.run(op)
    shared.poke()
    return result
