"""Deleting, retaining and repairing on the sync PostgreSQL store.

GENERATED from ``_async/lifecycle.py`` by ``tools/unasync.py``: do not edit; edit
the async module and run the script. The design is described there.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from chronik.backend import prepare_replacement, prepare_write, write_keys
from chronik.errors import InvalidInputError, OperationalError, WrongExpectedVersionError
from chronik.events import ANY, ExpectedVersion, category_of
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
)
from chronik.stores.postgres._decide import MAX_APPEND_ATTEMPTS
from chronik.stores.postgres._sync.connections import Conn, Connections
from chronik.stores.postgres._sync.writing import PostgresTransaction, transaction

__all__ = ["archive", "delete", "metadata_of", "repair", "scavenge", "set_metadata"]


def _state(tx: PostgresTransaction, stream_id: str) -> tuple[int, Any]:
    cursor = tx.connection.execute(tx.statements.stream_version, (stream_id,))
    row = cursor.fetchone()
    return (0, None) if row is None else (row[0], row[1])


def _delete_as(tx: PostgresTransaction, stream_id: str, mode: DeleteMode, version: int) -> DeleteResult:
    """Append the deletion event with ``version`` pinned, then write the stream's state;
    ``WrongExpectedVersionError`` when another writer moved the stream first."""
    marker = prepare_write(tx.codec, stream_id, [deletion_event(mode, version)], version)
    appended = (tx.append_prepared([marker], system=True))[0]
    conn, statements = tx.connection, tx.statements
    # The deletion event is hidden too: an append after a soft delete shows alone.
    state = {"stream_id": stream_id, "mode": mode, "truncate_before": appended.version + 1}
    conn.execute(statements.set_deleted, state)
    if mode == "hard":
        conn.execute(statements.remove_below, (stream_id, appended.version))
    conn.execute(statements.delete_snapshot, (stream_id,))
    return DeleteResult(stream_id, mode, appended.version, appended.position, appended.checkpoint)


class _Moved(Exception):
    """The deletion event lost to a concurrent append: decide again on what it left."""


def _delete_or_moved(tx: PostgresTransaction, stream_id: str, mode: DeleteMode, version: int) -> DeleteResult:
    try:
        return _delete_as(tx, stream_id, mode, version)
    except WrongExpectedVersionError as err:
        raise _Moved from err


def delete(shared: Connections, stream_id: str, expected: ExpectedVersion, hard: bool) -> DeleteResult:
    for _ in range(MAX_APPEND_ATTEMPTS):
        try:
            with transaction(shared) as tx:
                version, mode = _state(tx, stream_id)
                new = decide_delete(stream_id, expected, version, mode, hard=hard)
                if new is None:
                    return DeleteResult(stream_id, mode or ("hard" if hard else "soft"))
                return _delete_or_moved(tx, stream_id, new, version)
        except _Moved:
            continue  # rolled back; the caller's expected version is checked again
    raise _gave_up(stream_id)


def _gave_up(stream_id: str) -> OperationalError:
    return OperationalError(
        f"deleting stream {stream_id!r} gave up after {MAX_APPEND_ATTEMPTS} attempts: other writers "
        "kept appending to it",
        transient=True,
    )


def metadata_of(conn: Conn, statements: Any, stream_id: str) -> tuple[DeleteMode | None, StreamMetadata]:
    cursor = conn.execute(statements.stream_metadata, (stream_id,))
    row = cursor.fetchone()
    if row is None:
        return None, StreamMetadata()
    mode, max_count, max_age, truncate_before = row
    age = None if max_age is None else timedelta(microseconds=max_age)
    return mode, StreamMetadata(max_count=max_count, max_age=age, truncate_before=truncate_before)


def set_metadata(shared: Connections, stream_id: str, metadata: StreamMetadata) -> None:
    with transaction(shared) as tx:
        mode, _ = metadata_of(tx.connection, tx.statements, stream_id)
        check_metadata_target(stream_id, mode)
        params = {
            "stream_id": stream_id,
            "category": category_of(stream_id),
            "max_count": metadata.max_count,
            "max_age": max_age_micros(metadata),
            "truncate_before": metadata.truncate_before,
        }
        tx.connection.execute(tx.statements.set_metadata, params)


def scavenge(shared: Connections) -> ScavengeResult:
    """Remove what deletes and metadata hide, then vacuum (see the module's docstring)."""
    statements = shared.statements

    def op(conn: Conn) -> ScavengeResult:
        cursor = conn.execute(statements.scavenge)
        row = cursor.fetchone()
        assert row is not None
        events, streams = row
        # Also what hard deletes and repairs left behind since the last one. Autocommit
        # (the pool's connections are): VACUUM refuses a transaction block.
        conn.execute(statements.vacuum)
        return ScavengeResult(events, streams)

    return shared.run(op)


def repair(
    shared: Connections, stream_id: str, version: int, event: object, reason: str, operator: str
) -> RepairRecord:
    keys = write_keys(shared.codec, [[event]])
    with transaction(shared) as tx:
        conn, statements = tx.connection, tx.statements
        cursor = conn.execute(statements.event_at, (stream_id, version))
        row = cursor.fetchone()
        if row is None:
            raise InvalidInputError(f"stream {stream_id!r} has no stored event at version {version}")
        position, event_id, type_, schema_version, data, metadata, tags = row
        check_repairable(stream_id, version, type_)
        old_id = event_id if isinstance(event_id, uuid.UUID) else uuid.UUID(str(event_id))
        new = prepare_replacement(
            tx.codec, stream_id, event, event_id=old_id, metadata=metadata, tags=tags, keys=keys
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
        params = {
            "position": position,
            "type": new.type,
            "schema_version": new.schema_version,
            "data": new.data.decode(),
            "metadata": None if new.metadata is None else new.metadata.decode(),
        }
        conn.execute(statements.replace_event, params)
        conn.execute(statements.delete_snapshot, (stream_id,))
        _audit(tx, record)
    return record


def archive(
    shared: Connections, stream_id: str, expected: ExpectedVersion, reason: str, operator: str
) -> RepairRecord:
    for _ in range(MAX_APPEND_ATTEMPTS):
        try:
            with transaction(shared) as tx:
                version, mode = _state(tx, stream_id)
                archive_mode(stream_id, expected, version, mode)
                cursor = tx.connection.execute(tx.statements.stream_events, (stream_id,))
                rows = cursor.fetchall()
                record = archive_record(
                    stream_id=stream_id,
                    version=version,
                    position=rows[-1][0],
                    events=((type_, data, metadata) for _, type_, data, metadata in rows),
                    reason=reason,
                    operator=operator,
                )
                _delete_or_moved(tx, stream_id, "archived", version)
                _audit(tx, record)
                return record
        except _Moved:
            continue
    raise _gave_up(stream_id)


def _audit(tx: PostgresTransaction, record: RepairRecord) -> None:
    audit = prepare_write(tx.codec, REPAIRS_STREAM, [repair_event_record(record)], ANY)
    tx.append_prepared([audit], system=True)
