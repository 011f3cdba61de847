"""What projections need of the PostgreSQL store, on one connection.

Written for asyncio; ``_sync/projection_state.py`` is generated from this file by
``tools/unasync.py`` (see the package's docstring).

**Projection state and dead letters** (``chronik.store.ProjectionStateStore``). The
store runs these on a pooled connection; a transaction runs them on its own, so a
projection parks an event in the same commit as the checkpoint that moves past it.
**Runners' heartbeats** (``chronik.store.RunnerHeartbeats``) go on a pooled connection,
each a statement of its own.

**Inline projections** (``chronik.store.AppendHooks``): hooks run inside the
transaction of each append, and must see the log in exactly the order readers do.
SQLite gets that from its single writer. PostgreSQL has no global write lock, and
ordinary appends must not get one, so here is how an inline projection stays
exactly in step: at every commit, every event up to its checkpoint (in the log's
order, ``(transaction id, position)``) has been handled once, and none after it.

1. Every transaction that runs hooks holds the *inline lock* (a transaction-level
   advisory lock of the store's schema) until it ends, and takes its transaction
   id right after getting it: so hooked transactions run one at a time, get their
   ids in the order they commit, and each sees the checkpoint its predecessor
   committed (READ COMMITTED) and moves it forward, never back. A hook's
   ``installed`` catch-up holds it too (and waits as in point 2, so it catches up
   on everything committed before), so it cannot save an older checkpoint over a
   concurrent append's. Hooked appends queue on the lock, rather than poll for
   each other as point 2 would make them; writers without hooks never touch it.
2. Writers that do not run the hook (processes or store objects without it, or
   transactions begun before it was installed) must not be skipped. The failure
   this prevents: a writer without the hook takes transaction id 100 and has not
   committed; a hooked append, id 101, handles its own events and moves the
   checkpoint to them; 100 then commits events that sort *before* the checkpoint,
   and the projection never sees them. So once it has its id, a hooked
   transaction waits until no transaction older than it is still running. Then
   every event older than its own is final and visible to it; the hook's catch-up
   (``chronik.projections._inline``) handles those after the checkpoint, then the
   append's own events, and moves the checkpoint to them. Any transaction that can
   still write an event is younger, so its events land after that checkpoint, and
   the next hooked append catches up on them.
3. The wait cannot deadlock in the ordinary case: a transaction waits for the lock
   only before it has an id (so a holder never waits for a waiter), and while the
   holder waits it holds no row locks an older writer could be waiting for (its id
   came from ``pg_current_xact_id()``, not from a write). A ``store.transaction()``
   that wrote before its first append
   already has an id: it only *tries* the lock, and fails with
   ``ConcurrencyError`` when another hooked transaction holds it or has committed
   events younger than it (its own events would land behind that transaction's
   checkpoint). It may hold row locks while it waits for older transactions, so
   its wait is bounded by ``visibility_timeout`` and then fails with
   ``OperationalError``, as does any wait longer than that.
4. A plain append whose stream's last event was written, meanwhile, by a younger
   transaction (a writer without the hook) cannot put its events behind it: it
   goes again in a new transaction.

What it costs: hooked appends of one schema run one at a time, as on SQLite, and
each waits for write transactions older than it (of any database of the server)
to end; appends of stores without hooks, and readers, are not slowed at all.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, TypeAlias

import psycopg

from chronik.backend import Codec, validate_dead_letter_key, validate_projection, validate_runner_id
from chronik.errors import ConcurrencyError, OperationalError
from chronik.events import DeadLetter, ProjectionState, RecordedEvent, RunnerHeartbeat
from chronik.stores.postgres import sql
from chronik.stores.postgres._common import record
from chronik.stores.postgres._projection_rows import (
    heartbeat_params,
    heartbeats_of,
    letter_of,
    letter_params,
    state_of,
    state_params,
)

__all__ = [
    "dead_letters",
    "delete_dead_letter",
    "delete_heartbeat",
    "delete_projection_state",
    "enter_inline",
    "heartbeats",
    "own_events",
    "park_event",
    "projection_states",
    "save_heartbeat",
    "save_projection_state",
]

Conn: TypeAlias = psycopg.AsyncConnection[tuple[Any, ...]]


# -- projection state and dead letters ------------------------------------------------


async def save_projection_state(conn: Conn, statements: sql.Statements, state: ProjectionState) -> None:
    await conn.execute(statements.save_projection_state, state_params(state))


async def projection_states(
    conn: Conn, statements: sql.Statements, name: str | None
) -> list[ProjectionState]:
    cursor = await conn.execute(statements.projection_states, {"name": name})
    return [state_of(row) for row in await cursor.fetchall()]


async def delete_projection_state(conn: Conn, statements: sql.Statements, name: str, version: int) -> None:
    validate_projection(name, version)
    await conn.execute(statements.delete_projection_state, {"name": name, "version": version})


async def delete_dead_letter(
    conn: Conn, statements: sql.Statements, projection: str, version: int, position: int
) -> None:
    validate_dead_letter_key(projection, version, position)
    params = {"projection": projection, "version": version, "position": position}
    await conn.execute(statements.delete_dead_letter, params)


async def park_event(conn: Conn, statements: sql.Statements, letter: DeadLetter) -> None:
    await conn.execute(statements.park_event, letter_params(letter))


async def dead_letters(conn: Conn, statements: sql.Statements, projection: str | None) -> list[DeadLetter]:
    cursor = await conn.execute(statements.dead_letters, {"projection": projection})
    return [letter_of(row) for row in await cursor.fetchall()]


# -- runners' heartbeats ----------------------------------------------------------------


async def save_heartbeat(conn: Conn, statements: sql.Statements, heartbeat: RunnerHeartbeat) -> None:
    params = heartbeat_params(heartbeat)
    async with conn.transaction():  # see sql._HEARTBEAT_COMMIT
        await conn.execute(statements.heartbeat_commit)
        await conn.execute(statements.save_heartbeat, params)


async def heartbeats(conn: Conn, statements: sql.Statements, name: str | None) -> list[RunnerHeartbeat]:
    cursor = await conn.execute(statements.heartbeats, {"name": name})
    return heartbeats_of(await cursor.fetchall())


async def delete_heartbeat(conn: Conn, statements: sql.Statements, runner_id: str) -> None:
    await conn.execute(statements.delete_heartbeat, (validate_runner_id(runner_id),))


# -- inline projections -----------------------------------------------------------------


async def enter_inline(
    conn: Conn, statements: sql.Statements, *, fresh: bool, timeout: float, where: str
) -> None:
    """Take the inline lock in the transaction open on ``conn``, then wait for older writers.

    ``fresh``: the transaction has run nothing yet, so it surely has no id.
    """
    has_id = False
    if not fresh:
        cursor = await conn.execute(statements.has_xid)
        row = await cursor.fetchone()
        has_id = row is not None and bool(row[0])
    if not has_id:
        await conn.execute(statements.inline_enter)
    else:
        # Waiting for the lock with an id would let a holder wait for us (point 3).
        cursor = await conn.execute(statements.inline_try_enter)
        row = await cursor.fetchone()
        if row is None or not row[0]:
            raise ConcurrencyError(
                f"inline projections on {where}: this transaction wrote before its first append, and "
                "another append running inline projections is in progress; retry the transaction "
                "(or append before your other writes)"
            )
        cursor = await conn.execute(statements.younger_events)
        row = await cursor.fetchone()
        if row is not None and row[0]:
            raise ConcurrencyError(
                f"inline projections on {where}: this transaction wrote before its first append, and "
                "events of younger transactions have committed since; retry the transaction "
                "(or append before your other writes)"
            )
    await _wait_for_older(conn, statements, timeout, where)


async def _wait_for_older(conn: Conn, statements: sql.Statements, timeout: float, where: str) -> None:
    """Wait until no transaction older than this one is running (point 2).

    Polled, like a reader waiting for a held-back event: nothing notifies when a
    transaction ends, and it need not be chronik's.
    """
    deadline = time.monotonic() + timeout
    delay = 0.0005
    while True:
        cursor = await conn.execute(statements.older_running)
        row = await cursor.fetchone()
        older = None if row is None else row[0]
        if older is None:
            return
        if time.monotonic() >= deadline:
            raise OperationalError(
                f"inline projections on {where}: transaction {older}, older than this append, was still "
                f"running after {timeout} s (visibility_timeout); its events would come first in the "
                "log, so the append cannot run the projections before it ends. Keep write transactions short",
                transient=True,
            )
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.05)


async def own_events(conn: Conn, statements: sql.Statements, codec: Codec, after: int) -> list[RecordedEvent]:
    """The events this transaction wrote at positions after ``after``, in log order.

    A transaction's own positions only grow, so these are exactly what it appended
    since it last looked: what its hooks have not been given yet.
    """
    cursor = await conn.execute(statements.own_events, (after,), binary=True)
    return [record(row, codec) for row in await cursor.fetchall()]
