"""Deleting, retaining and repairing on SQLite (the rules are ``chronik.lifecycle``'s).

Each operation is one write transaction (``BEGIN IMMEDIATE``, the store's one writer),
so it sees a stream exactly as the appends before it left it and no append comes
between its check and its writes. A stream's state is its row of
``chronik_streams`` (migration 0006), if it has one. A delete appends its deletion
event through the ordinary append path (append hooks run on it); a repair appends
its audit record to ``$repairs`` in the same transaction as the change.

A scavenge gives the space back with SQLite's incremental vacuum: files created by
this chronik have ``auto_vacuum = INCREMENTAL``; an older file is converted by the
first scavenge that removes anything, with one full ``VACUUM``, which rewrites the
file (it takes about as long as copying it, and as much free disk). Both run under
the write lock, outside any transaction (SQLite refuses to vacuum inside one), and
the write-ahead log is then truncated.
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from datetime import timedelta
from typing import Any

import msgspec

from chronik.backend import Codec, prepare_replacement, prepare_write, write_keys
from chronik.errors import InvalidInputError
from chronik.events import ANY, ExpectedVersion
from chronik.lifecycle import (
    REPAIRS_STREAM,
    DeleteMode,
    DeleteResult,
    RepairRecord,
    ScavengeResult,
    StreamMetadata,
    archive_mode,
    archive_record,
    check_metadata_target,
    check_repairable,
    decide_delete,
    deletion_event,
    max_age_micros,
    repair_event_record,
    replace_record,
    scavenge_below,
)
from chronik.stores.sqlite import sql
from chronik.stores.sqlite.writing import Writer

__all__ = ["archive", "delete", "metadata_of", "repair", "scavenge", "set_metadata", "vacuum"]

_INCREMENTAL = 2  # PRAGMA auto_vacuum: 0 NONE, 1 FULL, 2 INCREMENTAL


def _now_us() -> int:
    return time.time_ns() // 1000


def _state(conn: sqlite3.Connection, stream_id: str) -> tuple[int, Any]:
    version, mode = conn.execute(sql.STREAM_STATE, (stream_id,)).fetchone()
    return version or 0, mode


def metadata_of(conn: sqlite3.Connection, stream_id: str) -> tuple[DeleteMode | None, StreamMetadata]:
    """The stream's deletion (None: live) and metadata, as stored."""
    row = conn.execute(sql.STREAM_METADATA, (stream_id,)).fetchone()
    if row is None:
        return None, StreamMetadata()
    mode, max_count, max_age, truncate_before = row
    age = None if max_age is None else timedelta(microseconds=max_age)
    return mode, StreamMetadata(max_count=max_count, max_age=age, truncate_before=truncate_before)


def _delete_as(
    writer: Writer, conn: sqlite3.Connection, stream_id: str, mode: DeleteMode, version: int
) -> DeleteResult:
    codec = writer.codec
    marker = prepare_write(codec, stream_id, [deletion_event(mode, version)], ANY)
    appended = writer.append_hooked(conn, [marker], careful=True, system=True)[0]
    # The deletion event is hidden too: an append after a soft delete shows alone.
    conn.execute(sql.SET_DELETED, (stream_id, mode, appended.version + 1, _now_us()))
    if mode == "hard":
        conn.execute(sql.REMOVE_TAGS_BELOW, (stream_id, appended.version))
        conn.execute(sql.REMOVE_BELOW, (stream_id, appended.version))
    conn.execute(sql.DELETE_SNAPSHOT, (stream_id,))
    return DeleteResult(stream_id, mode, appended.version, appended.position, appended.checkpoint)


def delete(writer: Writer, stream_id: str, expected: ExpectedVersion, hard: bool) -> DeleteResult:
    with writer.write() as conn:
        version, mode = _state(conn, stream_id)
        new = decide_delete(stream_id, expected, version, mode, hard=hard)
        if new is None:
            return DeleteResult(stream_id, mode or ("hard" if hard else "soft"))
        return _delete_as(writer, conn, stream_id, new, version)


def set_metadata(writer: Writer, stream_id: str, metadata: StreamMetadata) -> None:
    with writer.write() as conn:
        mode, _ = metadata_of(conn, stream_id)
        check_metadata_target(stream_id, mode)
        params = (
            stream_id,
            metadata.max_count,
            max_age_micros(metadata),
            metadata.truncate_before,
            _now_us(),
        )
        conn.execute(sql.SET_METADATA, params)
        conn.execute(sql.FORGET_EMPTY, (stream_id,))


def scavenge(writer: Writer) -> ScavengeResult:
    """Remove what deletes and metadata hide, then vacuum (see the module's docstring)."""
    events = streams = 0
    now = _now_us()
    with writer.write() as conn:
        for stream_id, mode, max_count, max_age, truncate_before, last in conn.execute(
            sql.SCAVENGE_STREAMS
        ).fetchall():
            if not last:
                continue
            if mode is not None:  # a deleted stream keeps only its deletion event
                below, cutoff = last, -1
            else:
                kept = StreamMetadata(max_count=max_count, truncate_before=truncate_before)
                below = scavenge_below(kept, last)
                cutoff = -1 if max_age is None else now - max_age
            params = (stream_id, last, below, cutoff)
            conn.execute(sql.SCAVENGE_TAGS, params)
            removed = conn.execute(sql.SCAVENGE_EVENTS, params).rowcount
            if removed > 0:
                events += removed
                streams += 1
    vacuum(writer)  # also what hard deletes and repairs freed since the last scavenge
    return ScavengeResult(events, streams)


def vacuum(writer: Writer) -> None:
    """Give the free pages back to the file system, and truncate the write-ahead log."""
    connections = writer.connections
    conn = writer.connection()
    with connections.locked(), connections.errors():
        if not conn.execute(sql.FREE_PAGES).fetchone()[0]:
            pass  # no page to give back (the removed events shared pages with others)
        elif conn.execute(sql.AUTO_VACUUM).fetchone()[0] == _INCREMENTAL:
            # As a script: the pragma frees one page per step, and execute() steps once.
            conn.executescript(sql.INCREMENTAL_VACUUM)
        else:
            conn.execute(sql.SET_INCREMENTAL_VACUUM)
            conn.execute(sql.VACUUM)  # converts the file; incremental from then on
        # Copies of the pages, old contents included, are in the write-ahead log until
        # it is checkpointed; truncated, it holds nothing (readers may delay that).
        conn.execute(sql.CHECKPOINT_WAL).fetchall()


def repair(
    writer: Writer, stream_id: str, version: int, event: object, reason: str, operator: str
) -> RepairRecord:
    codec: Codec = writer.codec
    keys = write_keys(codec, [[event]])  # before the write lock, as an append's
    with writer.write() as conn:
        row = conn.execute(sql.EVENT_AT, (stream_id, version)).fetchone()
        if row is None:
            raise InvalidInputError(f"stream {stream_id!r} has no stored event at version {version}")
        position, event_id, type_, schema_version, data, metadata, tags = row
        check_repairable(stream_id, version, type_)
        old_id = uuid.UUID(bytes=event_id)
        kept_tags: tuple[str, ...] = () if not tags else tuple(msgspec.json.decode(tags))
        new = prepare_replacement(
            codec, stream_id, event, event_id=old_id, metadata=metadata, tags=kept_tags, keys=keys
        )
        record = replace_record(
            stream_id=stream_id,
            version=version,
            position=position,
            event_id=old_id,
            old=(type_, schema_version, data, metadata),
            new=(new.type, new.schema_version, new.data, new.metadata),
            reason=reason,
            operator=operator,
        )
        new_metadata = None if new.metadata is None else new.metadata.decode()
        conn.execute(
            sql.REPLACE_EVENT, (position, new.type, new.schema_version, new.data.decode(), new_metadata)
        )
        conn.execute(sql.DELETE_SNAPSHOT, (stream_id,))
        _audit(writer, conn, record)
    return record


def archive(
    writer: Writer, stream_id: str, expected: ExpectedVersion, reason: str, operator: str
) -> RepairRecord:
    with writer.write() as conn:
        version, mode = _state(conn, stream_id)
        archive_mode(stream_id, expected, version, mode)
        rows = conn.execute(sql.STREAM_EVENTS, (stream_id,)).fetchall()
        record = archive_record(
            stream_id=stream_id,
            version=version,
            position=rows[-1][0],
            events=((type_, data, metadata) for _, type_, data, metadata in rows),
            reason=reason,
            operator=operator,
        )
        _delete_as(writer, conn, stream_id, "archived", version)
        _audit(writer, conn, record)
    return record


def _audit(writer: Writer, conn: sqlite3.Connection, record: RepairRecord) -> None:
    audit = prepare_write(writer.codec, REPAIRS_STREAM, [repair_event_record(record)], ANY)
    writer.append_hooked(conn, [audit], careful=True, system=True)
