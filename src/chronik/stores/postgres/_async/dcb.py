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
  then reads the head and the events.

Why that is enough. (1) A read waits for every writer of a matching event that is
under way; one that starts later waits for the read to finish and then takes a
position from the sequence, higher than any the read saw. So every matching event
at or below the read's head is visible to the read: what it read is complete up
to its head. (2) The condition check waits the same way, so every matching event
written before it is visible to it, and one written after it waits for this
decision to commit. Together: the check finds a matching event after ``after``
exactly when one exists that the decision did not read, and of two conflicting
decisions the second to take the lock sees the first's events. (3) Decisions and
reads on disjoint keys never share an exclusive lock, so they never wait for each
other; writers only share locks in shared mode, which do not wait at all.

Plain appends. ``append``, ``append_many`` and a transaction's appends hold the
keys of their TAGGED events shared too, the same keys ``append_if`` takes for its
events (``writing.tag_lock_keys``), in their transaction, before the inline lock, so
a decision is serialized against them as against ``append_if``. Untagged events take
no keys (an untagged append stays one statement): so a decision whose query has an
item without tags (types only, or ``Query.all()``) is not protected against untagged
events appended plainly; write those with ``append_if``. A transaction that appends
tagged events twice takes keys in two batches and may deadlock with a decision;
PostgreSQL then rolls one of them back (a transient ``OperationalError``).

Limit, stated in docs/dcb.md: the position sequence must hand out increasing numbers
across sessions (the identity's default ``CACHE 1``).
"""

from __future__ import annotations

from typing import Any

from chronik.backend import PreparedWrite, unlock_events_async
from chronik.errors import AppendConditionFailedError
from chronik.events import AppendResult, RecordedEvent
from chronik.query import AppendCondition, Query, QueryItem, event_keys, lock_keys, query_keys, read_head
from chronik.stores.postgres import sql
from chronik.stores.postgres._async.connections import Conn, Connections
from chronik.stores.postgres._async.writing import AsyncPostgresTransaction
from chronik.stores.postgres._common import record
from chronik.stores.postgres._decide import MAX_APPEND_ATTEMPTS, OutOfOrderError

__all__ = ["append_if", "read_query"]

_NO_LIMIT = None  # LIMIT NULL: no limit


async def _lock(conn: Conn, statements: sql.Statements, exclusive: list[str], shared: list[str]) -> None:
    keys = exclusive + shared
    flags = [True] * len(exclusive) + [False] * len(shared)
    await conn.execute(statements.dcb_lock, {"keys": keys, "exclusive": flags})


async def _item_rows(
    conn: Conn, statements: sql.Statements, item: QueryItem, start: int, limit: int | None, backwards: bool
) -> list[Any]:
    params = {"after": start, "limit": limit, "types": list(item.types) or None, "tags": list(item.tags)}
    if item.tags:
        statement = statements.dcb_tagged_backward if backwards else statements.dcb_tagged
    else:
        statement = statements.dcb_types_backward if backwards else statements.dcb_types
    cursor = await conn.execute(statement, params, binary=True)
    return await cursor.fetchall()


async def _rows(
    conn: Conn, statements: sql.Statements, query: Query, start: int, limit: int | None, backwards: bool
) -> list[Any]:
    if query.matches_all:
        statement = statements.dcb_all_backward if backwards else statements.dcb_all
        cursor = await conn.execute(statement, {"after": start, "limit": limit}, binary=True)
        return await cursor.fetchall()
    if len(query.items) == 1:
        return await _item_rows(conn, statements, query.items[0], start, limit, backwards)
    # Each item's first ``limit`` rows hold the first ``limit`` rows of their union.
    merged: dict[int, Any] = {}
    for item in query.items:
        for row in await _item_rows(conn, statements, item, start, limit, backwards):
            merged[row[2]] = row
    rows = [merged[p] for p in sorted(merged, reverse=backwards)]
    return rows if limit is None else rows[:limit]


async def read_query(
    shared: Connections, query: Query, start: int, limit: int | None, backwards: bool
) -> tuple[list[RecordedEvent], int | None]:
    """The events matching ``query`` after ``start`` and the head (see the module's docstring)."""
    statements, codec = shared.statements, shared.codec
    keys = lock_keys(query_keys(query))

    async def op(conn: Conn) -> tuple[list[RecordedEvent], int | None]:
        async with conn.transaction():
            await _lock(conn, statements, keys, [])
            cursor = await conn.execute(statements.dcb_head)
            row = await cursor.fetchone()
            head = None if row is None else row[0]
            rows = await _rows(conn, statements, query, start, limit, backwards)
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

    async def op(conn: Conn) -> AppendResult:
        for attempt in range(MAX_APPEND_ATTEMPTS):
            try:
                async with conn.transaction():
                    await _lock(conn, statements, exclusive_keys, shared_keys)
                    if condition is not None:
                        query = condition.fail_if_events_match
                        found = await _rows(conn, statements, query, condition.after or 0, 1, False)
                        if found:
                            raise AppendConditionFailedError(query, condition.after, found[0][2])
                    tx = AsyncPostgresTransaction(shared, conn, fresh=False)
                    return (await tx.append_prepared([prepared], locked=True))[0]
            except OutOfOrderError:
                # Only with inline projections: a writer without them appended to
                # the stream meanwhile (as in writing.commit); go again.
                if attempt == MAX_APPEND_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")

    result = await shared.run(op)
    shared.poke()
    return result
