"""Projection states and dead letters as statement parameters and back, with no I/O."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC
from typing import Any, Final

import msgspec

from chronik.errors import InvalidInputError
from chronik.events import Checkpoint, DeadLetter, FailedEvent, ProjectionState
from chronik.stores.postgres._common import KIND, checkpoint_start

__all__ = ["check_projection", "letter_of", "letter_params", "state_of", "state_params"]

_STATUSES: Final = frozenset({"building", "live", "failed", "retired"})
_failure_decoder: Final = msgspec.json.Decoder(FailedEvent)


def check_projection(name: object, version: object) -> None:
    """Refuse a projection name or version that no projection can have."""
    if not isinstance(name, str) or not name:
        raise InvalidInputError(f"projection name must be a non-empty str, got {name!r}")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise InvalidInputError(f"projection version must be an int >= 1, got {version!r}")


def state_params(state: ProjectionState) -> tuple[Any, ...]:
    """Parameters of ``sql._SAVE_PROJECTION_STATE``."""
    check_projection(state.name, state.version)
    if state.status not in _STATUSES:
        raise InvalidInputError(f"projection status must be one of {sorted(_STATUSES)}, got {state.status!r}")
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
    check_projection(letter.projection, letter.projection_version)
    e = letter.event
    xid, position = checkpoint_start(e.checkpoint)
    if position != e.position:
        raise InvalidInputError(
            f"dead letter of position {e.position} carries the checkpoint {e.checkpoint} of another event"
        )
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
