"""Projection states, dead letters and heartbeats as statement parameters and back, with no I/O."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC
from typing import Any, Final

import msgspec

from chronik.backend import (
    heartbeat_order,
    validate_dead_letter,
    validate_heartbeat,
    validate_projection_state,
)
from chronik.events import Checkpoint, DeadLetter, FailedEvent, ProjectionState, RunnerHeartbeat
from chronik.stores.postgres._common import KIND, checkpoint_start

__all__ = ["heartbeat_params", "heartbeats_of", "letter_of", "letter_params", "state_of", "state_params"]

_failure_decoder: Final = msgspec.json.Decoder(FailedEvent)
_heartbeat_decoder: Final = msgspec.json.Decoder(RunnerHeartbeat)


def state_params(state: ProjectionState) -> tuple[Any, ...]:
    """Parameters of ``sql._SAVE_PROJECTION_STATE``."""
    validate_projection_state(state)
    failure = None if state.failure is None else msgspec.json.encode(state.failure).decode()
    return (state.name, state.version, state.status, bool(state.active), failure, state.updated_at)


def state_of(row: Sequence[Any]) -> ProjectionState:
    """A row of ``sql._PROJECTION_STATES`` as a :class:`ProjectionState`."""
    return ProjectionState(
        row[0],
        row[1],
        row[2],
        row[3],
        None if row[4] is None else _failure_decoder.decode(row[4]),
        row[5].astimezone(UTC),
    )


def letter_params(letter: DeadLetter) -> tuple[Any, ...]:
    """Parameters of ``sql._PARK_EVENT``; the event must be one of this kind of store."""
    validate_dead_letter(letter, KIND)
    e = letter.event
    xid, _ = checkpoint_start(e.checkpoint)
    return (
        letter.projection,
        letter.projection_version,
        e.position,
        xid,
        e.stream_id,
        e.version,
        e.type,
        e.event_id,
        e.error,
        e.attempts,
        letter.parked_at,
    )


def letter_of(row: Sequence[Any]) -> DeadLetter:
    """A row of ``sql._DEAD_LETTERS`` as a :class:`DeadLetter`."""
    event = FailedEvent(
        row[4], row[5], row[2], Checkpoint(KIND, (row[3], row[2])), row[7], row[6], row[8], row[9]
    )
    return DeadLetter(row[0], row[1], event, row[10].astimezone(UTC))


def heartbeat_params(heartbeat: RunnerHeartbeat) -> tuple[Any, ...]:
    """Parameters of ``sql._SAVE_HEARTBEAT``."""
    validate_heartbeat(heartbeat)
    record = msgspec.json.encode(heartbeat).decode()
    return (heartbeat.runner_id, heartbeat.name, heartbeat.version, heartbeat.heard_at, record)


def heartbeats_of(rows: Sequence[Sequence[Any]]) -> list[RunnerHeartbeat]:
    """Rows of ``sql._HEARTBEATS``, in the order every store gives them."""
    return sorted((_heartbeat_decoder.decode(row[0]) for row in rows), key=heartbeat_order)
