"""How far a projection is behind, and which version serves queries (asyncio).

The sync module ``_lag.py`` is generated from this one (``tools/unasync.py``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from chronik.errors import ConfigurationError
from chronik.events import Checkpoint, RecordedEvent
from chronik.projections._async_targets import AsyncProjectionTarget, default_target
from chronik.projections._common import Lag, checkpoint_name
from chronik.projections._concurrency import require_async_store
from chronik.projections._declare import Projection
from chronik.store import AsyncEventStore, AsyncLogReader, AsyncProjectionStateStore, AsyncSubscribable
from chronik.subscriptions import DEFAULT_BATCH_SIZE, Partition

__all__ = ["active_version_async", "exists", "lag", "projection_lag_async", "subscribable"]


def subscribable(store: object) -> AsyncSubscribable:
    if not isinstance(store, AsyncSubscribable):
        raise ConfigurationError(f"{store!r} cannot run projections: it does not support subscriptions")
    return store


async def projection_lag_async(
    store: AsyncEventStore,
    projection: Projection[Any],
    target: AsyncProjectionTarget[Any] | None = None,
    *,
    partition: Partition | None = None,
) -> Lag:
    """The lag of ``projection`` as its stored checkpoint says; works without a runner."""
    require_async_store(store, "projection_lag_async")
    target = target if target is not None else default_target(store)
    checkpoint = await target.load_checkpoint(checkpoint_name(projection, partition))
    reader = subscribable(store).log_reader()
    try:
        return await lag(reader, store, projection, checkpoint, partition)
    finally:
        await reader.close()


async def lag(
    reader: AsyncLogReader,
    store: AsyncEventStore,
    projection: Projection[Any],
    checkpoint: Checkpoint | None,
    partition: Partition | None,
) -> Lag:
    head = await store.head()
    cats, kinds = projection.categories, projection.type_filter
    oldest: RecordedEvent | None = None
    if partition is None:
        events = await reader.count_events(checkpoint, cats, kinds)
        after = checkpoint
        while events and oldest is None:
            page = await reader.read_page(after, DEFAULT_BATCH_SIZE, cats, kinds)
            oldest = page.events[0] if page.events else None
            if page.checkpoint == after:
                break
            after = page.checkpoint
    else:
        events, after = 0, checkpoint
        while True:
            page = await reader.read_page(after, DEFAULT_BATCH_SIZE, cats, kinds)
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


async def exists(reader: AsyncLogReader, type_name: str) -> bool:
    """Whether any event of ``type_name`` is stored."""
    after: Checkpoint | None = None
    while True:
        page = await reader.read_page(after, 5000, None, (type_name,))
        if page.events:
            return True
        if page.checkpoint == after:
            return False
        after = page.checkpoint


async def active_version_async(store: AsyncEventStore, name: str) -> int | None:
    """The version of projection ``name`` that serves queries, if any."""
    require_async_store(store, "active_version_async")
    if not isinstance(store, AsyncProjectionStateStore):
        raise ConfigurationError(f"{store!r} does not record projection state")
    return next((s.version for s in await store.projection_states(name) if s.active), None)
