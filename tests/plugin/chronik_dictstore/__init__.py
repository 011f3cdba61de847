"""chronik_dictstore: a third-party chronik backend keeping its events in a dict.

Written only against ``chronik.backend`` (with the values of ``chronik.events`` and
the errors of ``chronik.errors``), as an outside package would be, and registered by
an entry point (``chronik.backends``: ``dict``). ``dict://NAME`` opens the store
called NAME in this process (every handle of a name sees the same events);
``dict://`` opens a private one. It declares snapshots, checkpoints and
subscriptions; its asyncio face is ``chronik.backend.AsyncStoreAdapter``.
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

from chronik.backend import (
    DEFAULT_MAX_EVENT_SIZE,
    AsyncStoreAdapter,
    Backend,
    Codec,
    EncodedEvent,
    ExistingEvent,
    LogPage,
    PreparedWrite,
    Subscribes,
    expected_version_ok,
    normalize_filter,
    parse_options,
    position_after,
    prepare_write,
    prepare_writes,
    recorded_event,
    resolve_existing,
    validate_checkpoint_name,
    validate_limit,
    validate_read_stream,
    validate_stream_id,
)
from chronik.codec import EventRegistry
from chronik.errors import ConfigurationError, InvalidInputError, StoreClosedError, WrongExpectedVersionError
from chronik.events import (
    ANY,
    AppendResult,
    Checkpoint,
    ExpectedVersion,
    RecordedEvent,
    Snapshot,
    StreamInfo,
    StreamWrite,
)

__all__ = ["DictEventStore", "backend"]

KIND: Final = "dict"


class _Row(NamedTuple):
    stream_id: str
    category: str
    version: int
    event: EncodedEvent
    recorded_at: datetime


class _Data:
    """One store's contents, shared by every handle of its name."""

    def __init__(self) -> None:
        self.changed = threading.Condition()
        self.log: list[_Row] = []  # position n is log[n - 1]
        self.streams: dict[str, list[int]] = {}
        self.ids: dict[uuid.UUID, ExistingEvent] = {}
        self.snapshots: dict[str, Snapshot] = {}
        self.checkpoints: dict[str, Checkpoint] = {}


_NAMED: dict[str, _Data] = {}
_NAMED_LOCK = threading.Lock()


def _checkpoint(position: int) -> Checkpoint:
    return Checkpoint(KIND, (position,))


class DictEventStore(Subscribes):
    """An event store over a dict: one lock, positions in commit order."""

    is_async: Final = False

    def __init__(self, data: _Data, codec: Codec) -> None:
        self.codec = codec
        self._data = data
        self._closed = False

    def _open(self) -> _Data:
        if self._closed:
            raise StoreClosedError("the dict store is closed")
        return self._data

    # -- writing ---------------------------------------------------------------

    def append(
        self, stream_id: str, events: Sequence[object], expected_version: ExpectedVersion = ANY
    ) -> AppendResult:
        return self._commit([prepare_write(self.codec, stream_id, events, expected_version)])[0]

    def append_many(self, writes: Sequence[StreamWrite]) -> list[AppendResult]:
        return self._commit(prepare_writes(self.codec, writes))

    def _commit(self, writes: list[PreparedWrite]) -> list[AppendResult]:
        with self._data.changed:
            data = self._open()
            results: list[AppendResult | None] = []
            for write in writes:  # every check first: a failure leaves the store as it was
                existing = {e.event_id: data.ids[e.event_id] for e in write.events if e.event_id in data.ids}
                if existing:
                    results.append(resolve_existing(write, existing, lambda w: _checkpoint(w.position)))
                    continue
                actual = len(data.streams.get(write.stream_id, ()))
                if not expected_version_ok(write.expected, actual):
                    raise WrongExpectedVersionError(write.stream_id, write.expected, actual)
                results.append(None)
            now = datetime.now(UTC)
            out: list[AppendResult] = []
            for write, result in zip(writes, results, strict=True):
                if result is None:
                    positions = data.streams.setdefault(write.stream_id, [])
                    for e in write.events:
                        data.log.append(_Row(write.stream_id, write.category, len(positions) + 1, e, now))
                        positions.append(len(data.log))
                        data.ids[e.event_id] = ExistingEvent(write.stream_id, len(positions), len(data.log))
                    result = AppendResult(
                        write.stream_id, len(positions), len(data.log), _checkpoint(len(data.log))
                    )
                out.append(result)
            data.changed.notify_all()
            return out

    # -- reading ---------------------------------------------------------------

    def _record(self, position: int) -> RecordedEvent:
        row = self._data.log[position - 1]
        e = row.event
        return recorded_event(
            stream_id=row.stream_id,
            version=row.version,
            position=position,
            checkpoint=_checkpoint(position),
            event_id=e.event_id,
            type=e.type,
            schema_version=e.schema_version,
            data=e.data,
            metadata=e.metadata,
            recorded_at=row.recorded_at,
            codec=self.codec,
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
        stream_id, low, high, limit = validate_read_stream(stream_id, from_version, to_version, limit)
        with self._data.changed:
            positions = self._open().streams.get(stream_id, [])
            chosen = positions[max(low, 1) - 1 : len(positions) if high is None else max(high, 0)]
            events = [self._record(p) for p in chosen]
        if backwards:
            events.reverse()
        return events if limit is None else events[:limit]

    def read_all(
        self,
        after: Checkpoint | None = None,
        *,
        categories: Iterable[str] | None = None,
        types: Iterable[str] | None = None,
        limit: int | None = None,
    ) -> Iterator[RecordedEvent]:
        start = position_after(after, KIND)
        cats, kinds = normalize_filter(categories, "categories"), normalize_filter(types, "types")
        return self._iter_all(start, cats, kinds, validate_limit(limit))

    def _iter_all(
        self, start: int, cats: tuple[str, ...] | None, kinds: tuple[str, ...] | None, limit: int | None
    ) -> Iterator[RecordedEvent]:
        after: Checkpoint | None = _checkpoint(start) if start else None
        left = limit
        while left is None or left > 0:
            page = self._page(after, 500, cats, kinds)
            if page.checkpoint == after:
                return
            after = page.checkpoint
            events = page.events if left is None else page.events[:left]
            yield from events
            if left is not None:
                left -= len(events)

    def _page(
        self, after: Checkpoint | None, size: int, cats: tuple[str, ...] | None, kinds: tuple[str, ...] | None
    ) -> LogPage:
        start = position_after(after, KIND)
        with self._data.changed:
            log = self._open().log
            end = min(len(log), start + size)
            events = [
                self._record(p)
                for p in range(start + 1, end + 1)
                if (cats is None or log[p - 1].category in cats)
                and (kinds is None or log[p - 1].event.type in kinds)
            ]
        return LogPage(events, _checkpoint(end) if end > start else after)

    def stream_info(self, stream_id: str) -> StreamInfo:
        stream_id = validate_stream_id(stream_id)
        with self._data.changed:
            return StreamInfo(stream_id, len(self._open().streams.get(stream_id, ())))

    def list_streams(
        self, *, category: str | None = None, after: str | None = None, limit: int = 100
    ) -> list[StreamInfo]:
        most = validate_limit(limit)
        if most is None:
            raise InvalidInputError("limit must be an int >= 0")
        with self._data.changed:
            streams = self._open().streams
            ids = sorted(
                s
                for s in streams
                if (category is None or s.partition("-")[0] == category) and (after is None or s > after)
            )
            return [StreamInfo(s, len(streams[s])) for s in ids[:most]]

    def head(self) -> Checkpoint | None:
        with self._data.changed:
            log = self._open().log
            return _checkpoint(len(log)) if log else None

    # -- snapshots and checkpoints -----------------------------------------------

    def save_snapshot(self, snapshot: Snapshot) -> None:
        validate_stream_id(snapshot.stream_id)
        if snapshot.recorded_at is None:
            snapshot = msgspec.structs.replace(snapshot, recorded_at=datetime.now(UTC))
        with self._data.changed:
            self._open().snapshots[snapshot.stream_id] = snapshot

    def load_snapshot(self, stream_id: str) -> Snapshot | None:
        validate_stream_id(stream_id)
        with self._data.changed:
            return self._open().snapshots.get(stream_id)

    def save_checkpoint(self, name: str, checkpoint: Checkpoint) -> None:
        validate_checkpoint_name(name)
        position_after(checkpoint, KIND)
        with self._data.changed:
            self._open().checkpoints[name] = checkpoint

    def load_checkpoint(self, name: str) -> Checkpoint | None:
        validate_checkpoint_name(name)
        with self._data.changed:
            return self._open().checkpoints.get(name)

    def delete_checkpoint(self, name: str) -> None:
        validate_checkpoint_name(name)
        with self._data.changed:
            self._open().checkpoints.pop(name, None)

    # -- subscriptions and lifecycle ------------------------------------------------

    def log_reader(self) -> _DictLogReader:
        self._open()
        return _DictLogReader(self)

    def close(self) -> None:
        with self._data.changed:
            self._closed = True
            self._data.changed.notify_all()

    def __enter__(self) -> DictEventStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _DictLogReader:
    """The two subscription hooks: pages of the log, and a wait on the store's condition."""

    def __init__(self, store: DictEventStore) -> None:
        self._store = store
        self._closed = False

    def read_page(
        self,
        after: Checkpoint | None,
        size: int,
        categories: tuple[str, ...] | None,
        types: tuple[str, ...] | None,
    ) -> LogPage:
        return self._store._page(after, size, categories, types)

    def wait_for_events(self, after: Checkpoint | None, timeout: float) -> bool:
        start = position_after(after, KIND)
        deadline = time.monotonic() + timeout
        changed = self._store._data.changed
        with changed:
            while True:  # checked and waited under the lock every commit takes
                data = self._store._open()
                if self._closed:
                    return False
                if len(data.log) > start:
                    return True
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                changed.wait(remaining)

    def count_events(
        self,
        after: Checkpoint | None,
        categories: tuple[str, ...] | None,
        types: tuple[str, ...] | None,
    ) -> int:
        start = position_after(after, KIND)
        with self._store._data.changed:
            size = len(self._store._open().log) - start
        return len(self._store._page(after, max(size, 0), categories, types).events)

    def close(self) -> None:
        changed = self._store._data.changed
        with changed:
            self._closed = True
            changed.notify_all()


def open_store(url: str, registry: EventRegistry | None, options: dict[str, Any]) -> DictEventStore:
    """``dict://NAME``: the store NAME of this process; ``dict://``: a new private one."""
    parts = urlsplit(url)
    if parts.path not in ("", "/"):
        raise ConfigurationError(f"dict store URL takes a name, no path: {url!r} (use dict://NAME)")
    opts = parse_options(url, options, {"max_event_size": int})
    codec = Codec(registry, max_event_size=opts.get("max_event_size", DEFAULT_MAX_EVENT_SIZE))
    if not parts.netloc:
        return DictEventStore(_Data(), codec)
    with _NAMED_LOCK:
        data = _NAMED.setdefault(parts.netloc, _Data())
    return DictEventStore(data, codec)


def open_async_store(
    url: str, registry: EventRegistry | None, options: dict[str, Any]
) -> AsyncStoreAdapter[DictEventStore]:
    """The asyncio face: ``AsyncStoreAdapter`` over the sync store (with exactly its powers)."""
    return AsyncStoreAdapter(open_store(url, registry, options))


backend = Backend("dict", open=open_store, open_async=open_async_store)
"""What the entry point ``chronik.backends:dict`` names."""
