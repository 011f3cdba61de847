"""The asyncio PostgreSQL event store, and the source of the sync one.

Logic is written once, here. ``store.py`` (the sync ``PostgresEventStore``) is
generated from this file by ``tools/unasync.py``, which turns
``async def``/``async with``/``async for``, awaits and the psycopg async classes
into their sync twins, the way psycopg generates its own sync code; a test fails
when the generated file is stale. So the sync store runs on psycopg's sync
``Connection`` and ``ConnectionPool`` without hopping threads, and this one on
``AsyncConnection`` and ``AsyncConnectionPool`` without a thread pool. What has no
I/O lives in ``_common.py``, the SQL in ``sql.py`` and ``migrations/``; projection
state and the machinery of inline projections (append hooks) in
``async_projections.py``, which explains how those stay in step with the log.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Concatenate, Final, ParamSpec, TypeAlias, TypeVar

import psycopg
from psycopg_pool import AsyncConnectionPool

from chronik._append import (
    PreparedWrite,
    normalize_filter,
    prepare_write,
    prepare_writes,
    validate_checkpoint_name,
    validate_limit,
    validate_read_stream,
)
from chronik._migrations import pending_migrations
from chronik.codec import Codec, EventRegistry
from chronik.errors import InvalidCheckpointError, InvalidInputError, OperationalError, StoreClosedError
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
from chronik.store import LogPage
from chronik.stores.postgres import async_projections, sql
from chronik.stores.postgres._common import (
    ADAPTERS,
    KIND,
    MAX_APPEND_ATTEMPTS,
    MAX_VERSION,
    MIGRATIONS,
    PAGE_SIZE,
    AsyncAppendHook,
    Found,
    OutOfOrderError,
    append_statement,
    check_order,
    checkpoint_start,
    connection_lost,
    decide,
    finish,
    record,
    translate,
)
from chronik.stores.postgres._config import parse_config
from chronik.stores.postgres._notify import AsyncNotifier
from chronik.stores.postgres.async_reader import AsyncPostgresLogReader, read_page
from chronik.stores.postgres.async_schema import applied_migrations, connect, prepare_schema
from chronik.subscriptions import AsyncSubscribes

if TYPE_CHECKING:
    from psycopg.abc import Params, QueryNoTemplate

__all__ = ["AsyncPostgresEventStore", "AsyncPostgresTransaction"]

T = TypeVar("T")
P = ParamSpec("P")
Conn: TypeAlias = psycopg.AsyncConnection[tuple[Any, ...]]
Filter = tuple[str, ...] | None


class AsyncPostgresEventStore(AsyncSubscribes):
    """An event store in a PostgreSQL schema, for many writers in many processes.

    Open it with ``chronik.connect_async("postgresql://...")``. It connects at its
    first use (or ``await store.open()``); bad URLs and options are refused at once.
    Live events wake subscriptions through LISTEN/NOTIFY, whichever process wrote
    them; a lost notification only delays an event, never skips it.
    """

    is_async: Final = True

    def __init__(self, url: str, registry: EventRegistry | None = None, **options: Any) -> None:
        config = parse_config(url, options)
        self.config = config
        self.schema = config.schema
        self.where = config.where
        self.codec = Codec(registry, max_event_size=config.max_event_size)
        self._sql = sql.statements(config.schema, config.channel)
        self._pool: AsyncConnectionPool[Conn] | None = None
        self._open_lock = asyncio.Lock()
        self._readers: set[AsyncPostgresLogReader] = set()
        self._notifier = AsyncNotifier(config.conninfo, config.channel) if config.notify else None
        self._hooks: dict[str, AsyncAppendHook] = {}
        self._closed = False

    # -- opening, connections --------------------------------------------------------

    async def open(self) -> None:
        """Connect, check the server and the schema, migrate if allowed, start the pool.

        Every check runs before anything is written: a server older than PostgreSQL
        13, a schema that is not chronik's or was migrated by a newer chronik, and
        pending migrations with ``migrate=False`` are each refused with a clear error.
        """
        async with self._open_lock:
            self._check_open()
            if self._pool is not None:
                return
            conn = await connect(self.config)
            try:
                await prepare_schema(conn, self.config)
            except psycopg.Error as err:
                raise translate(err, self.where) from err
            finally:
                await conn.close()
            pool: AsyncConnectionPool[Conn] = AsyncConnectionPool(
                self.config.conninfo,
                # Autocommit: each statement is its own transaction, and an append is
                # one statement. transaction() begins READ COMMITTED (_configure).
                kwargs={"autocommit": True, "context": ADAPTERS},
                configure=_configure,
                min_size=self.config.pool_min_size,
                max_size=self.config.pool_max_size,
                timeout=self.config.pool_timeout,
                name=f"chronik-{self.schema}",
                open=False,
            )
            await pool.open(wait=False)
            self._pool = pool

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosedError(f"the PostgreSQL store at {self.where} is closed")

    async def _ready(self) -> AsyncConnectionPool[Conn]:
        self._check_open()
        if self._pool is None:
            await self.open()
        pool = self._pool
        if pool is None:  # closed meanwhile
            raise StoreClosedError(f"the PostgreSQL store at {self.where} is closed")
        return pool

    async def _run(self, op: Callable[[Conn], Awaitable[T]]) -> T:
        """Run ``op`` on a pooled connection (autocommit: each statement commits).

        A connection that died (server restart, ``pg_terminate_backend``) is dropped
        by the pool and ``op`` goes again on another: every operation here is safe
        to repeat (appends because re-sent event ids are recognised). Other driver
        errors are translated here, at the boundary.
        """
        pool = self._pool if self._pool is not None and not self._closed else await self._ready()
        lost = 0
        while True:
            try:
                async with pool.connection() as conn:
                    return await op(conn)
            except psycopg.Error as err:
                if connection_lost(err) and lost < self.config.pool_max_size and not self._closed:
                    lost += 1
                    continue
                raise translate(err, self.where) from err

    def _poke(self) -> None:
        if self._notifier is not None:
            self._notifier.poke()

    async def check_schema(self) -> list[str]:
        """Names of the migrations this schema still needs; reads, never writes."""
        config = self.config

        async def op(conn: Conn) -> list[str]:
            return await applied_migrations(conn, config)

        applied = await self._run(op)
        return [m.name for m in pending_migrations(MIGRATIONS, applied, self.where)]

    # -- appending -------------------------------------------------------------------

    async def append(
        self, stream_id: str, events: Sequence[object], expected_version: ExpectedVersion = ANY
    ) -> AppendResult:
        """Append ``events`` to ``stream_id`` atomically if it is at ``expected_version``."""
        prepared = prepare_write(self.codec, stream_id, events, expected_version)
        return (await self._commit([prepared]))[0]

    async def append_many(self, writes: Sequence[StreamWrite]) -> list[AppendResult]:
        """Append to several streams in one transaction: all commit or none."""
        return await self._commit(prepare_writes(self.codec, writes))

    async def _commit(self, writes: list[PreparedWrite]) -> list[AppendResult]:
        statements = self._sql

        async def op(conn: Conn) -> list[AppendResult]:
            return await _append(conn, statements, writes, nested=False)

        async def hooked(conn: Conn) -> list[AppendResult]:
            for attempt in range(MAX_APPEND_ATTEMPTS):
                try:
                    async with conn.transaction():
                        return await AsyncPostgresTransaction(self, conn, fresh=True)._append(writes)
                except OutOfOrderError:
                    # A writer without the hooks appended to a stream of ours while
                    # this waited for older writers (async_projections.py, point 4).
                    if attempt == MAX_APPEND_ATTEMPTS - 1:
                        raise
            raise AssertionError("unreachable")

        results = await self._run(hooked if self._hooks else op)
        self._poke()
        return results

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncPostgresTransaction]:
        """A transaction for appends, checkpoints, snapshots and your own SQL, all or nothing.

        A read model kept in the same database commits with its checkpoint, so a
        crash can neither lose nor double an effect. It runs at READ COMMITTED. On a
        store with append hooks its first append takes the inline lock, held until
        it ends (see ``async_projections.py``).
        """
        pool = await self._ready()
        appended = False
        try:
            async with pool.connection() as conn, conn.transaction():
                tx = AsyncPostgresTransaction(self, conn, fresh=False)
                yield tx
                appended = tx.appended
        except psycopg.Error as err:
            raise translate(err, self.where) from err
        if appended:
            self._poke()

    # -- reading ---------------------------------------------------------------------

    async def read_stream(
        self,
        stream_id: str,
        from_version: int = 1,
        to_version: int | None = None,
        *,
        backwards: bool = False,
        limit: int | None = None,
    ) -> list[RecordedEvent]:
        """Events of one stream with ``from_version <= version <= to_version``."""
        stream_id, from_version, to_version, limit = validate_read_stream(
            stream_id, from_version, to_version, limit
        )
        statement = self._sql.read_stream_backward if backwards else self._sql.read_stream_forward
        params = (stream_id, from_version, MAX_VERSION if to_version is None else to_version, limit)
        return await self._records(statement, params)

    async def _records(self, statement: str, params: Params) -> list[RecordedEvent]:
        codec = self.codec

        async def op(conn: Conn) -> list[RecordedEvent]:
            cursor = await conn.execute(statement, params, binary=True)  # C loaders for every column
            return [record(row, codec) for row in await cursor.fetchall()]

        return await self._run(op)

    async def _fetch(self, statement: str, params: Params = ()) -> tuple[Any, ...]:
        """The first row of a statement that always returns one."""

        async def op(conn: Conn) -> tuple[Any, ...]:
            cursor = await conn.execute(statement, params)
            row = await cursor.fetchone()
            assert row is not None
            return row

        return await self._run(op)

    async def _value(self, statement: str, params: Params) -> Any:
        """The first column of the first row, or None when there is no row."""

        async def op(conn: Conn) -> Any:
            cursor = await conn.execute(statement, params)
            row = await cursor.fetchone()
            return None if row is None else row[0]

        return await self._run(op)

    def read_all(
        self,
        after: Checkpoint | None = None,
        *,
        categories: Iterable[str] | None = None,
        types: Iterable[str] | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[RecordedEvent]:
        """The global log after ``after`` in checkpoint order, fetched in pages.

        It returns every event committed before the call: when one is held back by
        an older transaction still running, the read waits for that transaction (at
        most ``visibility_timeout`` seconds, then it ends early; it never skips).
        """
        start = checkpoint_start(after)
        cats = normalize_filter(categories, "categories")
        kinds = normalize_filter(types, "types")
        checked = validate_limit(limit)
        self._check_open()
        return self._iter_all(start, cats, kinds, checked)

    async def _iter_all(
        self, start: tuple[int, int], cats: Filter, kinds: Filter, limit: int | None
    ) -> AsyncIterator[RecordedEvent]:
        after = start
        remaining = limit
        waited = False
        while remaining is None or remaining > 0:
            size = PAGE_SIZE if remaining is None else min(PAGE_SIZE, remaining)
            page = await self._page(after, size, cats, kinds)
            for event in page:
                yield event
            if page:
                last = page[-1].checkpoint.parts
                after = (last[0], last[1])
                if remaining is not None:
                    remaining -= len(page)
            if len(page) < size:
                # The end of the final part of the log. Events committed before now
                # may still be held back by an older transaction: wait for it once,
                # then read on, so a read sees every event committed before it.
                if waited or not await self._wait_released(after):
                    return
                waited = True

    async def _page(
        self, after: tuple[int, int], size: int, cats: Filter, kinds: Filter
    ) -> list[RecordedEvent]:
        if cats is None and kinds is None:
            return await self._records(self._sql.read_all, (after[0], after[1], size))
        params = {
            "xid": after[0],
            "position": after[1],
            "categories": None if cats is None else list(cats),
            "types": None if kinds is None else list(kinds),
            "limit": size,
        }
        return await self._records(self._sql.read_all_filtered, params)

    async def _wait_released(self, after: tuple[int, int]) -> bool:
        """At the end of the final log: whether to read once more, after waiting if need be.

        Events committed but held back by an older transaction still running are
        waited for (only transactions running now can hold events back, so this never
        waits for writers that start later), at most ``visibility_timeout`` seconds.
        Otherwise it is worth reading again when final events follow ``after``: they
        may have turned final since the last page. Both are judged from one snapshot,
        so an event that turns final between two looks is not missed.
        """
        timeout = self.config.visibility_timeout
        if timeout <= 0:
            return False
        readable, newest = await self._fetch(self._sql.log_state, {"xid": after[0], "position": after[1]})
        if newest is None:
            return bool(readable)
        deadline = time.monotonic() + timeout
        delay = 0.0005
        while not (await self._fetch(self._sql.released, (newest,)))[0]:
            if time.monotonic() >= deadline:
                return bool(readable)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)
        return True

    async def head(self) -> Checkpoint | None:
        """The checkpoint of the last event in the global log, None when empty."""
        await self._wait_released((0, 0))

        async def op(conn: Conn) -> Checkpoint | None:
            cursor = await conn.execute(self._sql.head)
            row = await cursor.fetchone()
            return None if row is None else Checkpoint(KIND, (row[0], row[1]))

        return await self._run(op)

    async def stream_info(self, stream_id: str) -> StreamInfo:
        """The stream's version; 0 (``exists`` False) when it has no events."""
        stream_id = validate_stream_id(stream_id)
        version = await self._value(self._sql.stream_version, (stream_id,))
        return StreamInfo(stream_id, 0 if version is None else version)

    async def list_streams(
        self, *, category: str | None = None, after: str | None = None, limit: int = 100
    ) -> list[StreamInfo]:
        """Streams ordered by id, after the id ``after``: pass the last id for the next page."""
        checked = validate_limit(limit)
        if checked is None:
            raise InvalidInputError("limit must be an int >= 0")
        if not isinstance(category, str | None) or not isinstance(after, str | None):
            raise InvalidInputError("category and after must be str or None")
        start = "" if after is None else after
        statement = self._sql.list_streams if category is None else self._sql.list_streams_in_category
        params = (start, checked) if category is None else (category, start, checked)

        async def op(conn: Conn) -> list[StreamInfo]:
            cursor = await conn.execute(statement, params)
            return [StreamInfo(s, v) for s, v in await cursor.fetchall()]

        return await self._run(op)

    # -- snapshots and checkpoints ---------------------------------------------------

    async def save_snapshot(self, snapshot: Snapshot) -> None:
        """Store ``snapshot``, replacing an older one of the same stream."""
        params = _snapshot_params(snapshot)

        async def op(conn: Conn) -> None:
            await conn.execute(self._sql.save_snapshot, params)

        await self._run(op)

    async def load_snapshot(self, stream_id: str) -> Snapshot | None:
        """The latest snapshot of ``stream_id``, if any."""
        stream_id = validate_stream_id(stream_id)

        async def op(conn: Conn) -> Snapshot | None:
            return await _load_snapshot(conn, self._sql, stream_id)

        return await self._run(op)

    async def save_checkpoint(self, name: str, checkpoint: Checkpoint) -> None:
        """Record that reader ``name`` has processed everything up to ``checkpoint``."""
        params = _checkpoint_params(name, checkpoint)

        async def op(conn: Conn) -> None:
            await conn.execute(self._sql.save_checkpoint, params)

        await self._run(op)

    async def delete_checkpoint(self, name: str) -> None:
        """Forget the checkpoint ``name`` (a reset reader starts from the beginning)."""
        validate_checkpoint_name(name)

        async def op(conn: Conn) -> None:
            await conn.execute(self._sql.delete_checkpoint, (name,))

        await self._run(op)

    async def load_checkpoint(self, name: str) -> Checkpoint | None:
        """Where reader ``name`` stands, or None if it never saved one."""
        validate_checkpoint_name(name)

        async def op(conn: Conn) -> Checkpoint | None:
            return await _load_checkpoint(conn, self._sql, name)

        return await self._run(op)

    # -- projection state (chronik.store.ProjectionStateStore) --------------------------

    async def _on(
        self,
        fn: Callable[Concatenate[Conn, sql.Statements, P], Awaitable[T]],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """``fn(conn, statements, ...)`` on a pooled connection, in a transaction of its own."""

        async def op(conn: Conn) -> T:
            return await fn(conn, self._sql, *args, **kwargs)

        return await self._run(op)

    async def save_projection_state(self, state: ProjectionState) -> None:
        """Store ``state``, replacing the one of the same name and version."""
        await self._on(async_projections.save_projection_state, state)

    async def projection_states(self, name: str | None = None) -> list[ProjectionState]:
        """States ordered by name and version, of one projection or of all."""
        return await self._on(async_projections.projection_states, name)

    async def delete_projection_state(self, name: str, version: int) -> None:
        """Forget one version of a projection: its state and its dead letters."""
        await self._on(async_projections.delete_projection_state, name, version)

    async def park_event(self, letter: DeadLetter) -> None:
        """Record a dead letter; parking the same event again changes nothing."""
        await self._on(async_projections.park_event, letter)

    async def dead_letters(self, projection: str | None = None) -> list[DeadLetter]:
        """Dead letters in the order they were parked, of one projection or of all."""
        return await self._on(async_projections.dead_letters, projection)

    # -- append hooks (inline projections; see async_projections.py) ---------------------

    async def add_append_hook(self, hook: AsyncAppendHook) -> None:
        """Run ``hook`` inside every append of this store object from now on.

        ``hook.installed`` runs first, in a transaction holding the inline lock
        once every older write transaction has ended, so it catches up on every
        event committed before, and no append running hooks (in any process) comes
        between its catch-up and the hook's first call. Events of appends without
        the hook are caught up by the next append with it.
        """
        if hook.name in self._hooks:
            raise InvalidInputError(f"an append hook named {hook.name!r} is already installed")
        statements, timeout = self._sql, self.config.visibility_timeout

        async def op(conn: Conn) -> None:
            async with conn.transaction():
                await async_projections.enter_inline(
                    conn, statements, fresh=True, timeout=timeout, where=self.where
                )
                tx = AsyncPostgresTransaction(self, conn, fresh=False)
                tx._inline = True
                await hook.installed(tx)

        await self._run(op)
        self._hooks = {**self._hooks, hook.name: hook}

    def remove_append_hook(self, name: str) -> None:
        """Stop running the hook ``name`` (appends already in progress may still run it)."""
        hooks = dict(self._hooks)
        hooks.pop(name, None)
        self._hooks = hooks

    # -- subscriptions -----------------------------------------------------------------

    def log_reader(self) -> AsyncPostgresLogReader:
        """A reader for subscriptions (``chronik.store.AsyncLogReader``)."""
        self._check_open()
        reader = AsyncPostgresLogReader(self)
        self._readers.add(reader)
        return reader

    def _forget_reader(self, reader: AsyncPostgresLogReader) -> None:
        self._readers.discard(reader)

    # -- lifecycle ---------------------------------------------------------------------

    async def close(self) -> None:
        """Release every connection, subscriptions' too. The store cannot be used afterwards."""
        self._closed = True
        pool, self._pool = self._pool, None
        for reader in list(self._readers):
            await reader.close()
        if self._notifier is not None:
            await self._notifier.close()
        if pool is not None:
            await pool.close()

    async def __aenter__(self) -> AsyncPostgresEventStore:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.where!r})"


class AsyncPostgresTransaction:
    """An open transaction on a PostgreSQL store (see ``transaction()``).

    ``connection`` is the psycopg connection, for anything the methods here lack.
    """

    def __init__(self, store: AsyncPostgresEventStore, connection: Conn, *, fresh: bool = False) -> None:
        self.store = store
        self.connection = connection
        self.appended = False
        self._fresh = fresh  # nothing has run in the transaction yet
        self._inline = False  # holds the inline lock (async_projections.py)
        self._handed = 0  # the last position of its own given to the hooks

    async def execute(
        self, statement: QueryNoTemplate, parameters: Params | None = None
    ) -> psycopg.AsyncCursor[Any]:
        """Run your own SQL (a read model's writes) in this transaction."""
        return await self.connection.execute(statement, parameters)

    async def executemany(
        self, statement: QueryNoTemplate, parameters: Iterable[Params]
    ) -> psycopg.AsyncCursor[Any]:
        cursor = self.connection.cursor()
        await cursor.executemany(statement, parameters)
        return cursor

    async def append(
        self, stream_id: str, events: Sequence[object], expected_version: ExpectedVersion = ANY
    ) -> AppendResult:
        """Append in this transaction; it commits with everything else or not at all."""
        prepared = [prepare_write(self.store.codec, stream_id, events, expected_version)]
        return (await self._append(prepared))[0]

    async def append_many(self, writes: Sequence[StreamWrite]) -> list[AppendResult]:
        return await self._append(prepare_writes(self.store.codec, writes))

    async def _append(self, writes: list[PreparedWrite]) -> list[AppendResult]:
        store, conn = self.store, self.connection
        hooks = store._hooks
        if hooks and not self._inline:
            timeout = store.config.visibility_timeout
            await async_projections.enter_inline(
                conn, store._sql, fresh=self._fresh, timeout=timeout, where=store.where
            )
            self._inline = True
        self._fresh = False
        results = await _append(conn, store._sql, writes, nested=True)
        self.appended = True
        if hooks:
            # Everything it wrote since the hooks last ran, even by appends made
            # before they were installed: the checkpoint is about to pass those too.
            events = await async_projections.own_events(conn, store._sql, store.codec, self._handed)
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
        params = (stream_id, from_version, MAX_VERSION if to_version is None else to_version, None)
        cursor = await self.connection.execute(self.store._sql.read_stream_forward, params, binary=True)
        codec = self.store.codec
        return [record(row, codec) for row in await cursor.fetchall()]

    async def read_page(
        self,
        after: Checkpoint | None,
        size: int,
        categories: tuple[str, ...] | None,
        types: tuple[str, ...] | None,
    ) -> LogPage:
        """A page of the final log as this transaction sees it (as ``LogReader.read_page``)."""
        store = self.store
        return await read_page(self.connection, store._sql, store.codec, after, size, categories, types)

    async def save_checkpoint(self, name: str, checkpoint: Checkpoint) -> None:
        await self.connection.execute(self.store._sql.save_checkpoint, _checkpoint_params(name, checkpoint))

    async def delete_checkpoint(self, name: str) -> None:
        validate_checkpoint_name(name)
        await self.connection.execute(self.store._sql.delete_checkpoint, (name,))

    async def load_checkpoint(self, name: str) -> Checkpoint | None:
        validate_checkpoint_name(name)
        return await _load_checkpoint(self.connection, self.store._sql, name)

    async def save_snapshot(self, snapshot: Snapshot) -> None:
        await self.connection.execute(self.store._sql.save_snapshot, _snapshot_params(snapshot))

    async def load_snapshot(self, stream_id: str) -> Snapshot | None:
        return await _load_snapshot(self.connection, self.store._sql, validate_stream_id(stream_id))

    async def save_projection_state(self, state: ProjectionState) -> None:
        await async_projections.save_projection_state(self.connection, self.store._sql, state)

    async def projection_states(self, name: str | None = None) -> list[ProjectionState]:
        return await async_projections.projection_states(self.connection, self.store._sql, name)

    async def delete_projection_state(self, name: str, version: int) -> None:
        await async_projections.delete_projection_state(self.connection, self.store._sql, name, version)

    async def park_event(self, letter: DeadLetter) -> None:
        await async_projections.park_event(self.connection, self.store._sql, letter)

    async def dead_letters(self, projection: str | None = None) -> list[DeadLetter]:
        return await async_projections.dead_letters(self.connection, self.store._sql, projection)


# -- appending, on one connection ----------------------------------------------------


async def _configure(conn: Conn) -> None:
    """Each new pooled connection: transactions READ COMMITTED, whatever the server's
    default_transaction_isolation (set on the client: no round trip)."""
    await conn.set_isolation_level(psycopg.IsolationLevel.READ_COMMITTED)


async def _append(
    conn: Conn, statements: sql.Statements, writes: Sequence[PreparedWrite], *, nested: bool
) -> list[AppendResult]:
    """Append ``writes``: one statement when nothing is in the way, else decide carefully.

    The careful way reads which event ids are stored and where each stream stands,
    decides like the memory store (``decide``), and inserts what is left with the
    versions it read pinned; if a concurrent writer moved one meanwhile, it reads
    and decides again. ``nested``: inside a caller's transaction, so every attempt
    gets a savepoint and a failed one leaves that transaction usable.
    """
    rows = await _try_append(conn, statements, writes, None, nested=nested)
    if rows is not None:
        done = finish(writes, rows)
        if done is not None:
            return done
    for _ in range(MAX_APPEND_ATTEMPTS):
        found, versions = await _lookup(conn, statements, writes)
        results, plan = decide(writes, found, versions)
        if plan:
            todo = [writes[i] for i in plan]
            pinned = [versions.get(w.stream_id, 0) for w in todo]
            rows = await _try_append(conn, statements, todo, pinned, nested=nested)
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
        f"append gave up after {MAX_APPEND_ATTEMPTS} attempts: other writers kept taking the versions it read"
    )


async def _try_append(
    conn: Conn,
    statements: sql.Statements,
    writes: Sequence[PreparedWrite],
    pinned: Sequence[int] | None,
    *,
    nested: bool,
) -> list[tuple[Any, ...]] | None:
    """Run the append statement; None when a unique key (or a deadlock) stopped it."""
    statement, params = append_statement(statements, writes, pinned)
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
) -> tuple[dict[uuid.UUID, Found], dict[str, int]]:
    ids = [e.event_id for w in writes for e in w.events]
    cursor = await conn.execute(statements.find_event_ids, (ids,))
    found = {row[0]: Found(row[1], row[2], row[3], row[4]) for row in await cursor.fetchall()}
    cursor = await conn.execute(statements.stream_versions, ([w.stream_id for w in writes],))
    versions = {row[0]: row[1] for row in await cursor.fetchall()}
    return found, versions


# -- snapshots and checkpoints, on one connection --------------------------------------


def _snapshot_params(snapshot: Snapshot) -> tuple[Any, ...]:
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


async def _load_snapshot(conn: Conn, statements: sql.Statements, stream_id: str) -> Snapshot | None:
    cursor = await conn.execute(statements.load_snapshot, (stream_id,))
    row = await cursor.fetchone()
    if row is None:
        return None
    return Snapshot(stream_id, row[0], row[1], row[2], bytes(row[3]), row[4].astimezone(UTC))


def _checkpoint_params(name: str, checkpoint: Checkpoint) -> tuple[str, int, int]:
    validate_checkpoint_name(name)
    if not isinstance(checkpoint, Checkpoint):
        raise InvalidCheckpointError(f"checkpoint must be a Checkpoint, got {type(checkpoint).__name__}")
    xid, position = checkpoint_start(checkpoint)
    return (name, xid, position)


async def _load_checkpoint(conn: Conn, statements: sql.Statements, name: str) -> Checkpoint | None:
    cursor = await conn.execute(statements.load_checkpoint, (name,))
    row = await cursor.fetchone()
    return None if row is None else Checkpoint(KIND, (row[0], row[1]))
