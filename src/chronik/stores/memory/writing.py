"""Writing to the memory store: every write is a transaction.

A :class:`MemoryTransaction` holds the log's write lock for its whole life and
stages its changes (events, checkpoints, snapshots, projection state, dead letters)
beside the log; its reads see the log with those changes. When the block ends they
are applied under the log's lock, all at once, or dropped when it raised: readers
never see half a transaction. An append in a transaction is all or nothing as well:
when it fails (a wrong expected version, an append hook that raises) what it staged
is dropped and the transaction goes on as before it.

Append hooks run inside each append, before anything is committed, and get the
transaction itself.

Deleting, scavenging and repairing are transactions too (``chronik.lifecycle`` has
the rules): the deletion event is appended like any event (hooks included), and the
stream's new state, the events removed and the events replaced are staged beside it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, Final, NoReturn

import msgspec

from chronik.backend import (
    ExistingEvent,
    LogPage,
    PreparedWrite,
    append_many_events,
    appending,
    expected_version_ok,
    position_after,
    prepare_write,
    prepare_writes,
    resolve_existing,
    validate_checkpoint_name,
    validate_read_stream,
    write_keys,
)
from chronik.codec import EncodedEvent
from chronik.errors import ConfigurationError, InvalidInputError, WrongExpectedVersionError
from chronik.events import (
    ANY,
    AppendResult,
    Checkpoint,
    DeadLetter,
    ExpectedVersion,
    ProjectionState,
    RecordedEvent,
    Snapshot,
    StreamWrite,
    validate_stream_id,
)
from chronik.lifecycle import (
    REPAIRS_STREAM,
    DeleteMode,
    DeleteResult,
    RepairRecord,
    StreamMetadata,
    check_append,
    deletion_event,
    hidden_below,
    max_age_micros,
    repair_event_record,
    visible_version,
)
from chronik.stores.memory import projection_state
from chronik.stores.memory.reader import KIND, LIVE, MemoryLog, Removed, Row, StreamState, checkpoint_at

__all__ = ["SYSTEM", "MemoryTransaction", "visible_rows", "write"]

SYSTEM: Final = "memory"
"""What telemetry calls this backend (``db.system.name``)."""

_Saved = tuple[dict[str, Checkpoint | None], dict[str, Snapshot | None], projection_state.ProjectionChanges]


@contextmanager
def write(log: MemoryLog) -> Iterator[MemoryTransaction]:
    """A transaction on ``log``: committed when the block ends, dropped if it raises."""
    log.begin_write()
    try:
        log.check_open()
        tx = MemoryTransaction(log)
        try:
            yield tx
            tx.commit()
        finally:
            tx.ended = True
    finally:
        log.end_write()


class MemoryTransaction:
    """An open write transaction on a memory store (see ``MemoryEventStore.transaction``)."""

    def __init__(self, log: MemoryLog) -> None:
        self._log = log
        self.ended = False
        # Staged: rows after the log's, the positions they add to streams, their ids.
        self._rows: list[Row] = []
        self._streams: dict[str, list[int]] = {}
        self._ids: dict[uuid.UUID, ExistingEvent] = {}
        self._checkpoints: dict[str, Checkpoint | None] = {}  # None: deleted
        self._snapshots: dict[str, Snapshot | None] = {}  # None: deleted
        self._projections = projection_state.ProjectionChanges()
        # Deleting, scavenging, repairing: streams' new states, committed events that
        # go, committed events replaced in place (by position).
        self._lifecycle: dict[str, StreamState] = {}
        self._removed: set[int] = set()
        self._replaced: dict[int, Row] = {}

    def _check_usable(self) -> None:
        if self.ended:
            raise InvalidInputError("this transaction has ended: use it only inside its block")

    # -- your own statements --------------------------------------------------------------

    def execute(self, statement: str, parameters: Any = ()) -> NoReturn:
        """Refused: the memory store has no query language."""
        raise ConfigurationError(
            "the memory store runs no statements: keep the read model elsewhere, e.g. CheckpointedTarget"
        )

    # -- appending -------------------------------------------------------------------------

    def append(
        self, stream_id: str, events: Sequence[object], expected_version: ExpectedVersion = ANY
    ) -> AppendResult:
        """Append in this transaction; it commits with everything else or not at all."""
        with appending(SYSTEM, "append", stream_id, expected_version, events) as span:
            codec = self._log.codec
            keys = write_keys(codec, [events])
            prepared = [prepare_write(codec, stream_id, events, expected_version, keys)]
            return span.done(self.append_prepared(prepared)[0])

    def append_many(self, writes: Sequence[StreamWrite]) -> list[AppendResult]:
        with appending(SYSTEM, "append_many", events=append_many_events(writes)) as span:
            codec = self._log.codec
            prepared = prepare_writes(codec, writes, write_keys(codec, writes))
            return span.done(self.append_prepared(prepared))

    def append_prepared(self, writes: list[PreparedWrite], *, system: bool = False) -> list[AppendResult]:
        """Stage validated writes and run the append hooks on them; all or nothing.

        ``system``: chronik's own event (a deletion, an audit record), written whatever
        the stream's state."""
        self._check_usable()
        hooks = self._log.hooks
        first = len(self._rows)
        # Only hooks change more than rows and stream states; without them those are all
        # there is to drop.
        saved = self._save() if hooks else None
        states = dict(self._lifecycle)
        try:
            results = self._stage(writes, system)
            if hooks and first < len(self._rows):
                events = [self._log.record(row) for row in self._rows[first:]]
                for hook in list(hooks.values()):
                    hook.appended(self, events)
        except BaseException:
            self._restore(first, saved)
            self._lifecycle = states
            raise
        return results

    def _stage(self, writes: list[PreparedWrite], system: bool = False) -> list[AppendResult]:
        """Stage each write in turn, after the rows staged before."""
        log = self._log
        now = datetime.now(UTC)
        results: list[AppendResult] = []
        for write in writes:
            existing = {e.event_id: where for e in write.events if (where := self._find(e.event_id))}
            if existing:
                results.append(resolve_existing(write, existing, _checkpoint))
                continue
            version = self._version(write.stream_id)
            state = self.state(write.stream_id)
            if not system:
                check_append(write.stream_id, state.mode)
                visible = visible_version(version, state.mode)
                if not expected_version_ok(write.expected, visible):
                    raise WrongExpectedVersionError(write.stream_id, write.expected, visible)
                if state.mode is not None:  # soft-deleted: written again, it lives again
                    self._lifecycle[write.stream_id] = state._replace(mode=None)
            positions = self._streams.setdefault(write.stream_id, [])
            for event in write.events:
                version += 1
                position = len(log.rows) + len(self._rows) + 1
                self._rows.append(Row(write.stream_id, write.category, version, position, event, now))
                positions.append(position)
                self._ids[event.event_id] = ExistingEvent(write.stream_id, version, position)
            results.append(AppendResult(write.stream_id, version, position, checkpoint_at(position)))
        return results

    def _find(self, event_id: uuid.UUID) -> ExistingEvent | None:
        return self._ids.get(event_id) or self._log.ids.get(event_id)

    def _version(self, stream_id: str) -> int:
        return len(self._log.streams.get(stream_id, ())) + len(self._streams.get(stream_id, ()))

    def _save(self) -> _Saved:
        """What else is staged now, to go back to if an append fails (a savepoint)."""
        return (dict(self._checkpoints), dict(self._snapshots), self._projections.copy())

    def _restore(self, rows: int, saved: _Saved | None) -> None:
        for row in self._rows[rows:]:
            self._streams[row.stream_id].pop()
            del self._ids[row.event.event_id]
        del self._rows[rows:]
        if saved is not None:
            self._checkpoints, self._snapshots, self._projections = saved

    # -- deleting, scavenging, repairing ------------------------------------------------------

    def state(self, stream_id: str) -> StreamState:
        """The stream's state as this transaction sees it."""
        found = self._lifecycle.get(stream_id)
        return found if found is not None else self._log.lifecycle.get(stream_id, LIVE)

    def set_state(self, stream_id: str, state: StreamState) -> None:
        self._check_usable()
        self._lifecycle[stream_id] = state

    def positions(self, stream_id: str) -> list[int]:
        """The stream's positions by version, as this transaction sees them."""
        return [*self._log.streams.get(stream_id, ()), *self._streams.get(stream_id, ())]

    def row(self, position: int) -> Row | Removed:
        """The event at ``position`` as this transaction sees it."""
        if position in self._replaced:
            return self._replaced[position]
        if position in self._removed:
            return Removed(position)
        return self._row(position)

    def delete_as(self, stream_id: str, mode: DeleteMode, version: int) -> DeleteResult:
        """Append the deletion event and stage the stream's new state; a hard delete
        removes everything before the deletion event, and any delete the snapshot."""
        codec = self._log.codec
        write = prepare_write(codec, stream_id, [deletion_event(mode, version)], ANY)
        appended = self.append_prepared([write], system=True)[0]
        metadata = self.state(stream_id).metadata
        tb = appended.version + 1  # the deletion event is hidden too, so appends after it show alone
        self._lifecycle[stream_id] = StreamState(mode, msgspec_replace(metadata, truncate_before=tb))
        if mode == "hard":
            for position in self.positions(stream_id)[:-1]:
                self.remove(position)
        self._snapshots[stream_id] = None
        return DeleteResult(stream_id, mode, appended.version, appended.position, appended.checkpoint)

    def remove(self, position: int) -> None:
        """Remove the committed event at ``position`` when the transaction commits."""
        assert position <= len(self._log.rows), "only committed events are removed"
        self._removed.add(position)
        self._replaced.pop(position, None)

    def replace(self, row: Row, event: EncodedEvent, record: RepairRecord) -> None:
        """Replace ``row``'s event in place and record it in the audit trail; the stream's
        snapshot goes (it was made from the old event)."""
        self._check_usable()
        self._replaced[row.position] = row._replace(event=event)
        self._snapshots[row.stream_id] = None
        self.audit(record)

    def audit(self, record: RepairRecord) -> None:
        """Append ``record`` to the audit trail (``$repairs``) in this transaction."""
        audit = prepare_write(self._log.codec, REPAIRS_STREAM, [repair_event_record(record)], ANY)
        self.append_prepared([audit], system=True)

    # -- reading as the transaction sees it ------------------------------------------------

    def _row(self, position: int) -> Row | Removed:
        committed = self._log.rows
        if position <= len(committed):
            return committed[position - 1]
        return self._rows[position - len(committed) - 1]

    def read_stream(
        self, stream_id: str, from_version: int = 1, to_version: int | None = None
    ) -> list[RecordedEvent]:
        """Read a stream as this transaction sees it, its own appends included."""
        self._check_usable()
        stream_id, from_version, to_version, _ = validate_read_stream(
            stream_id, from_version, to_version, None
        )
        positions = self.positions(stream_id)
        rows = visible_rows(positions, self.state(stream_id), self.row, from_version, to_version)
        return [self._log.record(r) for r in rows]

    def read_page(
        self,
        after: Checkpoint | None,
        size: int,
        categories: tuple[str, ...] | None,
        types: tuple[str, ...] | None,
    ) -> LogPage:
        """A page of the log as this transaction sees it (as ``LogReader.read_page``)."""
        self._check_usable()
        position = position_after(after, KIND)
        committed = self._log.rows
        chunk = committed[position : position + size]
        if len(chunk) < size:
            start = max(position - len(committed), 0)
            chunk += self._rows[start : start + size - len(chunk)]
        return self._log.page(chunk, categories, types, after)

    # -- checkpoints and snapshots ------------------------------------------------------------

    def save_checkpoint(self, name: str, checkpoint: Checkpoint) -> None:
        self._check_usable()
        validate_checkpoint_name(name)
        position_after(checkpoint, KIND)
        self._checkpoints[name] = checkpoint

    def load_checkpoint(self, name: str) -> Checkpoint | None:
        self._check_usable()
        validate_checkpoint_name(name)
        if name in self._checkpoints:
            return self._checkpoints[name]
        return self._log.checkpoints.get(name)

    def delete_checkpoint(self, name: str) -> None:
        self._check_usable()
        validate_checkpoint_name(name)
        self._checkpoints[name] = None

    def save_snapshot(self, snapshot: Snapshot) -> None:
        self._check_usable()
        validate_stream_id(snapshot.stream_id)
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

    # -- projection state -----------------------------------------------------------------

    def save_projection_state(self, state: ProjectionState) -> None:
        self._check_usable()
        self._projections.save(state)

    def projection_states(self, name: str | None = None) -> list[ProjectionState]:
        self._check_usable()
        return projection_state.projection_states(self._log, name, self._projections)

    def delete_projection_state(self, name: str, version: int) -> None:
        self._check_usable()
        self._projections.delete(name, version)

    def park_event(self, letter: DeadLetter) -> None:
        self._check_usable()
        self._projections.park(self._log, letter)

    def dead_letters(self, projection: str | None = None) -> list[DeadLetter]:
        self._check_usable()
        return projection_state.dead_letters(self._log, projection, self._projections)

    def delete_dead_letter(self, projection: str, version: int, position: int) -> None:
        self._check_usable()
        self._projections.remove(projection, version, position)

    # -- the end ------------------------------------------------------------------------------

    def commit(self) -> None:
        """Apply everything staged to the log, at once, and wake the subscriptions."""
        log = self._log
        with log.lock:
            log.check_open()
            for row in self._rows:
                log.rows.append(row)
                log.streams.setdefault(row.stream_id, []).append(row.position)
                log.ids[row.event.event_id] = ExistingEvent(row.stream_id, row.version, row.position)
            for name, checkpoint in self._checkpoints.items():
                if checkpoint is None:
                    log.checkpoints.pop(name, None)
                else:
                    log.checkpoints[name] = checkpoint
            for stream_id, snapshot in self._snapshots.items():
                if snapshot is None:
                    log.snapshots.pop(stream_id, None)
                else:
                    log.snapshots[stream_id] = snapshot
            self._projections.apply(log)
            for stream_id, state in self._lifecycle.items():
                if state.empty:
                    log.lifecycle.pop(stream_id, None)
                else:
                    log.lifecycle[stream_id] = state
            for position, row in self._replaced.items():
                log.rows[position - 1] = row
            for position in self._removed:
                gone = log.rows[position - 1]
                if isinstance(gone, Row):
                    log.ids.pop(gone.event.event_id, None)
                    log.rows[position - 1] = Removed(position)
            if self._rows:
                log.changed.notify_all()


def _checkpoint(where: ExistingEvent) -> Checkpoint:
    return checkpoint_at(where.position)


def visible_rows(
    positions: list[int],
    state: StreamState,
    row_at: Callable[[int], Row | Removed],
    from_version: int,
    to_version: int | None,
) -> list[Row]:
    """The rows a read of a stream shows, in version order: none of a deleted stream,
    none that its metadata hides, none removed."""
    if state.mode is not None:
        return []
    metadata = state.metadata
    low = max(from_version, hidden_below(metadata, len(positions)), 1)
    hi = len(positions) if to_version is None else min(to_version, len(positions))
    rows = [r for p in positions[low - 1 : hi] if isinstance(r := row_at(p), Row)]
    age = max_age_micros(metadata)
    if age is not None:
        cutoff = datetime.now(UTC) - timedelta(microseconds=age)
        rows = [r for r in rows if r.recorded_at >= cutoff]
    return rows


def msgspec_replace(metadata: StreamMetadata, **changes: object) -> StreamMetadata:
    return msgspec.structs.replace(metadata, **changes)
