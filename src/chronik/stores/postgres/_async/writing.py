"""Appending to a PostgreSQL store: the fast path, the careful path, and transactions.

Written for asyncio; ``_sync/writing.py`` is generated from this file by
``tools/unasync.py`` (see the package's docstring).

An append is one statement when nothing is in the way (``append_writes``); when
that statement did not go through, the careful path reads what is stored, decides
like the memory store (``_decide.py``) and tries again. A store with append hooks
runs every append in a transaction of its own that holds the inline lock
(``projection_state.py`` explains how inline projections stay in step with the
log). Snapshots and checkpoints are written here too, on one connection.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

import psycopg

from chronik.backend import (
    AsyncAppendHook,
    Codec,
    LogPage,
    PreparedWrite,
    append_many_events,
    appending,
    check_named,
    named_statement,
    prepare_write,
    prepare_writes,
    to_pyformat,
    unlock_events_async,
    validate_checkpoint_name,
    validate_read_stream,
    write_keys_async,
)
from chronik.errors import InvalidCheckpointError, OperationalError
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
from chronik.query import event_keys, lock_keys
from chronik.stores.postgres import sql
from chronik.stores.postgres._async import projection_state
from chronik.stores.postgres._async.connections import Conn, Connections
from chronik.stores.postgres._async.reader import read_page
from chronik.stores.postgres._common import (
    KIND,
    MAX_VERSION,
    SYSTEM,
    checkpoint_start,
    on_a_standby,
    record,
    translate,
)
from chronik.stores.postgres._decide import (
    MAX_APPEND_ATTEMPTS,
    Found,
    OutOfOrderError,
    append_statement,
    check_order,
    decide,
    finish,
)

if TYPE_CHECKING:
    from psycopg.abc import Params, QueryNoTemplate

__all__ = [
    "AsyncPostgresTransaction",
    "append_writes",
    "checkpoint_params",
    "commit",
    "delete_checkpoint",
    "install_hook",
    "load_checkpoint",
    "load_snapshot",
    "lock_shared",
    "save_checkpoint",
    "save_snapshot",
    "snapshot_params",
    "tag_lock_keys",
    "transaction",
]


def tag_lock_keys(writes: Sequence[PreparedWrite]) -> list[str]:
    """The DCB lock keys the tagged events of ``writes`` are covered by (none for
    untagged events: see ``dcb.py``), in the order every writer takes them."""
    keys: set[tuple[str, str]] = set()
    for write in writes:
        for event in write.events:
            if event.tags:
                keys |= event_keys(event.type, event.tags)
    return lock_keys(keys) if keys else []


async def lock_shared(conn: Conn, statements: sql.Statements, keys: list[str]) -> None:
    """Take ``keys`` as shared DCB locks until the transaction ends (``dcb.py``)."""
    await conn.execute(statements.dcb_lock, {"keys": keys, "exclusive": [False] * len(keys)})


async def commit(shared: Connections, writes: list[PreparedWrite]) -> list[AppendResult]:
    """Append ``writes`` on a pooled connection, all or nothing; wakes readers."""
    statements = shared.statements
    keys = tag_lock_keys(writes)

    async def op(conn: Conn) -> list[AppendResult]:
        if keys:
            # Tagged events: their DCB keys are held until the commit, so that a
            # decision on them waits for this append (dcb.py), hence a transaction.
            async with conn.transaction():
                await lock_shared(conn, statements, keys)
                return await append_writes(conn, statements, writes, nested=True)
        return await append_writes(conn, statements, writes, nested=False)

    async def hooked(conn: Conn) -> list[AppendResult]:
        for attempt in range(MAX_APPEND_ATTEMPTS):
            try:
                async with conn.transaction():
                    return await AsyncPostgresTransaction(shared, conn, fresh=True).append_prepared(writes)
            except OutOfOrderError:
                # A writer without the hooks appended to a stream of ours while
                # this waited for older writers (projection_state.py, point 4).
                if attempt == MAX_APPEND_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")

    results = await shared.run(hooked if shared.hooks else op)
    shared.poke()
    return results


@asynccontextmanager
async def transaction(shared: Connections) -> AsyncIterator[AsyncPostgresTransaction]:
    """A transaction on a pooled connection (the store's ``transaction()``)."""
    pool = await shared.ready()
    appended = False
    try:
        async with pool.connection() as conn:
            try:
                async with conn.transaction():
                    tx = AsyncPostgresTransaction(shared, conn, fresh=False)
                    yield tx
                    appended = tx.appended
            except Exception as err:
                if on_a_standby(err):
                    await conn.close()  # the pool discards it (see on_a_standby)
                raise
    except psycopg.Error as err:
        raise translate(err, shared.where) from err
    if appended:
        shared.poke()


async def install_hook(shared: Connections, hook: AsyncAppendHook) -> None:
    """Run ``hook.installed`` in a transaction holding the inline lock, then install it."""
    statements, timeout = shared.statements, shared.config.visibility_timeout

    async def op(conn: Conn) -> None:
        async with conn.transaction():
            await projection_state.enter_inline(
                conn, statements, fresh=True, timeout=timeout, where=shared.where
            )
            await hook.installed(AsyncPostgresTransaction(shared, conn, inline=True))

    await shared.run(op)
    shared.hooks = {**shared.hooks, hook.name: hook}


class AsyncPostgresTransaction:
    """An open transaction on a PostgreSQL store (see ``transaction()``).

    ``connection`` is the psycopg connection, for anything the methods here lack.
    ``paramstyle`` (DB-API's name) is psycopg's own placeholder style, ``%s``;
    named parameters (``:name`` with a dict) work too, and unchanged on SQLite.
    """

    paramstyle: Final = "format"

    def __init__(
        self, shared: Connections, connection: Conn, *, fresh: bool = False, inline: bool = False
    ) -> None:
        self.connection = connection
        self.appended = False
        self._shared = shared
        self._statements = shared.statements
        self._fresh = fresh  # nothing has run in the transaction yet
        self._inline = inline  # holds the inline lock (projection_state.py)
        self._handed = 0  # the last position of its own given to the hooks

    @property
    def statements(self) -> sql.Statements:
        """The store's statements (chronik's own code runs them in the transaction)."""
        return self._statements

    @property
    def codec(self) -> Codec:
        return self._shared.codec

    async def execute(
        self, statement: QueryNoTemplate, parameters: Params | None = None
    ) -> psycopg.AsyncCursor[Any]:
        """Run your own SQL (a read model's writes) in this transaction.

        ``:name`` parameters with a dict run unchanged on PostgreSQL and SQLite (the
        statement is rewritten to psycopg's ``%(name)s``: see ``chronik._params``);
        ``%s`` with a sequence, and ``%(name)s`` with a dict, are psycopg's own.
        """
        if isinstance(parameters, Mapping) and isinstance(statement, str):
            statement = to_pyformat(statement, parameters)
        return await self.connection.execute(statement, parameters)

    async def executemany(
        self, statement: QueryNoTemplate, parameters: Iterable[Params]
    ) -> psycopg.AsyncCursor[Any]:
        """``execute`` once per set of parameters (``:name`` with dicts, or ``%s``)."""
        rows = parameters if isinstance(parameters, (list, tuple)) else list(parameters)
        if isinstance(statement, str) and rows and isinstance(rows[0], Mapping):
            named = named_statement(statement)
            if named.names:
                for row in rows:
                    check_named(named.names, row if isinstance(row, Mapping) else {}, statement)
                statement = named.pyformat
        cursor = self.connection.cursor()
        await cursor.executemany(statement, rows)
        return cursor

    async def append(
        self, stream_id: str, events: Sequence[object], expected_version: ExpectedVersion = ANY
    ) -> AppendResult:
        """Append in this transaction; it commits with everything else or not at all."""
        with appending(SYSTEM, "append", stream_id, expected_version, events) as span:
            codec = self._shared.codec
            keys = await write_keys_async(codec, [events], self._shared.keys_on(self.connection))
            prepared = [prepare_write(codec, stream_id, events, expected_version, keys)]
            return span.done((await self.append_prepared(prepared))[0])

    async def append_many(self, writes: Sequence[StreamWrite]) -> list[AppendResult]:
        with appending(SYSTEM, "append_many", events=append_many_events(writes)) as span:
            codec = self._shared.codec
            keys = await write_keys_async(codec, writes, self._shared.keys_on(self.connection))
            return span.done(await self.append_prepared(prepare_writes(codec, writes, keys)))

    async def append_prepared(
        self, writes: list[PreparedWrite], *, locked: bool = False, system: bool = False
    ) -> list[AppendResult]:
        """Append checked writes, running the store's append hooks if it has any.

        Tagged events take their DCB keys first (shared, until the transaction
        ends), before the inline lock as ``append_if`` does; ``locked``: the caller
        (``dcb.append_if``) holds them already.
        """
        shared, conn, statements = self._shared, self.connection, self._statements
        hooks = shared.hooks
        if not locked:
            keys = tag_lock_keys(writes)
            if keys:
                await lock_shared(conn, statements, keys)  # assigns no transaction id
        if hooks and not self._inline:
            timeout = shared.config.visibility_timeout
            await projection_state.enter_inline(
                conn, statements, fresh=self._fresh, timeout=timeout, where=shared.where
            )
            self._inline = True
        self._fresh = False
        results = await append_writes(conn, statements, writes, nested=True, system=system)
        self.appended = True
        if hooks:
            # Everything it wrote since the hooks last ran, even by appends made
            # before they were installed: the checkpoint is about to pass those too.
            events = await projection_state.own_events(conn, statements, shared.codec, self._handed)
            await unlock_events_async(shared.codec, events, shared.keys_on(conn))
            if events:
                self._handed = events[-1].position
                for hook in hooks.values():
                    await hook.appended(self, events)
        return results

    async def read_stream(
        self, stream_id: str, from_version: int = 1, to_version: int | None = None
    ) -> list[RecordedEvent]:
        """Read a stream as this transaction sees it, its own appends included."""
        stream_id, from_version, to_version, _ = validate_read_stream(
            stream_id, from_version, to_version, None
        )
        params = {
            "stream_id": stream_id,
            "from_version": from_version,
            "to_version": MAX_VERSION if to_version is None else to_version,
            "limit": None,
        }
        cursor = await self.connection.execute(self._statements.read_stream_forward, params, binary=True)
        codec = self._shared.codec
        events = [record(row, codec) for row in await cursor.fetchall()]
        await unlock_events_async(codec, events, self._shared.keys_on(self.connection))
        return events

    async def read_page(
        self,
        after: Checkpoint | None,
        size: int,
        categories: tuple[str, ...] | None,
        types: tuple[str, ...] | None,
    ) -> LogPage:
        """A page of the final log as this transaction sees it (as ``LogReader.read_page``)."""
        codec = self._shared.codec
        page = await read_page(self.connection, self._statements, codec, after, size, categories, types)
        await unlock_events_async(codec, page.events, self._shared.keys_on(self.connection))
        return page

    async def save_checkpoint(self, name: str, checkpoint: Checkpoint) -> None:
        await self.connection.execute(self._statements.save_checkpoint, checkpoint_params(name, checkpoint))

    async def delete_checkpoint(self, name: str) -> None:
        validate_checkpoint_name(name)
        await self.connection.execute(self._statements.delete_checkpoint, (name,))

    async def load_checkpoint(self, name: str) -> Checkpoint | None:
        validate_checkpoint_name(name)
        return await load_checkpoint(self.connection, self._statements, name)

    async def save_snapshot(self, snapshot: Snapshot) -> None:
        await self.connection.execute(self._statements.save_snapshot, snapshot_params(snapshot))

    async def load_snapshot(self, stream_id: str) -> Snapshot | None:
        return await load_snapshot(self.connection, self._statements, validate_stream_id(stream_id))

    async def save_projection_state(self, state: ProjectionState) -> None:
        await projection_state.save_projection_state(self.connection, self._statements, state)

    async def projection_states(self, name: str | None = None) -> list[ProjectionState]:
        return await projection_state.projection_states(self.connection, self._statements, name)

    async def delete_projection_state(self, name: str, version: int) -> None:
        await projection_state.delete_projection_state(self.connection, self._statements, name, version)

    async def park_event(self, letter: DeadLetter) -> None:
        await projection_state.park_event(self.connection, self._statements, letter)

    async def dead_letters(self, projection: str | None = None) -> list[DeadLetter]:
        return await projection_state.dead_letters(self.connection, self._statements, projection)

    async def delete_dead_letter(self, projection: str, version: int, position: int) -> None:
        await projection_state.delete_dead_letter(
            self.connection, self._statements, projection, version, position
        )


async def append_writes(
    conn: Conn,
    statements: sql.Statements,
    writes: Sequence[PreparedWrite],
    *,
    nested: bool,
    system: bool = False,
) -> list[AppendResult]:
    """Append ``writes``: one statement when nothing is in the way, else decide carefully.

    The careful way reads which event ids are stored and where each stream stands,
    decides like the memory store (``decide``), and inserts what is left with the
    versions it read pinned; if a concurrent writer moved one meanwhile, it reads
    and decides again. ``nested``: inside a caller's transaction, so every attempt
    gets a savepoint and a failed one leaves that transaction usable.
    """
    rows = await _try_append(conn, statements, writes, None, nested=nested, system=system)
    if rows is not None:
        done = finish(writes, rows)
        if done is not None:
            return done
    for _ in range(MAX_APPEND_ATTEMPTS):
        found, versions = await _lookup(conn, statements, writes)
        results, plan, pinned = decide(writes, found, versions, system=system)
        if plan:
            todo = [writes[i] for i in plan]
            rows = await _try_append(conn, statements, todo, pinned, nested=nested, system=system)
            if rows is None:
                continue  # a unique violation: another writer got there first
            done = finish(todo, rows)
            if done is None:
                check_order(todo, rows)
                continue  # a version moved between reading it and writing
            for index, result in zip(plan, done, strict=True):
                results[index] = result
        return [r for r in results if r is not None]
    raise OperationalError(
        f"append gave up after {MAX_APPEND_ATTEMPTS} attempts: other writers kept taking the "
        "versions it read",
        transient=True,
    )


async def _try_append(
    conn: Conn,
    statements: sql.Statements,
    writes: Sequence[PreparedWrite],
    pinned: Sequence[int] | None,
    *,
    nested: bool,
    system: bool = False,
) -> list[tuple[Any, ...]] | None:
    """Run the append statement; None when a unique key (or a deadlock) stopped it."""
    statement, params = append_statement(statements, writes, pinned, system=system)
    try:
        if nested:
            async with conn.transaction():
                cursor = await conn.execute(statement, params)
                return await cursor.fetchall()
        cursor = await conn.execute(statement, params)
        return await cursor.fetchall()
    except (
        psycopg.errors.UniqueViolation,
        psycopg.errors.DeadlockDetected,
        psycopg.errors.SerializationFailure,
    ):
        # 23505 on (stream_id, version): a concurrent writer took the version we
        # read; on event_id: some id is stored (or being stored) already. 40P01: two
        # multi-stream appends locked the same streams in opposite orders and this
        # one was rolled back. 40001: the same race, seen by a server whose default
        # isolation is stricter than READ COMMITTED. In every case nothing of this
        # attempt remains, and deciding again from fresh state is right.
        return None


async def _lookup(
    conn: Conn, statements: sql.Statements, writes: Sequence[PreparedWrite]
) -> tuple[dict[uuid.UUID, Found], dict[str, tuple[int, str | None]]]:
    ids = [e.event_id for w in writes for e in w.events]
    cursor = await conn.execute(statements.find_event_ids, (ids,))
    found = {row[0]: Found(row[1], row[2], row[3], row[4]) for row in await cursor.fetchall()}
    cursor = await conn.execute(statements.stream_versions, ([w.stream_id for w in writes],))
    versions = {row[0]: (row[1], row[2]) for row in await cursor.fetchall()}
    return found, versions


# -- snapshots and checkpoints, on one connection --------------------------------------


def snapshot_params(snapshot: Snapshot) -> tuple[Any, ...]:
    validate_stream_id(snapshot.stream_id)
    recorded = snapshot.recorded_at or datetime.now(UTC)
    return (
        snapshot.stream_id,
        snapshot.version,
        snapshot.type,
        snapshot.schema_version,
        bytes(snapshot.data),
        recorded,
    )


async def save_snapshot(conn: Conn, statements: sql.Statements, params: tuple[Any, ...]) -> None:
    """Store a snapshot (its ``snapshot_params``)."""
    await conn.execute(statements.save_snapshot, params)


async def load_snapshot(conn: Conn, statements: sql.Statements, stream_id: str) -> Snapshot | None:
    cursor = await conn.execute(statements.load_snapshot, (stream_id,))
    row = await cursor.fetchone()
    if row is None:
        return None
    return Snapshot(stream_id, row[0], row[1], row[2], bytes(row[3]), row[4].astimezone(UTC))


def checkpoint_params(name: str, checkpoint: Checkpoint) -> tuple[str, int, int]:
    validate_checkpoint_name(name)
    if not isinstance(checkpoint, Checkpoint):
        raise InvalidCheckpointError(f"checkpoint must be a Checkpoint, got {type(checkpoint).__name__}")
    xid, position = checkpoint_start(checkpoint)
    return (name, xid, position)


async def save_checkpoint(conn: Conn, statements: sql.Statements, params: tuple[str, int, int]) -> None:
    """Store a checkpoint (its ``checkpoint_params``)."""
    await conn.execute(statements.save_checkpoint, params)


async def delete_checkpoint(conn: Conn, statements: sql.Statements, name: str) -> None:
    await conn.execute(statements.delete_checkpoint, (name,))


async def load_checkpoint(conn: Conn, statements: sql.Statements, name: str) -> Checkpoint | None:
    cursor = await conn.execute(statements.load_checkpoint, (name,))
    row = await cursor.fetchone()
    return None if row is None else Checkpoint(KIND, (row[0], row[1]))
