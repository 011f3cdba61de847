"""The sync PostgreSQL event store: ``chronik.connect("postgresql://...")``.

GENERATED from ``async_store.py`` by ``tools/unasync.py``: do not edit; edit
the async module and run the script. The design is described there.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Concatenate, Final, ParamSpec, TypeAlias, TypeVar

import psycopg
from psycopg_pool import ConnectionPool

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
from chronik.stores.postgres import projections, sql
from chronik.stores.postgres._common import (
    ADAPTERS,
    KIND,
    MAX_APPEND_ATTEMPTS,
    MAX_VERSION,
    MIGRATIONS,
    PAGE_SIZE,
    AppendHook,
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
from chronik.stores.postgres._notify import Notifier
from chronik.stores.postgres.reader import PostgresLogReader, read_page
from chronik.stores.postgres.schema import applied_migrations, connect, prepare_schema
from chronik.subscriptions import Subscribes

if TYPE_CHECKING:
    from psycopg.abc import Params, QueryNoTemplate

__all__ = ["PostgresEventStore", "PostgresTransaction"]

T = TypeVar("T")
P = ParamSpec("P")
Conn: TypeAlias = psycopg.Connection[tuple[Any, ...]]
Filter = tuple[str, ...] | None


class PostgresEventStore(Subscribes):
    """An event store in a PostgreSQL schema, for many writers in many processes.

    Open it with ``chronik.connect("postgresql://...")``. It connects at its
    first use (or ``store.open()``); bad URLs and options are refused at once.
    Live events wake subscriptions through LISTEN/NOTIFY, whichever process wrote
    them; a lost notification only delays an event, never skips it.
    """

    is_async: Final = False

    def __init__(self, url: str, registry: EventRegistry | None = None, **options: Any) -> None:
        config = parse_config(url, options)
        self.config = config
        self.schema = config.schema
        self.where = config.where
        self.codec = Codec(registry, max_event_size=config.max_event_size)
        self._sql = sql.statements(config.schema, config.channel)
        self._pool: ConnectionPool[Conn] | None = None
        self._open_lock = threading.Lock()
        self._readers: set[PostgresLogReader] = set()
        self._notifier = Notifier(config.conninfo, config.channel) if config.notify else None
        self._hooks: dict[str, AppendHook] = {}
        self._closed = False

    # -- opening, connections --------------------------------------------------------

    def open(self) -> None:
        """Connect, check the server and the schema, migrate if allowed, start the pool.

        Every check runs before anything is written: a server older than PostgreSQL
        13, a schema that is not chronik's or was migrated by a newer chronik, and
        pending migrations with ``migrate=False`` are each refused with a clear error.
        """
        with self._open_lock:
            self._check_open()
            if self._pool is not None:
                return
            conn = connect(self.config)
            try:
                prepare_schema(conn, self.config)
            except psycopg.Error as err:
                raise translate(err, self.where) from err
            finally:
                conn.close()
            pool: ConnectionPool[Conn] = ConnectionPool(
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
            pool.open(wait=False)
            self._pool = pool

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosedError(f"the PostgreSQL store at {self.where} is closed")

    def _ready(self) -> ConnectionPool[Conn]:
        self._check_open()
        if self._pool is None:
            self.open()
        pool = self._pool
        if pool is None:  # closed meanwhile
            raise StoreClosedError(f"the PostgreSQL store at {self.where} is closed")
        return pool

    def _run(self, op: Callable[[Conn], T]) -> T:
        """Run ``op`` on a pooled connection (autocommit: each statement commits).

        A connection that died (server restart, ``pg_terminate_backend``) is dropped
        by the pool and ``op`` goes again on another: every operation here is safe
        to repeat (appends because re-sent event ids are recognised). Other driver
        errors are translated here, at the boundary.
        """
        pool = self._pool if self._pool is not None and not self._closed else self._ready()
        lost = 0
        while True:
            try:
                with pool.connection() as conn:
                    return op(conn)
            except psycopg.Error as err:
                if connection_lost(err) and lost < self.config.pool_max_size and not self._closed:
                    lost += 1
                    continue
                raise translate(err, self.where) from err

    def _poke(self) -> None:
        if self._notifier is not None:
            self._notifier.poke()

    def check_schema(self) -> list[str]:
        """Names of the migrations this schema still needs; reads, never writes."""
        config = self.config

        def op(conn: Conn) -> list[str]:
            return applied_migrations(conn, config)

        applied = self._run(op)
        return [m.name for m in pending_migrations(MIGRATIONS, applied, self.where)]

    # -- appending -------------------------------------------------------------------

    def append(
        self, stream_id: str, events: Sequence[object], expected_version: ExpectedVersion = ANY
    ) -> AppendResult:
        """Append ``events`` to ``stream_id`` atomically if it is at ``expected_version``."""
        prepared = prepare_write(self.codec, stream_id, events, expected_version)
        return (self._commit([prepared]))[0]

    def append_many(self, writes: Sequence[StreamWrite]) -> list[AppendResult]:
        """Append to several streams in one transaction: all commit or none."""
        return self._commit(prepare_writes(self.codec, writes))

    def _commit(self, writes: list[PreparedWrite]) -> list[AppendResult]:
        statements = self._sql

        def op(conn: Conn) -> list[AppendResult]:
            return _append(conn, statements, writes, nested=False)

        def hooked(conn: Conn) -> list[AppendResult]:
            for attempt in range(MAX_APPEND_ATTEMPTS):
                try:
                    with conn.transaction():
                        return PostgresTransaction(self, conn, fresh=True)._append(writes)
                except OutOfOrderError:
                    # A writer without the hooks appended to a stream of ours while
                    # this waited for older writers (async_projections.py, point 4).
                    if attempt == MAX_APPEND_ATTEMPTS - 1:
                        raise
            raise AssertionError("unreachable")

        results = self._run(hooked if self._hooks else op)
        self._poke()
        return results

    @contextmanager
    def transaction(self) -> Iterator[PostgresTransaction]:
        """A transaction for appends, checkpoints, snapshots and your own SQL, all or nothing.

        A read model kept in the same database commits with its checkpoint, so a
        crash can neither lose nor double an effect. It runs at READ COMMITTED. On a
        store with append hooks its first append takes the inline lock, held until
        it ends (see ``async_projections.py``).
        """
        pool = self._ready()
        appended = False
        try:
            with pool.connection() as conn, conn.transaction():
                tx = PostgresTransaction(self, conn, fresh=False)
                yield tx
                appended = tx.appended
        except psycopg.Error as err:
            raise translate(err, self.where) from err
        if appended:
            self._poke()

    # -- reading ---------------------------------------------------------------------

    def read_stream(
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
        return self._records(statement, params)

    def _records(self, statement: str, params: Params) -> list[RecordedEvent]:
        codec = self.codec

        def op(conn: Conn) -> list[RecordedEvent]:
            cursor = conn.execute(statement, params, binary=True)  # C loaders for every column
            return [record(row, codec) for row in cursor.fetchall()]

        return self._run(op)

    def _fetch(self, statement: str, params: Params = ()) -> tuple[Any, ...]:
        """The first row of a statement that always returns one."""

        def op(conn: Conn) -> tuple[Any, ...]:
            cursor = conn.execute(statement, params)
            row = cursor.fetchone()
            assert row is not None
            return row

        return self._run(op)

    def _value(self, statement: str, params: Params) -> Any:
        """The first column of the first row, or None when there is no row."""

        def op(conn: Conn) -> Any:
            cursor = conn.execute(statement, params)
            row = cursor.fetchone()
            return None if row is None else row[0]

        return self._run(op)

    def read_all(
        self,
        after: Checkpoint | None = None,
        *,
        categories: Iterable[str] | None = None,
        types: Iterable[str] | None = None,
        limit: int | None = None,
    ) -> Iterator[RecordedEvent]:
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

    def _iter_all(
        self, start: tuple[int, int], cats: Filter, kinds: Filter, limit: int | None
    ) -> Iterator[RecordedEvent]:
        after = start
        remaining = limit
        waited = False
        while remaining is None or remaining > 0:
            size = PAGE_SIZE if remaining is None else min(PAGE_SIZE, remaining)
            page = self._page(after, size, cats, kinds)
            yield from page
            if page:
                last = page[-1].checkpoint.parts
                after = (last[0], last[1])
                if remaining is not None:
                    remaining -= len(page)
            if len(page) < size:
                # The end of the final part of the log. Events committed before now
                # may still be held back by an older transaction: wait for it once,
                # then read on, so a read sees every event committed before it.
                if waited or not self._wait_released(after):
                    return
                waited = True

    def _page(self, after: tuple[int, int], size: int, cats: Filter, kinds: Filter) -> list[RecordedEvent]:
        if cats is None and kinds is None:
            return self._records(self._sql.read_all, (after[0], after[1], size))
        params = {
            "xid": after[0],
            "position": after[1],
            "categories": None if cats is None else list(cats),
            "types": None if kinds is None else list(kinds),
            "limit": size,
        }
        return self._records(self._sql.read_all_filtered, params)

    def _wait_released(self, after: tuple[int, int]) -> bool:
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
        readable, newest = self._fetch(self._sql.log_state, {"xid": after[0], "position": after[1]})
        if newest is None:
            return bool(readable)
        deadline = time.monotonic() + timeout
        delay = 0.0005
        while not (self._fetch(self._sql.released, (newest,)))[0]:
            if time.monotonic() >= deadline:
                return bool(readable)
            time.sleep(delay)
            delay = min(delay * 2, 0.05)
        return True

    def head(self) -> Checkpoint | None:
        """The checkpoint of the last event in the global log, None when empty."""
        self._wait_released((0, 0))

        def op(conn: Conn) -> Checkpoint | None:
            cursor = conn.execute(self._sql.head)
            row = cursor.fetchone()
            return None if row is None else Checkpoint(KIND, (row[0], row[1]))

        return self._run(op)

    def stream_info(self, stream_id: str) -> StreamInfo:
        """The stream's version; 0 (``exists`` False) when it has no events."""
        stream_id = validate_stream_id(stream_id)
        version = self._value(self._sql.stream_version, (stream_id,))
        return StreamInfo(stream_id, 0 if version is None else version)

    def list_streams(
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

        def op(conn: Conn) -> list[StreamInfo]:
            cursor = conn.execute(statement, params)
            return [StreamInfo(s, v) for s, v in cursor.fetchall()]

        return self._run(op)

    # -- snapshots and checkpoints ---------------------------------------------------

    def save_snapshot(self, snapshot: Snapshot) -> None:
        """Store ``snapshot``, replacing an older one of the same stream."""
        params = _snapshot_params(snapshot)

        def op(conn: Conn) -> None:
            conn.execute(self._sql.save_snapshot, params)

        self._run(op)

    def load_snapshot(self, stream_id: str) -> Snapshot | None:
        """The latest snapshot of ``stream_id``, if any."""
        stream_id = validate_stream_id(stream_id)

        def op(conn: Conn) -> Snapshot | None:
            return _load_snapshot(conn, self._sql, stream_id)

        return self._run(op)

    def save_checkpoint(self, name: str, checkpoint: Checkpoint) -> None:
        """Record that reader ``name`` has processed everything up to ``checkpoint``."""
        params = _checkpoint_params(name, checkpoint)

        def op(conn: Conn) -> None:
            conn.execute(self._sql.save_checkpoint, params)

        self._run(op)

    def delete_checkpoint(self, name: str) -> None:
        """Forget the checkpoint ``name`` (a reset reader starts from the beginning)."""
        validate_checkpoint_name(name)

        def op(conn: Conn) -> None:
            conn.execute(self._sql.delete_checkpoint, (name,))

        self._run(op)

    def load_checkpoint(self, name: str) -> Checkpoint | None:
        """Where reader ``name`` stands, or None if it never saved one."""
        validate_checkpoint_name(name)

        def op(conn: Conn) -> Checkpoint | None:
            return _load_checkpoint(conn, self._sql, name)

        return self._run(op)

    # -- projection state (chronik.store.ProjectionStateStore) --------------------------

    def _on(
        self,
        fn: Callable[Concatenate[Conn, sql.Statements, P], T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """``fn(conn, statements, ...)`` on a pooled connection, in a transaction of its own."""

        def op(conn: Conn) -> T:
            return fn(conn, self._sql, *args, **kwargs)

        return self._run(op)

    def save_projection_state(self, state: ProjectionState) -> None:
        """Store ``state``, replacing the one of the same name and version."""
        self._on(projections.save_projection_state, state)

    def projection_states(self, name: str | None = None) -> list[ProjectionState]:
        """States ordered by name and version, of one projection or of all."""
        return self._on(projections.projection_states, name)

    def delete_projection_state(self, name: str, version: int) -> None:
        """Forget one version of a projection: its state and its dead letters."""
        self._on(projections.delete_projection_state, name, version)

    def park_event(self, letter: DeadLetter) -> None:
        """Record a dead letter; parking the same event again changes nothing."""
        self._on(projections.park_event, letter)

    def dead_letters(self, projection: str | None = None) -> list[DeadLetter]:
        """Dead letters in the order they were parked, of one projection or of all."""
        return self._on(projections.dead_letters, projection)

    # -- append hooks (inline projections; see async_projections.py) ---------------------

    def add_append_hook(self, hook: AppendHook) -> None:
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

        def op(conn: Conn) -> None:
            with conn.transaction():
                projections.enter_inline(conn, statements, fresh=True, timeout=timeout, where=self.where)
                tx = PostgresTransaction(self, conn, fresh=False)
                tx._inline = True
                hook.installed(tx)

        self._run(op)
        self._hooks = {**self._hooks, hook.name: hook}

    def remove_append_hook(self, name: str) -> None:
        """Stop running the hook ``name`` (appends already in progress may still run it)."""
        hooks = dict(self._hooks)
        hooks.pop(name, None)
        self._hooks = hooks

    # -- subscriptions -----------------------------------------------------------------

    def log_reader(self) -> PostgresLogReader:
        """A reader for subscriptions (``chronik.store.LogReader``)."""
        self._check_open()
        reader = PostgresLogReader(self)
        self._readers.add(reader)
        return reader

    def _forget_reader(self, reader: PostgresLogReader) -> None:
        self._readers.discard(reader)

    # -- lifecycle ---------------------------------------------------------------------

    def close(self) -> None:
        """Release every connection, subscriptions' too. The store cannot be used afterwards."""
        self._closed = True
        pool, self._pool = self._pool, None
        for reader in list(self._readers):
            reader.close()
        if self._notifier is not None:
            self._notifier.close()
        if pool is not None:
            pool.close()

    def __enter__(self) -> PostgresEventStore:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.where!r})"


class PostgresTransaction:
    """An open transaction on a PostgreSQL store (see ``transaction()``).

    ``connection`` is the psycopg connection, for anything the methods here lack.
    """

    def __init__(self, store: PostgresEventStore, connection: Conn, *, fresh: bool = False) -> None:
        self.store = store
        self.connection = connection
        self.appended = False
        self._fresh = fresh  # nothing has run in the transaction yet
        self._inline = False  # holds the inline lock (async_projections.py)
        self._handed = 0  # the last position of its own given to the hooks

    def execute(self, statement: QueryNoTemplate, parameters: Params | None = None) -> psycopg.Cursor[Any]:
        """Run your own SQL (a read model's writes) in this transaction."""
        return self.connection.execute(statement, parameters)

    def executemany(self, statement: QueryNoTemplate, parameters: Iterable[Params]) -> psycopg.Cursor[Any]:
        cursor = self.connection.cursor()
        cursor.executemany(statement, parameters)
        return cursor

    def append(
        self, stream_id: str, events: Sequence[object], expected_version: ExpectedVersion = ANY
    ) -> AppendResult:
        """Append in this transaction; it commits with everything else or not at all."""
        prepared = [prepare_write(self.store.codec, stream_id, events, expected_version)]
        return (self._append(prepared))[0]

    def append_many(self, writes: Sequence[StreamWrite]) -> list[AppendResult]:
        return self._append(prepare_writes(self.store.codec, writes))

    def _append(self, writes: list[PreparedWrite]) -> list[AppendResult]:
        store, conn = self.store, self.connection
        hooks = store._hooks
        if hooks and not self._inline:
            timeout = store.config.visibility_timeout
            projections.enter_inline(conn, store._sql, fresh=self._fresh, timeout=timeout, where=store.where)
            self._inline = True
        self._fresh = False
        results = _append(conn, store._sql, writes, nested=True)
        self.appended = True
        if hooks:
            # Everything it wrote since the hooks last ran, even by appends made
            # before they were installed: the checkpoint is about to pass those too.
            events = projections.own_events(conn, store._sql, store.codec, self._handed)
            if events:
                self._handed = events[-1].position
                for hook in hooks.values():
                    hook.appended(self, events)
        return results

    def read_stream(
        self, stream_id: str, from_version: int = 1, to_version: int | None = None
    ) -> list[RecordedEvent]:
        """Read a stream as this transaction sees it, its own appends included."""
        stream_id, from_version, to_version, _ = validate_read_stream(
            stream_id, from_version, to_version, None
        )
        params = (stream_id, from_version, MAX_VERSION if to_version is None else to_version, None)
        cursor = self.connection.execute(self.store._sql.read_stream_forward, params, binary=True)
        codec = self.store.codec
        return [record(row, codec) for row in cursor.fetchall()]

    def read_page(
        self,
        after: Checkpoint | None,
        size: int,
        categories: tuple[str, ...] | None,
        types: tuple[str, ...] | None,
    ) -> LogPage:
        """A page of the final log as this transaction sees it (as ``LogReader.read_page``)."""
        store = self.store
        return read_page(self.connection, store._sql, store.codec, after, size, categories, types)

    def save_checkpoint(self, name: str, checkpoint: Checkpoint) -> None:
        self.connection.execute(self.store._sql.save_checkpoint, _checkpoint_params(name, checkpoint))

    def delete_checkpoint(self, name: str) -> None:
        validate_checkpoint_name(name)
        self.connection.execute(self.store._sql.delete_checkpoint, (name,))

    def load_checkpoint(self, name: str) -> Checkpoint | None:
        validate_checkpoint_name(name)
        return _load_checkpoint(self.connection, self.store._sql, name)

    def save_snapshot(self, snapshot: Snapshot) -> None:
        self.connection.execute(self.store._sql.save_snapshot, _snapshot_params(snapshot))

    def load_snapshot(self, stream_id: str) -> Snapshot | None:
        return _load_snapshot(self.connection, self.store._sql, validate_stream_id(stream_id))

    def save_projection_state(self, state: ProjectionState) -> None:
        projections.save_projection_state(self.connection, self.store._sql, state)

    def projection_states(self, name: str | None = None) -> list[ProjectionState]:
        return projections.projection_states(self.connection, self.store._sql, name)

    def delete_projection_state(self, name: str, version: int) -> None:
        projections.delete_projection_state(self.connection, self.store._sql, name, version)

    def park_event(self, letter: DeadLetter) -> None:
        projections.park_event(self.connection, self.store._sql, letter)

    def dead_letters(self, projection: str | None = None) -> list[DeadLetter]:
        return projections.dead_letters(self.connection, self.store._sql, projection)


# -- appending, on one connection ----------------------------------------------------


def _configure(conn: Conn) -> None:
    """Each new pooled connection: transactions READ COMMITTED, whatever the server's
    default_transaction_isolation (set on the client: no round trip)."""
    conn.set_isolation_level(psycopg.IsolationLevel.READ_COMMITTED)


def _append(
    conn: Conn, statements: sql.Statements, writes: Sequence[PreparedWrite], *, nested: bool
) -> list[AppendResult]:
    """Append ``writes``: one statement when nothing is in the way, else decide carefully.

    The careful way reads which event ids are stored and where each stream stands,
    decides like the memory store (``decide``), and inserts what is left with the
    versions it read pinned; if a concurrent writer moved one meanwhile, it reads
    and decides again. ``nested``: inside a caller's transaction, so every attempt
    gets a savepoint and a failed one leaves that transaction usable.
    """
    rows = _try_append(conn, statements, writes, None, nested=nested)
    if rows is not None:
        done = finish(writes, rows)
        if done is not None:
            return done
    for _ in range(MAX_APPEND_ATTEMPTS):
        found, versions = _lookup(conn, statements, writes)
        results, plan = decide(writes, found, versions)
        if plan:
            todo = [writes[i] for i in plan]
            pinned = [versions.get(w.stream_id, 0) for w in todo]
            rows = _try_append(conn, statements, todo, pinned, nested=nested)
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


def _try_append(
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
            with conn.transaction():
                cursor = conn.execute(statement, params)
                return cursor.fetchall()
        cursor = conn.execute(statement, params)
        return cursor.fetchall()
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


def _lookup(
    conn: Conn, statements: sql.Statements, writes: Sequence[PreparedWrite]
) -> tuple[dict[uuid.UUID, Found], dict[str, int]]:
    ids = [e.event_id for w in writes for e in w.events]
    cursor = conn.execute(statements.find_event_ids, (ids,))
    found = {row[0]: Found(row[1], row[2], row[3], row[4]) for row in cursor.fetchall()}
    cursor = conn.execute(statements.stream_versions, ([w.stream_id for w in writes],))
    versions = {row[0]: row[1] for row in cursor.fetchall()}
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


def _load_snapshot(conn: Conn, statements: sql.Statements, stream_id: str) -> Snapshot | None:
    cursor = conn.execute(statements.load_snapshot, (stream_id,))
    row = cursor.fetchone()
    if row is None:
        return None
    return Snapshot(stream_id, row[0], row[1], row[2], bytes(row[3]), row[4].astimezone(UTC))


def _checkpoint_params(name: str, checkpoint: Checkpoint) -> tuple[str, int, int]:
    validate_checkpoint_name(name)
    if not isinstance(checkpoint, Checkpoint):
        raise InvalidCheckpointError(f"checkpoint must be a Checkpoint, got {type(checkpoint).__name__}")
    xid, position = checkpoint_start(checkpoint)
    return (name, xid, position)


def _load_checkpoint(conn: Conn, statements: sql.Statements, name: str) -> Checkpoint | None:
    cursor = conn.execute(statements.load_checkpoint, (name,))
    row = cursor.fetchone()
    return None if row is None else Checkpoint(KIND, (row[0], row[1]))
