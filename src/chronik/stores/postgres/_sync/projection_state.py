"""Projection state and inline projections for the sync PostgreSQL store.

GENERATED from ``_async/projection_state.py`` by ``tools/unasync.py``: do not edit; edit
the async module and run the script. The design is described there.
"""

from __future__ import annotations

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

Conn: TypeAlias = psycopg.Connection[tuple[Any, ...]]


# -- projection state and dead letters ------------------------------------------------


def save_projection_state(conn: Conn, statements: sql.Statements, state: ProjectionState) -> None:
    conn.execute(statements.save_projection_state, state_params(state))


def projection_states(conn: Conn, statements: sql.Statements, name: str | None) -> list[ProjectionState]:
    cursor = conn.execute(statements.projection_states, {"name": name})
    return [state_of(row) for row in cursor.fetchall()]


def delete_projection_state(conn: Conn, statements: sql.Statements, name: str, version: int) -> None:
    validate_projection(name, version)
    conn.execute(statements.delete_projection_state, {"name": name, "version": version})


def delete_dead_letter(
    conn: Conn, statements: sql.Statements, projection: str, version: int, position: int
) -> None:
    validate_dead_letter_key(projection, version, position)
    params = {"projection": projection, "version": version, "position": position}
    conn.execute(statements.delete_dead_letter, params)


def park_event(conn: Conn, statements: sql.Statements, letter: DeadLetter) -> None:
    conn.execute(statements.park_event, letter_params(letter))


def dead_letters(conn: Conn, statements: sql.Statements, projection: str | None) -> list[DeadLetter]:
    cursor = conn.execute(statements.dead_letters, {"projection": projection})
    return [letter_of(row) for row in cursor.fetchall()]


# -- runners' heartbeats ----------------------------------------------------------------


def save_heartbeat(conn: Conn, statements: sql.Statements, heartbeat: RunnerHeartbeat) -> None:
    params = heartbeat_params(heartbeat)
    with conn.transaction():  # see sql._HEARTBEAT_COMMIT
        conn.execute(statements.heartbeat_commit)
        conn.execute(statements.save_heartbeat, params)


def heartbeats(conn: Conn, statements: sql.Statements, name: str | None) -> list[RunnerHeartbeat]:
    cursor = conn.execute(statements.heartbeats, {"name": name})
    return heartbeats_of(cursor.fetchall())


def delete_heartbeat(conn: Conn, statements: sql.Statements, runner_id: str) -> None:
    conn.execute(statements.delete_heartbeat, (validate_runner_id(runner_id),))


# -- inline projections -----------------------------------------------------------------


def enter_inline(conn: Conn, statements: sql.Statements, *, fresh: bool, timeout: float, where: str) -> None:
    """Take the inline lock in the transaction open on ``conn``, then wait for older writers.

    ``fresh``: the transaction has run nothing yet, so it surely has no id.
    """
    has_id = False
    if not fresh:
        cursor = conn.execute(statements.has_xid)
        row = cursor.fetchone()
        has_id = row is not None and bool(row[0])
    if not has_id:
        conn.execute(statements.inline_enter)
    else:
        # Waiting for the lock with an id would let a holder wait for us (point 3).
        cursor = conn.execute(statements.inline_try_enter)
        row = cursor.fetchone()
        if row is None or not row[0]:
            raise ConcurrencyError(
                f"inline projections on {where}: this transaction wrote before its first append, and "
                "another append running inline projections is in progress; retry the transaction "
                "(or append before your other writes)"
            )
        cursor = conn.execute(statements.younger_events)
        row = cursor.fetchone()
        if row is not None and row[0]:
            raise ConcurrencyError(
                f"inline projections on {where}: this transaction wrote before its first append, and "
                "events of younger transactions have committed since; retry the transaction "
                "(or append before your other writes)"
            )
    _wait_for_older(conn, statements, timeout, where)


def _wait_for_older(conn: Conn, statements: sql.Statements, timeout: float, where: str) -> None:
    """Wait until no transaction older than this one is running (point 2).

    Polled, like a reader waiting for a held-back event: nothing notifies when a
    transaction ends, and it need not be chronik's.
    """
    deadline = time.monotonic() + timeout
    delay = 0.0005
    while True:
        cursor = conn.execute(statements.older_running)
        row = cursor.fetchone()
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
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


def own_events(conn: Conn, statements: sql.Statements, codec: Codec, after: int) -> list[RecordedEvent]:
    """The events this transaction wrote at positions after ``after``, in log order.

    A transaction's own positions only grow, so these are exactly what it appended
    since it last looked: what its hooks have not been given yet.
    """
    cursor = conn.execute(statements.own_events, (after,), binary=True)
    return [record(row, codec) for row in cursor.fetchall()]
