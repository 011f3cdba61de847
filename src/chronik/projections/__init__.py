"""Projections: read models built from the event log, with exact checkpoints.

A projection is a value (:class:`Projection`): a name, a version, handlers by event
type, and optional setup and teardown of its read model. A
:class:`ProjectionRunner` feeds it from a subscription, history first, then live,
and stores its checkpoint in the same unit as the handlers' writes when the read
model lives in the event store's database (exactly-once effect), or after them
elsewhere (at-least-once; handlers idempotent by ``event.position``). Inline
projections run inside the append's own transaction. See ``docs/projections.md``.
"""

from chronik.events import DeadLetter, FailedEvent, ProjectionState, ProjectionStatus
from chronik.projections._declare import Handler, Projection, Projections
from chronik.projections._inline import InlineProjection, add_inline_projection, remove_inline_projection
from chronik.projections._runner import (
    FailurePolicy,
    Lag,
    ProjectionRunner,
    active_version,
    blue_green,
    checkpoint_name,
    projection_lag,
)
from chronik.projections._targets import CheckpointedTarget, ProjectionTarget, TransactionalTarget, Unit
from chronik.projections.errors import (
    DuplicateProjectionError,
    ProjectionConflictError,
    ProjectionError,
    ProjectionFailedError,
    ProjectionVersionError,
    ProjectionWarning,
)

__all__ = [
    "CheckpointedTarget",
    "DeadLetter",
    "DuplicateProjectionError",
    "FailedEvent",
    "FailurePolicy",
    "Handler",
    "InlineProjection",
    "Lag",
    "Projection",
    "ProjectionConflictError",
    "ProjectionError",
    "ProjectionFailedError",
    "ProjectionRunner",
    "ProjectionState",
    "ProjectionStatus",
    "ProjectionTarget",
    "ProjectionVersionError",
    "ProjectionWarning",
    "Projections",
    "TransactionalTarget",
    "Unit",
    "active_version",
    "add_inline_projection",
    "blue_green",
    "checkpoint_name",
    "projection_lag",
    "remove_inline_projection",
]
