"""Deleting, retaining and repairing on PostgreSQL (the rules are ``chronik.lifecycle``'s).

Written for asyncio; ``_sync/lifecycle.py`` is generated from this file by
``tools/unasync.py``.

A stream's state is in its ``streams`` row (migration 0005). Each operation is one
transaction on a pooled connection, through :class:`AsyncPostgresTransaction`, so
its deletion event or audit record runs the store's append hooks and takes the same
locks as any append.

Why a delete cannot slip past a concurrent append (or the reverse). Nothing is
locked up front: the delete reads the stream's version N and state, decides, and
appends its deletion event at N+1 with the real version pinned (the system variant
of the append statement). An append that read N too inserts N+1 as well, and the
unique key on (stream_id, version) lets one of them through; the other re-reads and
decides again, seeing the winner (an append finds the stream deleted, so at version
0 for its expected version; a delete finds the new version). Only then are the
stream's state and, for a hard delete, its removed events written, in the same
transaction, whose row lock on the stream (taken by the append) is held until it
commits.

A scavenge is one ``DELETE`` (each stream's last event always stays) and then a
plain ``VACUUM`` of the events table (which also frees what hard deletes and repairs
left since the last one), which needs no lock that writers or readers
wait for: the space is free for new events at once, and handed back to the file
system where it is at the end of the table. ``VACUUM FULL`` (or ``pg_repack``)
returns all of it, but locks the table while it rewrites it: an operator's call,
not chronik's.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from chronik.backend import prepare_replacement, prepare_write, write_keys_async
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
from chronik.stores.postgres._async.connections import Conn, Connections
from chronik.stores.postgres._async.writing import AsyncPostgresTransaction, transaction
from chronik.stores.postgres._decide import MAX_APPEND_ATTEMPTS

__all__ = ["archive", "delete", "metadata_of", "repair", "scavenge", "set_metadata"]


async def _state(tx: AsyncPostgresTransaction, stream_id: str) -> tuple[int, Any]:
    cursor = await tx.connection.execute(tx.statements.stream_version, (stream_id,))
    row = await cursor.fetchone()
    return (0, None) if row is None else (row[0], row[1])


async def _delete_as(
    tx: AsyncPostgresTransaction, stream_id: str, mode: DeleteMode, version: int
) -> DeleteResult:
    """Append the deletion event with ``version`` pinned, then write the stream's state;
    ``WrongExpectedVersionError`` when another writer moved the stream first."""
    marker = prepare_write(tx.codec, stream_id, [deletion_event(mode, version)], version)
    appended = (await tx.append_prepared([marker], system=True))[0]
    conn, statements = tx.connection, tx.statements
    # The deletion event is hidden too: an append after a soft delete shows alone.
    state = {"stream_id": stream_id, "mode": mode, "truncate_before": appended.version + 1}
    await conn.execute(statements.set_deleted, state)
    if mode == "hard":
        await conn.execute(statements.remove_below, (stream_id, appended.version))
    await conn.execute(statements.delete_snapshot, (stream_id,))
    return DeleteResult(stream_id, mode, appended.version, appended.position, appended.checkpoint)


class _Moved(Exception):
    """The deletion event lost to a concurrent append: decide again on what it left."""


async def _delete_or_moved(
    tx: AsyncPostgresTransaction, stream_id: str, mode: DeleteMode, version: int
) -> DeleteResult:
    try:
        return await _delete_as(tx, stream_id, mode, version)
    except WrongExpectedVersionError as err:
        raise _Moved from err


async def delete(shared: Connections, stream_id: str, expected: ExpectedVersion, hard: bool) -> DeleteResult:
    for _ in range(MAX_APPEND_ATTEMPTS):
        try:
            async with transaction(shared) as tx:
                version, mode = await _state(tx, stream_id)
                new = decide_delete(stream_id, expected, version, mode, hard=hard)
                if new is None:
                    return DeleteResult(stream_id, mode or ("hard" if hard else "soft"))
                return await _delete_or_moved(tx, stream_id, new, version)
        except _Moved:
            continue  # rolled back; the caller's expected version is checked again
    raise _gave_up(stream_id)


def _gave_up(stream_id: str) -> OperationalError:
    return OperationalError(
        f"deleting stream {stream_id!r} gave up after {MAX_APPEND_ATTEMPTS} attempts: other writers "
        "kept appending to it",
        transient=True,
    )


async def metadata_of(
    conn: Conn, statements: Any, stream_id: str
) -> tuple[DeleteMode | None, StreamMetadata]:
    cursor = await conn.execute(statements.stream_metadata, (stream_id,))
    row = await cursor.fetchone()
    if row is None:
        return None, StreamMetadata()
    mode, max_count, max_age, truncate_before = row
    age = None if max_age is None else timedelta(microseconds=max_age)
    return mode, StreamMetadata(max_count=max_count, max_age=age, truncate_before=truncate_before)


async def set_metadata(shared: Connections, stream_id: str, metadata: StreamMetadata) -> None:
    async with transaction(shared) as tx:
        mode, _ = await metadata_of(tx.connection, tx.statements, stream_id)
        check_metadata_target(stream_id, mode)
        params = {
            "stream_id": stream_id,
            "category": category_of(stream_id),
            "max_count": metadata.max_count,
            "max_age": max_age_micros(metadata),
            "truncate_before": metadata.truncate_before,
        }
        await tx.connection.execute(tx.statements.set_metadata, params)


async def scavenge(shared: Connections) -> ScavengeResult:
    """Remove what deletes and metadata hide, then vacuum (see the module's docstring)."""
    statements = shared.statements

    async def op(conn: Conn) -> ScavengeResult:
        cursor = await conn.execute(statements.scavenge)
        row = await cursor.fetchone()
        assert row is not None
        events, streams = row
        # Also what hard deletes and repairs left behind since the last one. Autocommit
        # (the pool's connections are): VACUUM refuses a transaction block.
        await conn.execute(statements.vacuum)
        return ScavengeResult(events, streams)

    return await shared.run(op)


async def repair(
    shared: Connections, stream_id: str, version: int, event: object, reason: str, operator: str
) -> RepairRecord:
    keys = await write_keys_async(shared.codec, [[event]])
    async with transaction(shared) as tx:
        conn, statements = tx.connection, tx.statements
        cursor = await conn.execute(statements.event_at, (stream_id, version))
        row = await cursor.fetchone()
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
        await conn.execute(statements.replace_event, params)
        await conn.execute(statements.delete_snapshot, (stream_id,))
        await _audit(tx, record)
    return record


async def archive(
    shared: Connections, stream_id: str, expected: ExpectedVersion, reason: str, operator: str
) -> RepairRecord:
    for _ in range(MAX_APPEND_ATTEMPTS):
        try:
            async with transaction(shared) as tx:
                version, mode = await _state(tx, stream_id)
                archive_mode(stream_id, expected, version, mode)
                cursor = await tx.connection.execute(tx.statements.stream_events, (stream_id,))
                rows = await cursor.fetchall()
                record = archive_record(
                    stream_id=stream_id,
                    version=version,
                    position=rows[-1][0],
                    events=((type_, data, metadata) for _, type_, data, metadata in rows),
                    reason=reason,
                    operator=operator,
                )
                await _delete_or_moved(tx, stream_id, "archived", version)
                await _audit(tx, record)
                return record
        except _Moved:
            continue
    raise _gave_up(stream_id)


async def _audit(tx: AsyncPostgresTransaction, record: RepairRecord) -> None:
    audit = prepare_write(tx.codec, REPAIRS_STREAM, [repair_event_record(record)], ANY)
    await tx.append_prepared([audit], system=True)
