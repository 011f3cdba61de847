"""Checkpoints, snapshots, projection state, dead letters and runners' heartbeats in a
SQLite file, on a given connection.

The store calls these in a write transaction of its own; a ``SQLiteTransaction``
calls them in the caller's, so a projection parks an event in the same commit as
the checkpoint that moves past it.
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Final

import msgspec

from chronik.backend import (
    heartbeat_order,
    position_after,
    validate_checkpoint_name,
    validate_dead_letter,
    validate_dead_letter_key,
    validate_heartbeat,
    validate_projection,
    validate_projection_state,
    validate_runner_id,
)
from chronik.events import Checkpoint, DeadLetter, FailedEvent, ProjectionState, RunnerHeartbeat, Snapshot
from chronik.stores.sqlite import sql

__all__ = [
    "check_checkpoint",
    "dead_letters",
    "delete_checkpoint",
    "delete_dead_letter",
    "delete_heartbeat",
    "delete_projection_state",
    "heartbeats",
    "load_checkpoint",
    "load_snapshot",
    "park_event",
    "projection_states",
    "save_checkpoint",
    "save_heartbeat",
    "save_projection_state",
    "save_snapshot",
]

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_failure_decoder: Final = msgspec.json.Decoder(FailedEvent)
_heartbeat_decoder: Final = msgspec.json.Decoder(RunnerHeartbeat)


def _us(when: datetime | None) -> int:
    if when is None:
        return time.time_ns() // 1000
    return (when - _EPOCH) // timedelta(microseconds=1)


def save_projection_state(conn: sqlite3.Connection, state: ProjectionState) -> None:
    validate_projection_state(state)
    failure = None if state.failure is None else msgspec.json.encode(state.failure).decode()
    conn.execute(
        sql.SAVE_PROJECTION_STATE,
        (state.name, state.version, state.status, int(state.active), failure, _us(state.updated_at)),
    )


def projection_states(conn: sqlite3.Connection, name: str | None) -> list[ProjectionState]:
    return [
        ProjectionState(
            row[0],
            row[1],
            row[2],
            bool(row[3]),
            None if row[4] is None else _failure_decoder.decode(row[4]),
            _EPOCH + timedelta(microseconds=row[5]),
        )
        for row in conn.execute(sql.PROJECTION_STATES, (name,))
    ]


def delete_projection_state(conn: sqlite3.Connection, name: str, version: int) -> None:
    validate_projection(name, version)
    conn.execute(sql.DELETE_PROJECTION_STATE, (name, version))
    conn.execute(sql.DELETE_DEAD_LETTERS, (name, version))


def delete_dead_letter(conn: sqlite3.Connection, projection: str, version: int, position: int) -> None:
    validate_dead_letter_key(projection, version, position)
    conn.execute(sql.DELETE_DEAD_LETTER, (projection, version, position))


def park_event(conn: sqlite3.Connection, letter: DeadLetter) -> None:
    validate_dead_letter(letter, sql.KIND)
    e = letter.event
    conn.execute(
        sql.PARK_EVENT,
        (
            letter.projection,
            letter.projection_version,
            e.position,
            e.stream_id,
            e.version,
            e.type,
            e.event_id.bytes,
            str(e.checkpoint),
            e.error,
            e.attempts,
            _us(letter.parked_at),
        ),
    )


def dead_letters(conn: sqlite3.Connection, projection: str | None) -> list[DeadLetter]:
    return [
        DeadLetter(
            row[0],
            row[1],
            FailedEvent(
                row[3],
                row[4],
                row[2],
                Checkpoint.parse(row[7]),
                uuid.UUID(bytes=row[6]),
                row[5],
                row[8],
                row[9],
            ),
            _EPOCH + timedelta(microseconds=row[10]),
        )
        for row in conn.execute(sql.DEAD_LETTERS, (projection,))
    ]


def save_heartbeat(conn: sqlite3.Connection, heartbeat: RunnerHeartbeat) -> None:
    validate_heartbeat(heartbeat)
    record = msgspec.json.encode(heartbeat).decode()
    conn.execute(
        sql.SAVE_HEARTBEAT,
        (heartbeat.runner_id, heartbeat.name, heartbeat.version, _us(heartbeat.heard_at), record),
    )


def heartbeats(conn: sqlite3.Connection, name: str | None) -> list[RunnerHeartbeat]:
    found = [_heartbeat_decoder.decode(row[0]) for row in conn.execute(sql.HEARTBEATS, (name,))]
    return sorted(found, key=heartbeat_order)


def delete_heartbeat(conn: sqlite3.Connection, runner_id: str) -> None:
    validate_runner_id(runner_id)
    conn.execute(sql.DELETE_HEARTBEAT, (runner_id,))


def delete_checkpoint(conn: sqlite3.Connection, name: str) -> None:
    validate_checkpoint_name(name)
    conn.execute(sql.DELETE_CHECKPOINT, (name,))


def check_checkpoint(name: str, checkpoint: Checkpoint) -> None:
    """Refuse a bad checkpoint name, or a checkpoint of another kind of store."""
    validate_checkpoint_name(name)
    position_after(checkpoint, sql.KIND)


def save_checkpoint(conn: sqlite3.Connection, name: str, checkpoint: Checkpoint) -> None:
    """Store a checkpoint (checked by :func:`check_checkpoint` first)."""
    conn.execute(sql.SAVE_CHECKPOINT, (name, str(checkpoint), _us(None)))


def load_checkpoint(conn: sqlite3.Connection, name: str) -> Checkpoint | None:
    validate_checkpoint_name(name)
    row = conn.execute(sql.LOAD_CHECKPOINT, (name,)).fetchone()
    return None if row is None else Checkpoint.parse(row[0])


def save_snapshot(conn: sqlite3.Connection, snapshot: Snapshot) -> None:
    recorded = snapshot.recorded_at or datetime.now(UTC)
    conn.execute(
        sql.SAVE_SNAPSHOT,
        (
            snapshot.stream_id,
            snapshot.version,
            snapshot.type,
            snapshot.schema_version,
            bytes(snapshot.data),
            _us(recorded),
        ),
    )


def load_snapshot(conn: sqlite3.Connection, stream_id: str) -> Snapshot | None:
    row = conn.execute(sql.LOAD_SNAPSHOT, (stream_id,)).fetchone()
    if row is None:
        return None
    return Snapshot(stream_id, row[0], row[1], row[2], bytes(row[3]), _EPOCH + timedelta(microseconds=row[4]))
