"""The in-memory store: small and obviously correct, the reference for every other.

Everything happens under one lock, so positions follow commit order trivially.
Subscriptions wait on a condition of that lock, notified after every commit; inline
projections (append hooks) run under it, before the append changes anything.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, Final, NamedTuple
from urllib.parse import urlsplit

import msgspec

from chronik._append import (
    ExistingEvent,
    PreparedWrite,
    expected_ok,
    normalize_filter,
    position_after,
    prepare_write,
    prepare_writes,
    resolve_existing,
    validate_checkpoint_name,
    validate_limit,
    validate_read_stream,
)
from chronik._options import parse_options
from chronik.aio import AsyncStoreAdapter
from chronik.backend import Backend
from chronik.codec import DEFAULT_MAX_EVENT_SIZE, Codec, EncodedEvent, EventRegistry
from chronik.errors import (
    ConfigurationError,
    InvalidInputError,
    StoreClosedError,
    WrongExpectedVersionError,
)
from chronik.events import (
    ANY,
    AppendResult,
    Checkpoint,
    DeadLetter,
    ExpectedVersion,
    ProjectionState,
    RecordedEvent,
    Snapshot,
    StreamInfo,
    StreamWrite,
    validate_stream_id,
)
from chronik.store import AppendHook, LogPage
from chronik.subscriptions import Subscribes

__all__ = ["MemoryEventStore", "backend", "open_async_store", "open_store"]

KIND = "memory"
PAGE_SIZE = 1000


class _Row(NamedTuple):
    stream_id: str
    category: str
    version: int
    position: int
    event: EncodedEvent
    recorded_at: datetime


class MemoryEventStore(Subscribes):
    """An event store held in this process's memory; gone when the process ends."""

    is_async: Final = False

    def __init__(
        self, registry: EventRegistry | None = None, *, max_event_size: int = DEFAULT_MAX_EVENT_SIZE
    ) -> None:
        self.codec = Codec(registry, max_event_size=max_event_size)
        self._lock = threading.Lock()
        # Notified after every commit; subscriptions wait on it.
        self.changed = threading.Condition(self._lock)
        self._log: list[_Row] = []
        self._streams: dict[str, list[int]] = {}
        self._ids: dict[uuid.UUID, ExistingEvent] = {}
        self._snapshots: dict[str, Snapshot] = {}
        self._checkpoints: dict[str, Checkpoint] = {}
        self._hooks: dict[str, AppendHook] = {}
        self._projections: dict[tuple[str, int], ProjectionState] = {}
        self._dead_letters: dict[tuple[str, int, int], DeadLetter] = {}
        self._closed = False

    # -- writing ---------------------------------------------------------------

    def append(
        self, stream_id: str, events: Sequence[object], expected_version: ExpectedVersion = ANY
    ) -> AppendResult:
        prepared = prepare_write(self.codec, stream_id, events, expected_version)
        return self._commit([prepared])[0]

    def append_many(self, writes: Sequence[StreamWrite]) -> list[AppendResult]:
        return self._commit(prepare_writes(self.codec, writes))

    def _commit(self, writes: list[PreparedWrite]) -> list[AppendResult]:
        with self._lock:
            self._check_open()
            results: list[AppendResult | None] = []
            plan: list[PreparedWrite] = []
            for write in writes:
                existing = {
                    e.event_id: self._ids[e.event_id] for e in write.events if e.event_id in self._ids
                }
                if existing:
                    results.append(resolve_existing(write, existing, _checkpoint))
                    continue
                actual = len(self._streams.get(write.stream_id, ()))
                if not expected_ok(write, actual):
                    raise WrongExpectedVersionError(write.stream_id, write.expected, actual)
                results.append(None)
                plan.append(write)
            # Every check passed, and the rows are planned before anything changes, so
            # a failure above or in an append hook leaves the store exactly as it was.
            now = datetime.now(UTC)
            rows: list[_Row] = []
            last: dict[str, tuple[int, int]] = {}
            for write in plan:
                version = len(self._streams.get(write.stream_id, ()))
                for event in write.events:
                    version += 1
                    position = len(self._log) + len(rows) + 1
                    rows.append(_Row(write.stream_id, write.category, version, position, event, now))
                last[write.stream_id] = (version, position)
            staged: dict[str, Checkpoint] = {}
            if rows and self._hooks:
                tx = _HookTransaction(self, staged)
                recorded = [self._record(r) for r in rows]
                for hook in self._hooks.values():
                    hook.appended(tx, recorded)
            for row in rows:
                self._log.append(row)
                self._streams.setdefault(row.stream_id, []).append(row.position)
                self._ids[row.event.event_id] = ExistingEvent(row.stream_id, row.version, row.position)
            self._checkpoints.update(staged)
            out: list[AppendResult] = []
            planned = iter(plan)
            for result in results:
                if result is None:
                    stream_id = next(planned).stream_id
                    version, position = last[stream_id]
                    result = AppendResult(stream_id, version, position, _checkpoint_at(position))
                out.append(result)
            if plan:
                self.changed.notify_all()
            return out

    # -- reading ---------------------------------------------------------------

    def _record(self, row: _Row) -> RecordedEvent:
        e = row.event
        return RecordedEvent(
            row.stream_id,
            row.version,
            row.position,
            _checkpoint_at(row.position),
            e.event_id,
            e.type,
            e.schema_version,
            e.data,
            e.metadata,
            row.recorded_at,
            self.codec,
        )

    def read_stream(
        self,
        stream_id: str,
        from_version: int = 1,
        to_version: int | None = None,
        *,
        backwards: bool = False,
        limit: int | None = None,
    ) -> list[RecordedEvent]:
        stream_id, from_version, to_version, limit = validate_read_stream(
            stream_id, from_version, to_version, limit
        )
        with self._lock:
            self._check_open()
            positions = self._streams.get(stream_id, [])
            lo = max(from_version, 1) - 1
            hi = len(positions) if to_version is None else min(to_version, len(positions))
            rows = [self._log[p - 1] for p in positions[lo:hi]]
        if backwards:
            rows.reverse()
        if limit is not None:
            rows = rows[:limit]
        return [self._record(r) for r in rows]

    def read_all(
        self,
        after: Checkpoint | None = None,
        *,
        categories: Iterable[str] | None = None,
        types: Iterable[str] | None = None,
        limit: int | None = None,
    ) -> Iterator[RecordedEvent]:
        start = self._position_after(after)
        cats = normalize_filter(categories, "categories")
        kinds = normalize_filter(types, "types")
        limit = validate_limit(limit)
        return self._iter_all(start, cats, kinds, limit)

    def _iter_all(
        self, start: int, cats: tuple[str, ...] | None, kinds: tuple[str, ...] | None, limit: int | None
    ) -> Iterator[RecordedEvent]:
        remaining = limit
        position = start
        while remaining is None or remaining > 0:
            with self._lock:
                self._check_open()
                page = self._page(position, PAGE_SIZE, cats, kinds, None)
            if page.checkpoint is None:  # nothing after ``position``
                return
            position = page.checkpoint.parts[0]
            events = page.events if remaining is None else page.events[:remaining]
            yield from events
            if remaining is not None:
                remaining -= len(events)

    def _position_after(self, after: Checkpoint | None) -> int:
        """The position a ``read_all(after=...)`` starts after; checks the checkpoint."""
        return position_after(after, KIND)

    def stream_info(self, stream_id: str) -> StreamInfo:
        stream_id = validate_stream_id(stream_id)
        with self._lock:
            self._check_open()
            return StreamInfo(stream_id, len(self._streams.get(stream_id, ())))

    def list_streams(
        self, *, category: str | None = None, after: str | None = None, limit: int = 100
    ) -> list[StreamInfo]:
        checked = validate_limit(limit)
        if checked is None:
            raise InvalidInputError("limit must be an int >= 0")
        with self._lock:
            self._check_open()
            ids = sorted(
                s
                for s in self._streams
                if (category is None or s.partition("-")[0] == category) and (after is None or s > after)
            )[:checked]
            return [StreamInfo(s, len(self._streams[s])) for s in ids]

    def head(self) -> Checkpoint | None:
        with self._lock:
            self._check_open()
            return _checkpoint_at(len(self._log)) if self._log else None

    # -- subscriptions -----------------------------------------------------------

    def log_reader(self) -> _MemoryLogReader:
        """A reader for subscriptions (``chronik.store.LogReader``)."""
        with self._lock:
            self._check_open()
        return _MemoryLogReader(self)

    def _page(
        self,
        position: int,
        size: int,
        cats: tuple[str, ...] | None,
        kinds: tuple[str, ...] | None,
        after: Checkpoint | None,
    ) -> LogPage:
        """One page after ``position``; the caller holds the lock."""
        chunk = self._log[position : position + size]
        events = [
            self._record(row)
            for row in chunk
            if (cats is None or row.category in cats) and (kinds is None or row.event.type in kinds)
        ]
        return LogPage(events, _checkpoint_at(chunk[-1].position) if chunk else after)

    # -- append hooks (inline projections) ---------------------------------------

    def add_append_hook(self, hook: AppendHook) -> None:
        """Run ``hook`` inside every append; ``hook.installed`` runs first, under the lock."""
        with self._lock:
            self._check_open()
            if hook.name in self._hooks:
                raise InvalidInputError(f"an append hook named {hook.name!r} is already installed")
            staged: dict[str, Checkpoint] = {}
            hook.installed(_HookTransaction(self, staged))
            self._checkpoints.update(staged)
            self._hooks[hook.name] = hook

    def remove_append_hook(self, name: str) -> None:
        with self._lock:
            self._hooks.pop(name, None)

    # -- projection state ----------------------------------------------------------

    def save_projection_state(self, state: ProjectionState) -> None:
        with self._lock:
            self._check_open()
            if state.updated_at is None:
                state = msgspec.structs.replace(state, updated_at=datetime.now(UTC))
            self._projections[state.name, state.version] = state

    def projection_states(self, name: str | None = None) -> list[ProjectionState]:
        with self._lock:
            self._check_open()
            return [s for key, s in sorted(self._projections.items()) if name is None or key[0] == name]

    def delete_projection_state(self, name: str, version: int) -> None:
        with self._lock:
            self._check_open()
            self._projections.pop((name, version), None)
            for key in [k for k in self._dead_letters if k[:2] == (name, version)]:
                del self._dead_letters[key]

    def park_event(self, letter: DeadLetter) -> None:
        with self._lock:
            self._check_open()
            key = (letter.projection, letter.projection_version, letter.event.position)
            if key not in self._dead_letters:
                if letter.parked_at is None:
                    letter = msgspec.structs.replace(letter, parked_at=datetime.now(UTC))
                self._dead_letters[key] = letter

    def dead_letters(self, projection: str | None = None) -> list[DeadLetter]:
        with self._lock:
            self._check_open()
            return [
                d for d in self._dead_letters.values() if projection is None or d.projection == projection
            ]

    # -- snapshots and checkpoints --------------------------------------------

    def save_snapshot(self, snapshot: Snapshot) -> None:
        validate_stream_id(snapshot.stream_id)
        with self._lock:
            self._check_open()
            if snapshot.recorded_at is None:
                snapshot = Snapshot(
                    snapshot.stream_id,
                    snapshot.version,
                    snapshot.type,
                    snapshot.schema_version,
                    snapshot.data,
                    datetime.now(UTC),
                )
            self._snapshots[snapshot.stream_id] = snapshot

    def load_snapshot(self, stream_id: str) -> Snapshot | None:
        validate_stream_id(stream_id)
        with self._lock:
            self._check_open()
            return self._snapshots.get(stream_id)

    def save_checkpoint(self, name: str, checkpoint: Checkpoint) -> None:
        validate_checkpoint_name(name)
        self._position_after(checkpoint)
        with self._lock:
            self._check_open()
            self._checkpoints[name] = checkpoint

    def load_checkpoint(self, name: str) -> Checkpoint | None:
        validate_checkpoint_name(name)
        with self._lock:
            self._check_open()
            return self._checkpoints.get(name)

    def delete_checkpoint(self, name: str) -> None:
        validate_checkpoint_name(name)
        with self._lock:
            self._check_open()
            self._checkpoints.pop(name, None)

    # -- lifecycle -------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosedError("the memory store is closed")

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self.changed.notify_all()

    def __enter__(self) -> MemoryEventStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _checkpoint_at(position: int) -> Checkpoint:
    return Checkpoint(KIND, (position,))


class _MemoryLogReader:
    """Subscription hooks: pages of the log, and a wait on the store's condition."""

    def __init__(self, store: MemoryEventStore) -> None:
        self._store = store
        self._closed = False

    def read_page(
        self,
        after: Checkpoint | None,
        size: int,
        categories: tuple[str, ...] | None,
        types: tuple[str, ...] | None,
    ) -> LogPage:
        store = self._store
        position = store._position_after(after)
        with store._lock:
            store._check_open()
            if self._closed:
                return LogPage([], after)
            return store._page(position, size, categories, types, after)

    def wait_for_events(self, after: Checkpoint | None, timeout: float) -> bool:
        store = self._store
        position = store._position_after(after)
        deadline = time.monotonic() + timeout
        with store.changed:
            # The check and the wait happen under the lock that every commit takes, so
            # a commit cannot slip in between them unseen.
            while True:
                store._check_open()
                if self._closed:
                    return False
                if len(store._log) > position:
                    return True
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                store.changed.wait(remaining)

    def count_events(
        self,
        after: Checkpoint | None,
        categories: tuple[str, ...] | None,
        types: tuple[str, ...] | None,
    ) -> int:
        store = self._store
        position = store._position_after(after)
        with store._lock:
            store._check_open()
            return sum(
                1
                for row in store._log[position:]
                if (categories is None or row.category in categories)
                and (types is None or row.event.type in types)
            )

    def close(self) -> None:
        with self._store.changed:
            self._closed = True
            self._store.changed.notify_all()


class _HookTransaction:
    """What an append hook sees of the memory store while the store's lock is held.

    Checkpoints it saves are staged and kept only if the whole append succeeds.
    """

    def __init__(self, store: MemoryEventStore, staged: dict[str, Checkpoint]) -> None:
        self._store = store
        self._staged = staged

    def read_page(
        self,
        after: Checkpoint | None,
        size: int,
        categories: tuple[str, ...] | None,
        types: tuple[str, ...] | None,
    ) -> LogPage:
        position = self._store._position_after(after)
        return self._store._page(position, size, categories, types, after)

    def save_checkpoint(self, name: str, checkpoint: Checkpoint) -> None:
        validate_checkpoint_name(name)
        self._store._position_after(checkpoint)
        self._staged[name] = checkpoint

    def load_checkpoint(self, name: str) -> Checkpoint | None:
        validate_checkpoint_name(name)
        if name in self._staged:
            return self._staged[name]
        return self._store._checkpoints.get(name)


def _checkpoint(where: ExistingEvent) -> Checkpoint:
    return _checkpoint_at(where.position)


def open_store(url: str, registry: EventRegistry | None, options: dict[str, Any]) -> MemoryEventStore:
    """``memory://``: a new, empty store (each call its own)."""
    if urlsplit(url).netloc or urlsplit(url).path not in ("", "/"):
        raise ConfigurationError(f"memory store URL takes no host or path: {url!r} (use memory://)")
    opts = parse_options(url, options, {"max_event_size": int})
    return MemoryEventStore(registry, **opts)


def open_async_store(
    url: str, registry: EventRegistry | None, options: dict[str, Any]
) -> AsyncStoreAdapter[MemoryEventStore]:
    """``memory://`` for asyncio: calls run on worker threads (``chronik.aio``), as its
    transactions and append hooks hold a lock the event loop must never wait for."""
    return AsyncStoreAdapter(open_store(url, registry, options))


backend = Backend("memory", open=open_store, open_async=open_async_store)
"""The ``memory://`` backend (entry point ``chronik.backends:memory``)."""
