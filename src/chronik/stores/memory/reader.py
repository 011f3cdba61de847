"""The memory store's contents, shared by the store, its transactions and its readers,
and how the log is read: pages for subscriptions, and the subscription hooks.

:class:`MemoryLog` holds everything the store keeps, with its two locks:

- ``lock`` guards the contents. Readers hold it while they look; a commit holds it
  while it applies a transaction's changes, all at once, and notifies ``changed``,
  which subscriptions wait on.
- ``write_lock`` lets one writer at a time stage a transaction (an append is one
  too). Only the holder changes the contents, so it reads them without ``lock``, and
  positions follow commit order trivially.
"""

from __future__ import annotations

import threading
import time
import uuid
from datetime import datetime
from typing import Final, NamedTuple

from chronik.backend import AppendHook, Codec, EncodedEvent, ExistingEvent, LiveKeys, LogPage, position_after
from chronik.errors import InvalidInputError, StoreClosedError
from chronik.events import Checkpoint, DeadLetter, ProjectionState, RecordedEvent, RunnerHeartbeat, Snapshot
from chronik.lifecycle import DeleteMode, StreamMetadata

__all__ = ["KIND", "MemoryLog", "MemoryLogReader", "Removed", "Row", "StreamState", "checkpoint_at"]

KIND: Final = "memory"


class Row(NamedTuple):
    """One stored event."""

    stream_id: str
    category: str
    version: int
    position: int
    event: EncodedEvent
    recorded_at: datetime


class Removed(NamedTuple):
    """Where an event was before a hard delete or a scavenge removed it: its position
    stays taken (row N-1 is still position N), and reads pass over it."""

    position: int


class StreamState(NamedTuple):
    """A stream's deletion (None: live) and metadata; streams without either have none."""

    mode: DeleteMode | None = None
    metadata: StreamMetadata = StreamMetadata()

    @property
    def empty(self) -> bool:
        return self.mode is None and self.metadata == StreamMetadata()


LIVE: Final = StreamState()


def checkpoint_at(position: int) -> Checkpoint:
    return Checkpoint(KIND, (position,))


def matches(row: Row | Removed, categories: tuple[str, ...] | None, types: tuple[str, ...] | None) -> bool:
    """Whether ``row`` is an event (not a removed one) that passes the filters."""
    if not isinstance(row, Row):
        return False
    return (categories is None or row.category in categories) and (types is None or row.event.type in types)


class MemoryLog:
    """What a memory store holds, and the locks around it (see the module's docstring)."""

    def __init__(self, codec: Codec) -> None:
        self.codec = codec
        # Subjects' keys are looked up when an event is decoded, not loaded by each read:
        # in memory a look-up costs a dict's.
        self.keys = LiveKeys(codec)
        self.rows: list[Row | Removed] = []  # row N-1 is at position N
        self.streams: dict[str, list[int]] = {}  # each stream's positions, by version
        self.lifecycle: dict[str, StreamState] = {}  # deleted streams, streams with metadata
        self.ids: dict[uuid.UUID, ExistingEvent] = {}
        # Positions by tag and by type, in order: what reads by query look at (dcb.py).
        self.by_tag: dict[str, list[int]] = {}
        self.by_type: dict[str, list[int]] = {}
        self.snapshots: dict[str, Snapshot] = {}
        self.checkpoints: dict[str, Checkpoint] = {}
        self.projections: dict[tuple[str, int], ProjectionState] = {}
        self.dead_letters: dict[tuple[str, int, int], DeadLetter] = {}  # in the order parked
        # Outside transactions (a runner writes them from a thread of its own), under ``lock``.
        self.heartbeats: dict[str, RunnerHeartbeat] = {}
        # Replaced whole, never changed in place, so removing one never waits for a writer.
        self.hooks: dict[str, AppendHook] = {}
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)
        self.write_lock = threading.Lock()
        self.writer: int | None = None  # the thread holding write_lock
        self.closed = False

    def check_open(self) -> None:
        if self.closed:
            raise StoreClosedError("the memory store is closed")

    def begin_write(self) -> None:
        """Take the write lock; a thread that holds it already is refused, not deadlocked."""
        me = threading.get_ident()
        if self.writer == me:  # only this thread could have set it to its own id
            raise InvalidInputError(
                "a transaction is already open on this thread: use that transaction's own "
                "append/execute methods inside `with store.transaction()`"
            )
        self.write_lock.acquire()
        self.writer = me

    def end_write(self) -> None:
        self.writer = None
        self.write_lock.release()

    def record(self, row: Row) -> RecordedEvent:
        e = row.event
        return RecordedEvent(
            row.stream_id,
            row.version,
            row.position,
            KIND,  # the checkpoint is built from the position when first read
            e.event_id,
            e.type,
            e.schema_version,
            e.data,
            e.metadata,
            row.recorded_at,
            self.codec,
            e.tags,
            _keys=self.keys,
        )

    def page(
        self,
        chunk: list[Row | Removed],
        categories: tuple[str, ...] | None,
        types: tuple[str, ...] | None,
        after: Checkpoint | None,
    ) -> LogPage:
        """The page of the rows ``chunk`` (read after ``after``) that pass the filters."""
        events = [
            self.record(row) for row in chunk if isinstance(row, Row) and matches(row, categories, types)
        ]
        return LogPage(events, checkpoint_at(chunk[-1].position) if chunk else after)


class MemoryLogReader:
    """Subscription hooks: pages of the log, and a wait on its condition."""

    def __init__(self, log: MemoryLog) -> None:
        self._log = log
        self._closed = False

    def read_page(
        self,
        after: Checkpoint | None,
        size: int,
        categories: tuple[str, ...] | None,
        types: tuple[str, ...] | None,
    ) -> LogPage:
        log = self._log
        position = position_after(after, KIND)
        with log.lock:
            log.check_open()
            if self._closed:
                return LogPage([], after)
            return log.page(log.rows[position : position + size], categories, types, after)

    def wait_for_events(self, after: Checkpoint | None, timeout: float) -> bool:
        log = self._log
        position = position_after(after, KIND)
        deadline = time.monotonic() + timeout
        with log.changed:
            # The check and the wait happen under the lock that every commit takes, so
            # a commit cannot slip in between them unseen.
            while True:
                log.check_open()
                if self._closed:
                    return False
                if len(log.rows) > position:
                    return True
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                log.changed.wait(remaining)

    def count_events(
        self,
        after: Checkpoint | None,
        categories: tuple[str, ...] | None,
        types: tuple[str, ...] | None,
    ) -> int:
        log = self._log
        position = position_after(after, KIND)
        with log.lock:
            log.check_open()
            return sum(1 for row in log.rows[position:] if matches(row, categories, types))

    def close(self) -> None:
        with self._log.changed:
            self._closed = True
            self._log.changed.notify_all()
