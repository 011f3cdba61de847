"""What the store records about projections: their state and their dead letters (no I/O).

These values cross the store boundary (``chronik.store.ProjectionStateStore``), so
every backend stores and returns them alike.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

import msgspec

from chronik.events import Checkpoint, RecordedEvent

__all__ = ["DeadLetter", "FailedEvent", "ProjectionState", "ProjectionStatus"]

ProjectionStatus = Literal["building", "live", "failed", "retired"]
"""``building``: catching up (from the start, or after a failure); ``live``: caught up,
following; ``failed``: stopped on an event its handler could not take; ``retired``:
replaced by a newer version (blue/green)."""


class FailedEvent(msgspec.Struct, frozen=True):
    """An event a handler could not take, and why."""

    stream_id: str
    version: int
    position: int
    checkpoint: Checkpoint
    event_id: uuid.UUID
    type: str
    error: str
    attempts: int

    @classmethod
    def of(cls, event: RecordedEvent, error: BaseException, attempts: int) -> FailedEvent:
        return cls(
            event.stream_id,
            event.version,
            event.position,
            event.checkpoint,
            event.event_id,
            event.type,
            f"{type(error).__name__}: {error}",
            attempts,
        )

    def describe(self) -> str:
        return (
            f"stream {self.stream_id!r} version {self.version} (type {self.type!r}, "
            f"position {self.position}): {self.error}"
        )


class ProjectionState(msgspec.Struct, frozen=True):
    """One version of one projection: its status, whether it serves queries, its failure."""

    name: str
    version: int
    status: ProjectionStatus
    active: bool = False
    failure: FailedEvent | None = None
    updated_at: datetime | None = None


class DeadLetter(msgspec.Struct, frozen=True):
    """An event parked by a projection whose failure policy is ``park``."""

    projection: str
    projection_version: int
    event: FailedEvent
    parked_at: datetime | None = None
