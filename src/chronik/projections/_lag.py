"""How far a projection is behind, and which version serves queries (sync).

GENERATED from ``_async_lag.py`` by ``tools/unasync.py``: do not edit; edit
the async module and run the script.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from chronik.errors import ConfigurationError
from chronik.events import Checkpoint, RecordedEvent
from chronik.projections._common import Lag, checkpoint_name
from chronik.projections._concurrency import require_sync_store
from chronik.projections._declare import Projection
from chronik.projections._targets import ProjectionTarget, default_target
from chronik.store import EventStore, LogReader, ProjectionStateStore, Subscribable
from chronik.subscriptions import DEFAULT_BATCH_SIZE, Partition

__all__ = ["active_version", "exists", "lag", "projection_lag", "subscribable"]


def subscribable(store: object) -> Subscribable:
    if not isinstance(store, Subscribable):
        raise ConfigurationError(f"{store!r} cannot run projections: it does not support subscriptions")
    return store


def projection_lag(
    store: EventStore,
    projection: Projection[Any],
    target: ProjectionTarget[Any] | None = None,
    *,
    partition: Partition | None = None,
) -> Lag:
    """The lag of ``projection`` as its stored checkpoint says; works without a runner."""
    require_sync_store(store, "projection_lag")
    target = target if target is not None else default_target(store)
    checkpoint = target.load_checkpoint(checkpoint_name(projection, partition))
    reader = subscribable(store).log_reader()
    try:
        return lag(reader, store, projection, checkpoint, partition)
    finally:
        reader.close()


def lag(
    reader: LogReader,
    store: EventStore,
    projection: Projection[Any],
    checkpoint: Checkpoint | None,
    partition: Partition | None,
) -> Lag:
    head = store.head()
    cats, kinds = projection.categories, projection.type_filter
    oldest: RecordedEvent | None = None
    if partition is None:
        events = reader.count_events(checkpoint, cats, kinds)
        after = checkpoint
        while events and oldest is None:
            page = reader.read_page(after, DEFAULT_BATCH_SIZE, cats, kinds)
            oldest = page.events[0] if page.events else None
            if page.checkpoint == after:
                break
            after = page.checkpoint
    else:
        events, after = 0, checkpoint
        while True:
            page = reader.read_page(after, DEFAULT_BATCH_SIZE, cats, kinds)
            owned = [e for e in page.events if partition.owns(e.stream_id)]
            events += len(owned)
            if oldest is None and owned:
                oldest = owned[0]
            if page.checkpoint == after:
                break
            after = page.checkpoint
    seconds = 0.0
    if oldest is not None:
        seconds = max(0.0, (datetime.now(UTC) - oldest.recorded_at).total_seconds())
    return Lag(events, seconds, checkpoint, head)


def exists(reader: LogReader, type_name: str) -> bool:
    """Whether any event of ``type_name`` is stored."""
    after: Checkpoint | None = None
    while True:
        page = reader.read_page(after, 5000, None, (type_name,))
        if page.events:
            return True
        if page.checkpoint == after:
            return False
        after = page.checkpoint


def active_version(store: EventStore, name: str) -> int | None:
    """The version of projection ``name`` that serves queries, if any."""
    require_sync_store(store, "active_version")
    if not isinstance(store, ProjectionStateStore):
        raise ConfigurationError(f"{store!r} does not record projection state")
    return next((s.version for s in store.projection_states(name) if s.active), None)
