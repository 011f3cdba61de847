"""Inline projections: run inside each append's own transaction, never behind (sync).

GENERATED from ``_async_inline.py`` by ``tools/unasync.py``: do not edit; edit
the async module and run the script. The design, and the guarantee
inline projections get, are described there.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from chronik.errors import ConfigurationError
from chronik.events import Checkpoint, FailedEvent, ProjectionState, RecordedEvent
from chronik.projections._concurrency import AwaitableRefusedError, require_sync_store, settle
from chronik.projections._declare import Projection
from chronik.projections.errors import ProjectionFailedError
from chronik.store import AppendHooks, ProjectionStateStore

__all__ = ["InlineProjection", "add_inline_projection", "remove_inline_projection"]

C = TypeVar("C")
_PAGE = 500


class InlineProjection(Generic[C]):
    """A projection run as an append hook. Handlers get ``context``, or the append's
    transaction when ``context`` is None (SQL read models in the same database)."""

    def __init__(self, projection: Projection[C], context: C | None = None) -> None:
        self.projection = projection
        self.context = context

    @property
    def name(self) -> str:
        return self.projection.checkpoint_name

    def _context(self, tx: Any) -> C:
        context: C = tx if self.context is None else self.context
        return context

    def _handle(self, event: RecordedEvent, context: C) -> None:
        projection = self.projection
        if event.type not in projection.handlers:
            return
        if projection.categories is not None and event.category not in projection.categories:
            return
        try:
            result = projection.handle(event, context)
            if result is not None:
                settle(result, projection, f"the handler of {event.type!r}")
        except AwaitableRefusedError:
            raise
        except Exception as err:
            failure = FailedEvent.of(event, err, 1)
            raise ProjectionFailedError(
                projection.name,
                projection.version,
                stream_id=event.stream_id,
                version=event.version,
                type=event.type,
                position=event.position,
                error=failure.error,
                attempts=1,
            ) from err

    def _catch_up(
        self, tx: Any, context: C, after: Checkpoint | None, before: Checkpoint | None
    ) -> Checkpoint | None:
        """Handle the stored events after ``after`` (and before ``before``)."""
        projection = self.projection
        start = after
        while True:
            page = tx.read_page(start, _PAGE, projection.categories, projection.type_filter)
            if page.checkpoint is None or page.checkpoint == start:
                return after
            for event in page.events:
                if before is not None and event.checkpoint >= before:
                    return after
                self._handle(event, context)
                after = event.checkpoint
            if before is not None and page.checkpoint >= before:
                return after
            after = start = page.checkpoint

    def installed(self, tx: Any) -> None:
        context = self._context(tx)
        checkpoint = tx.load_checkpoint(self.name)
        states = tx if isinstance(tx, ProjectionStateStore) else None
        fresh = checkpoint is None and (
            states is None
            or not any(
                s.version == self.projection.version for s in states.projection_states(self.projection.name)
            )
        )
        if fresh and self.projection.setup is not None:
            settle(self.projection.setup(context), self.projection, "setup")
        reached = self._catch_up(tx, context, checkpoint, None)
        if reached is not None and reached != checkpoint:
            tx.save_checkpoint(self.name, reached)
        if states is not None:
            states.save_projection_state(_live(self.projection))

    def appended(self, tx: Any, events: Sequence[RecordedEvent]) -> None:
        context = self._context(tx)
        checkpoint = tx.load_checkpoint(self.name)
        first = events[0].checkpoint
        if checkpoint is None or checkpoint < first:
            self._catch_up(tx, context, checkpoint, first)
        for event in events:
            self._handle(event, context)
        tx.save_checkpoint(self.name, events[-1].checkpoint)


def _live(projection: Projection[Any]) -> ProjectionState:
    return ProjectionState(
        projection.name, projection.version, "live", active=True, updated_at=datetime.now(UTC)
    )


def add_inline_projection(
    store: object, projection: Projection[C], context: C | None = None
) -> InlineProjection[C]:
    """Run ``projection`` inside every append of ``store`` from now on (after catching up).

    ``context`` is what handlers write to; None gives them the append's transaction
    (``tx.execute(...)`` on SQL stores).
    """
    require_sync_store(store, "add_inline_projection")
    if not isinstance(store, AppendHooks):
        raise ConfigurationError(f"{store!r} cannot run inline projections (it has no append hooks)")
    hook = InlineProjection(projection, context)
    store.add_append_hook(hook)
    if isinstance(store, ProjectionStateStore) and not store.projection_states(projection.name):
        store.save_projection_state(_live(projection))
    return hook


def remove_inline_projection(store: object, projection: Projection[Any]) -> None:
    """Stop running ``projection`` inside appends (its read model and checkpoint stay)."""
    if not isinstance(store, AppendHooks):
        raise ConfigurationError(f"{store!r} has no append hooks")
    store.remove_append_hook(projection.checkpoint_name)
