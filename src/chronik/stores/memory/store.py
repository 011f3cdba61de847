"""The in-memory store: small and obviously correct, the reference for every other.

Every write is a transaction (``writing.py``): one at a time, under the log's write
lock, applied all at once, so positions follow commit order trivially. Reads look at
what is committed under the log's lock. Subscriptions wait on a condition of that
lock, notified after every commit (``reader.py``); inline projections (append hooks)
run inside each append's transaction, before anything of it is committed.

Deleting, retaining and repairing (``chronik.lifecycle``) are transactions as well.
An event removed (a hard delete, a scavenge) leaves a ``Removed`` marker at its
position, so positions are never given out twice.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from typing import Final

from chronik.backend import (
    AppendHook,
    SubjectKey,
    Subscribes,
    append_many_events,
    appending,
    forget_subject,
    normalize_filter,
    position_after,
    prepare_decision,
    prepare_replacement,
    prepare_write,
    prepare_writes,
    subject_keys_of,
    validate_checkpoint_name,
    validate_expected_version,
    validate_limit,
    validate_read_stream,
    write_keys,
)
from chronik.codec import DEFAULT_MAX_EVENT_SIZE, Codec, EventRegistry
from chronik.errors import AppendConditionFailedError, InvalidInputError
from chronik.events import (
    ANY,
    AppendResult,
    Checkpoint,
    DeadLetter,
    ExpectedVersion,
    ProjectionState,
    RecordedEvent,
    RunnerHeartbeat,
    Snapshot,
    StreamInfo,
    StreamWrite,
    validate_stream_id,
)
from chronik.lifecycle import (
    DeleteResult,
    RepairRecord,
    ScavengeResult,
    StreamMetadata,
    archive_mode,
    archive_record,
    check_metadata_target,
    check_repairable,
    decide_delete,
    max_age_micros,
    replace_record,
    scavenge_below,
    validate_operator,
    validate_repair,
    validate_stream_metadata,
)
from chronik.query import AppendCondition, Query, ReadResult, check_read, read_head
from chronik.stores.memory import projection_state
from chronik.stores.memory.dcb import first_match, matching
from chronik.stores.memory.reader import (
    KIND,
    LIVE,
    MemoryLog,
    MemoryLogReader,
    Row,
    StreamState,
    checkpoint_at,
)
from chronik.stores.memory.subject_keys import MemorySubjectKeys
from chronik.stores.memory.writing import SYSTEM, MemoryTransaction, visible_rows, write

__all__ = ["MemoryEventStore"]

PAGE_SIZE: Final = 1000


class MemoryEventStore(Subscribes):
    """An event store held in this process's memory; gone when the process ends."""

    is_async: Final = False

    def __init__(
        self, registry: EventRegistry | None = None, *, max_event_size: int = DEFAULT_MAX_EVENT_SIZE
    ) -> None:
        self.codec = Codec(registry, max_event_size=max_event_size)
        self.codec.subject_keys = MemorySubjectKeys()
        self._log = MemoryLog(self.codec)

    # -- writing ---------------------------------------------------------------

    def append(
        self, stream_id: str, events: Sequence[object], expected_version: ExpectedVersion = ANY
    ) -> AppendResult:
        with appending(SYSTEM, "append", stream_id, expected_version, events) as span:
            keys = write_keys(self.codec, [events])
            prepared = [prepare_write(self.codec, stream_id, events, expected_version, keys)]
            with write(self._log) as tx:
                result = tx.append_prepared(prepared)[0]
            return span.done(result)

    def append_many(self, writes: Sequence[StreamWrite]) -> list[AppendResult]:
        with appending(SYSTEM, "append_many", events=append_many_events(writes)) as span:
            prepared = prepare_writes(self.codec, writes, write_keys(self.codec, writes))
            with write(self._log) as tx:
                results = tx.append_prepared(prepared)
            return span.done(results)

    # -- Dynamic Consistency Boundaries ------------------------------------------------

    def read_query(
        self, query: Query, *, after: int | None = None, limit: int | None = None, backwards: bool = False
    ) -> ReadResult:
        query, start, limit = check_read(query, after, limit)
        log = self._log
        with log.lock:
            log.check_open()
            rows = log.rows
            head = len(rows) or None
            found = matching(log, query, start)
        if backwards:
            found.reverse()
        if limit is not None:
            found = found[:limit]
        head = read_head(head, found[-1].position if found else None, len(found), limit, backwards)
        return ReadResult([log.record(r) for r in found], head)

    def append_if(
        self, events: Sequence[object], condition: AppendCondition | None, *, stream_id: str | None = None
    ) -> AppendResult:
        with appending(SYSTEM, "append_if", stream_id, None, events) as span:
            keys = write_keys(self.codec, [events])
            prepared, checked = prepare_decision(self.codec, events, condition, stream_id, keys)
            log = self._log
            with write(log) as tx:
                # One writer at a time: nothing can be stored between this check and the append.
                if checked is not None:
                    query = checked.fail_if_events_match
                    found = first_match(log, query, checked.after or 0)
                    if found is not None:
                        raise AppendConditionFailedError(query, checked.after, found)
                result = tx.append_prepared([prepared])[0]
            return span.done(result)

    def transaction(self) -> AbstractContextManager[MemoryTransaction]:
        """A write transaction: appends, checkpoints, snapshots, projection state and dead
        letters, committed together when the block ends, or not at all if it raises.

        It has no statements to run (``execute`` raises ``ConfigurationError``): keep a
        read model elsewhere, e.g. in a ``CheckpointedTarget``. Writing through the
        store itself inside the block, on the same thread, raises ``InvalidInputError``.
        """
        return write(self._log)

    # -- subjects' keys (crypto-shredding) -------------------------------------------

    def subject_keys(self, subjects: Collection[str], *, create: bool = False) -> dict[str, SubjectKey]:
        """The subjects' keys (``chronik.store.SubjectKeyStore``), from the codec's key store."""
        return subject_keys_of(self.codec, subjects, create)

    def forget(self, subject: str) -> None:
        """Destroy ``subject``'s key: its personal data reads as redacted from now on."""
        forget_subject(self.codec, subject)

    # -- reading ---------------------------------------------------------------

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
        log = self._log
        with log.lock:
            log.check_open()
            positions = log.streams.get(stream_id, [])
            state = log.lifecycle.get(stream_id, LIVE)
            rows = visible_rows(positions, state, lambda p: log.rows[p - 1], from_version, to_version)
        if backwards:
            rows.reverse()
        if limit is not None:
            rows = rows[:limit]
        return [log.record(r) for r in rows]

    def read_all(
        self,
        after: Checkpoint | None = None,
        *,
        categories: Iterable[str] | None = None,
        types: Iterable[str] | None = None,
        limit: int | None = None,
    ) -> Iterator[RecordedEvent]:
        start = position_after(after, KIND)
        cats = normalize_filter(categories, "categories")
        kinds = normalize_filter(types, "types")
        return self._iter_all(start, cats, kinds, validate_limit(limit))

    def _iter_all(
        self, start: int, cats: tuple[str, ...] | None, kinds: tuple[str, ...] | None, limit: int | None
    ) -> Iterator[RecordedEvent]:
        log = self._log
        remaining = limit
        position = start
        while remaining is None or remaining > 0:
            with log.lock:
                log.check_open()
                page = log.page(log.rows[position : position + PAGE_SIZE], cats, kinds, None)
            if page.checkpoint is None:  # nothing after ``position``
                return
            position = page.checkpoint.parts[0]
            events = page.events if remaining is None else page.events[:remaining]
            yield from events
            if remaining is not None:
                remaining -= len(events)

    def stream_info(self, stream_id: str) -> StreamInfo:
        stream_id = validate_stream_id(stream_id)
        log = self._log
        with log.lock:
            log.check_open()
            mode = log.lifecycle.get(stream_id, LIVE).mode
            if mode is not None:
                return StreamInfo(stream_id, 0, mode)
            return StreamInfo(stream_id, len(log.streams.get(stream_id, ())))

    def list_streams(
        self, *, category: str | None = None, after: str | None = None, limit: int = 100
    ) -> list[StreamInfo]:
        checked = validate_limit(limit)
        if checked is None:
            raise InvalidInputError("limit must be an int >= 0")
        log = self._log
        with log.lock:
            log.check_open()
            deleted = {s for s, state in log.lifecycle.items() if state.mode is not None}
            ids = sorted(
                s
                for s in log.streams
                if (category is None or s.partition("-")[0] == category)
                and (after is None or s > after)
                and s not in deleted
            )[:checked]
            return [StreamInfo(s, len(log.streams[s])) for s in ids]

    def head(self) -> Checkpoint | None:
        log = self._log
        with log.lock:
            log.check_open()
            return checkpoint_at(len(log.rows)) if log.rows else None

    # -- deleting, retaining, repairing (chronik.lifecycle) ----------------------------

    def delete_stream(
        self, stream_id: str, expected_version: ExpectedVersion = ANY, *, hard: bool = False
    ) -> DeleteResult:
        stream_id = validate_stream_id(stream_id)
        expected = validate_expected_version(expected_version)
        with write(self._log) as tx:
            state = tx.state(stream_id)
            version = len(tx.positions(stream_id))
            mode = decide_delete(stream_id, expected, version, state.mode, hard=hard)
            if mode is None:
                return DeleteResult(stream_id, state.mode or ("hard" if hard else "soft"))
            return tx.delete_as(stream_id, mode, version)

    def set_stream_metadata(self, stream_id: str, metadata: StreamMetadata) -> None:
        stream_id = validate_stream_id(stream_id)
        metadata = validate_stream_metadata(metadata)
        with write(self._log) as tx:
            state = tx.state(stream_id)
            check_metadata_target(stream_id, state.mode)
            tx.set_state(stream_id, StreamState(state.mode, metadata))

    def get_stream_metadata(self, stream_id: str) -> StreamMetadata:
        stream_id = validate_stream_id(stream_id)
        with self._log.lock:
            self._log.check_open()
            return self._log.lifecycle.get(stream_id, LIVE).metadata

    def scavenge(self) -> ScavengeResult:
        log = self._log
        events = streams = 0
        with write(log) as tx:
            now = datetime.now(UTC)
            for stream_id, state in list(log.lifecycle.items()):
                if state.mode == "archived":
                    continue  # kept whole: the evidence of a broken stream
                positions = log.streams.get(stream_id, [])
                last = len(positions)
                # Everything of a deleted stream but its last event (the deletion event).
                below = last if state.mode is not None else scavenge_below(state.metadata, last)
                age = max_age_micros(state.metadata) if state.mode is None else None
                cutoff = None if age is None else now - timedelta(microseconds=age)
                gone = 0
                for version, position in enumerate(positions[: last - 1], 1):
                    row = log.rows[position - 1]
                    if not isinstance(row, Row):
                        continue
                    if version < below or (cutoff is not None and row.recorded_at < cutoff):
                        tx.remove(position)
                        gone += 1
                if gone:
                    events += gone
                    streams += 1
        return ScavengeResult(events, streams)

    def repair_event(
        self, stream_id: str, version: int, event: object, *, reason: str, operator: str
    ) -> RepairRecord:
        stream_id = validate_stream_id(stream_id)
        reason, operator = validate_repair(stream_id, version, reason, operator)
        keys = write_keys(self.codec, [[event]])  # before the write lock, as an append's
        log = self._log
        with write(log) as tx:
            positions = tx.positions(stream_id)
            row = tx.row(positions[version - 1]) if version <= len(positions) else None
            if not isinstance(row, Row):
                raise InvalidInputError(f"stream {stream_id!r} has no stored event at version {version}")
            old = row.event
            check_repairable(stream_id, version, old.type)
            new = prepare_replacement(
                self.codec,
                stream_id,
                event,
                event_id=old.event_id,
                metadata=old.metadata,
                tags=old.tags,
                keys=keys,
            )
            record = replace_record(
                stream_id=stream_id,
                version=version,
                position=row.position,
                event_id=old.event_id,
                old=(old.type, old.schema_version, old.data, old.metadata),
                new=(new.type, new.schema_version, new.data, new.metadata),
                reason=reason,
                operator=operator,
            )
            tx.replace(row, new, record)
        return record

    def archive_stream(
        self, stream_id: str, expected_version: ExpectedVersion = ANY, *, reason: str, operator: str
    ) -> RepairRecord:
        stream_id = validate_stream_id(stream_id)
        expected = validate_expected_version(expected_version)
        reason, operator = validate_operator(reason, operator)
        with write(self._log) as tx:
            positions = tx.positions(stream_id)
            state = tx.state(stream_id)
            archive_mode(stream_id, expected, len(positions), state.mode)
            rows = [r for p in positions if isinstance(r := tx.row(p), Row)]
            record = archive_record(
                stream_id=stream_id,
                version=len(positions),
                position=positions[-1],
                events=((r.event.type, r.event.data, r.event.metadata) for r in rows),
                reason=reason,
                operator=operator,
            )
            tx.delete_as(stream_id, "archived", len(positions))
            tx.audit(record)
        return record

    # -- subscriptions -----------------------------------------------------------

    def log_reader(self) -> MemoryLogReader:
        """A reader for subscriptions (``chronik.store.LogReader``)."""
        self._log.check_open()
        return MemoryLogReader(self._log)

    # -- append hooks (inline projections) ---------------------------------------

    def add_append_hook(self, hook: AppendHook) -> None:
        """Run ``hook`` inside every append; ``hook.installed`` runs first, in a write
        transaction, so no append comes between its catch-up and its first call."""
        log = self._log
        with write(log) as tx:
            if hook.name in log.hooks:
                raise InvalidInputError(f"an append hook named {hook.name!r} is already installed")
            hook.installed(tx)
            log.hooks = {**log.hooks, hook.name: hook}

    def remove_append_hook(self, name: str) -> None:
        # Never waits for the write lock: an asyncio face may call it while an append
        # waits for a hook on the same event loop.
        log = self._log
        hooks = dict(log.hooks)
        hooks.pop(name, None)
        log.hooks = hooks

    # -- projection state ----------------------------------------------------------

    def save_projection_state(self, state: ProjectionState) -> None:
        with write(self._log) as tx:
            tx.save_projection_state(state)

    def projection_states(self, name: str | None = None) -> list[ProjectionState]:
        with self._log.lock:
            self._log.check_open()
            return projection_state.projection_states(self._log, name)

    def delete_projection_state(self, name: str, version: int) -> None:
        with write(self._log) as tx:
            tx.delete_projection_state(name, version)

    def park_event(self, letter: DeadLetter) -> None:
        with write(self._log) as tx:
            tx.park_event(letter)

    def dead_letters(self, projection: str | None = None) -> list[DeadLetter]:
        with self._log.lock:
            self._log.check_open()
            return projection_state.dead_letters(self._log, projection)

    def delete_dead_letter(self, projection: str, version: int, position: int) -> None:
        with write(self._log) as tx:
            tx.delete_dead_letter(projection, version, position)

    # -- runners' heartbeats ---------------------------------------------------

    def save_heartbeat(self, heartbeat: RunnerHeartbeat) -> None:
        projection_state.save_heartbeat(self._log, heartbeat)

    def heartbeats(self, name: str | None = None) -> list[RunnerHeartbeat]:
        return projection_state.heartbeats(self._log, name)

    def delete_heartbeat(self, runner_id: str) -> None:
        projection_state.delete_heartbeat(self._log, runner_id)

    # -- snapshots and checkpoints --------------------------------------------

    def save_snapshot(self, snapshot: Snapshot) -> None:
        validate_stream_id(snapshot.stream_id)
        with write(self._log) as tx:
            tx.save_snapshot(snapshot)

    def load_snapshot(self, stream_id: str) -> Snapshot | None:
        validate_stream_id(stream_id)
        with self._log.lock:
            self._log.check_open()
            return self._log.snapshots.get(stream_id)

    def save_checkpoint(self, name: str, checkpoint: Checkpoint) -> None:
        validate_checkpoint_name(name)
        position_after(checkpoint, KIND)
        with write(self._log) as tx:
            tx.save_checkpoint(name, checkpoint)

    def load_checkpoint(self, name: str) -> Checkpoint | None:
        validate_checkpoint_name(name)
        with self._log.lock:
            self._log.check_open()
            return self._log.checkpoints.get(name)

    def delete_checkpoint(self, name: str) -> None:
        validate_checkpoint_name(name)
        with write(self._log) as tx:
            tx.delete_checkpoint(name)

    # -- lifecycle -------------------------------------------------------------

    def close(self) -> None:
        log = self._log
        with log.lock:
            log.closed = True
            log.changed.notify_all()

    def __enter__(self) -> MemoryEventStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        log = self._log  # no lock: a repr must not wait for a writer, and len() is atomic
        closed = ", closed" if log.closed else ""
        return f"MemoryEventStore('memory://', streams={len(log.streams)}, events={len(log.rows)}{closed})"
