"""Projections: read models built from the event log, with exact checkpoints.

A projection is a value (:class:`Projection`): a name, a version, handlers by event
type, and optional setup and teardown of its read model. A
:class:`ProjectionRunner` (on an asyncio store :class:`AsyncProjectionRunner`,
whose handlers may be coroutine functions) feeds it from a subscription, history
first, then live, and stores its checkpoint in the same unit as the handlers'
writes when the read model lives in the event store's database (exactly-once
effect), or after them elsewhere (at-least-once; handlers idempotent by
``event.position``). A read model in SQLAlchemy Core tables (:class:`SQLAlchemyTarget`)
commits with its checkpoint on SQLite, PostgreSQL or any database SQLAlchemy
supports. Inline projections run inside the append's own transaction.
See ``docs/projections.md``.
"""

from chronik.events import (
    DeadLetter,
    FailedEvent,
    ProjectionState,
    ProjectionStatus,
    Recovery,
    Retrying,
    RunnerHeartbeat,
)
from chronik.projections._async_inline import AsyncInlineProjection, add_inline_projection_async
from chronik.projections._async_lag import active_version_async, projection_lag_async
from chronik.projections._async_runner import AsyncProjectionRunner, blue_green_async
from chronik.projections._async_sqlalchemy import AsyncSQLAlchemyConnection, AsyncSQLAlchemyTarget
from chronik.projections._async_targets import (
    AsyncCheckpointedTarget,
    AsyncProjectionTarget,
    AsyncTransactionalTarget,
    AsyncUnit,
)
from chronik.projections._common import FailurePolicy, Lag, RunnerState, RunnerStatus, checkpoint_name
from chronik.projections._declare import EventHandlers, Handler, Hook, Projection, Projections
from chronik.projections._inline import InlineProjection, add_inline_projection, remove_inline_projection
from chronik.projections._lag import active_version, projection_lag
from chronik.projections._runner import ProjectionRunner, blue_green
from chronik.projections._sqlalchemy import SQLAlchemyTarget
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
    "AsyncCheckpointedTarget",
    "AsyncInlineProjection",
    "AsyncProjectionRunner",
    "AsyncProjectionTarget",
    "AsyncSQLAlchemyConnection",
    "AsyncSQLAlchemyTarget",
    "AsyncTransactionalTarget",
    "AsyncUnit",
    "CheckpointedTarget",
    "DeadLetter",
    "DuplicateProjectionError",
    "EventHandlers",
    "FailedEvent",
    "FailurePolicy",
    "Handler",
    "Hook",
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
    "Recovery",
    "Retrying",
    "RunnerHeartbeat",
    "RunnerState",
    "RunnerStatus",
    "SQLAlchemyTarget",
    "TransactionalTarget",
    "Unit",
    "active_version",
    "active_version_async",
    "add_inline_projection",
    "add_inline_projection_async",
    "blue_green",
    "blue_green_async",
    "checkpoint_name",
    "projection_lag",
    "projection_lag_async",
    "remove_inline_projection",
]
