"""The sync PostgreSQL event store: ``chronik.connect("postgresql://...")``.

GENERATED from ``_async/store.py`` by ``tools/unasync.py``: do not edit; edit
the async module and run the script. The design is described there.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any, Final

import psycopg

from chronik.backend import (
    AppendHook,
    SubjectKey,
    Subscribes,
    append_many_events,
    appending,
    forget_subject,
    normalize_filter,
    pending_migrations,
    prepare_decision,
    prepare_write,
    prepare_writes,
    subject_keys_of,
    validate_checkpoint_name,
    validate_expected_version,
    validate_limit,
    write_keys,
)
from chronik.codec import Codec, EventRegistry
from chronik.errors import InvalidInputError, OperationalError
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
    validate_operator,
    validate_repair,
    validate_stream_metadata,
)
from chronik.query import AppendCondition, Query, ReadResult, check_read
from chronik.stores.postgres import sql
from chronik.stores.postgres._common import MIGRATIONS, SYSTEM, checkpoint_start, translate
from chronik.stores.postgres._config import PostgresConfig, parse_config
from chronik.stores.postgres._sync import dcb, lifecycle, projection_state, reader, writing
from chronik.stores.postgres._sync.connections import Conn, Connections
from chronik.stores.postgres._sync.reader import PostgresLogReader
from chronik.stores.postgres._sync.schema import applied_migrations
from chronik.stores.postgres._sync.subject_keys import PostgresSubjectKeys
from chronik.stores.postgres._sync.writing import PostgresTransaction

__all__ = ["PostgresEventStore", "PostgresTransaction"]


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
        self.schema = config.schema
        self.where = config.where
        self.codec = Codec(registry, max_event_size=config.max_event_size)
        self._shared = Connections(config, self.codec)
        self.codec.subject_keys = self._shared.own_keys = PostgresSubjectKeys(self._shared)

    @property
    def config(self) -> PostgresConfig:
        """The store's configuration (what its URL and options said, checked)."""
        return self._shared.config

    @config.setter
    def config(self, config: PostgresConfig) -> None:
        # One configuration for the store, its transactions and its readers.
        self._shared.config = config

    # -- opening -----------------------------------------------------------------------

    def open(self) -> None:
        """Connect, check the server and the schema, migrate if allowed, start the pool.

        Every check runs before anything is written: a server older than PostgreSQL
        13, a schema that is not chronik's or was migrated by a newer chronik, and
        pending migrations with ``migrate=False`` are each refused with a clear error.
        """
        self._shared.open()

    def check_schema(self) -> list[str]:
        """Names of the migrations this schema still needs; reads, never writes."""
        config = self.config

        def op(conn: Conn) -> list[str]:
            return applied_migrations(conn, config)

        applied = self._shared.run(op)
        return [m.name for m in pending_migrations(MIGRATIONS, applied, self.where)]

    # -- the database, for read models of your own (chronik.store.SQLDatabase) ------------

    sql_dialect: Final = "postgresql+psycopg"

    def connect_dbapi(self) -> psycopg.Connection[tuple[Any, ...]]:
        """A new (sync) psycopg connection to the store's database, yours to close, whose
        ``search_path`` is the store's transactions' (the store's schema, or its
        ``read_model_schema``, then ``public``). Sync on the asyncio store too: it is for
        code on a thread of its own (``chronik.projections.AsyncSQLAlchemyTarget``)."""
        config = self.config
        try:
            conn = psycopg.connect(config.conninfo)
        except psycopg.Error as err:
            raise OperationalError(f"cannot connect to {config.where}: {err}") from err
        try:
            conn.execute(sql.SET_SEARCH_PATH, (config.search_path,))
            conn.commit()
        except psycopg.Error as err:
            conn.close()
            raise translate(err, config.where) from err
        return conn

    # -- appending (writing.py) ----------------------------------------------------------

    def append(
        self, stream_id: str, events: Sequence[object], expected_version: ExpectedVersion = ANY
    ) -> AppendResult:
        """Append ``events`` to ``stream_id`` atomically if it is at ``expected_version``."""
        with appending(SYSTEM, "append", stream_id, expected_version, events) as span:
            keys = write_keys(self.codec, [events])
            prepared = prepare_write(self.codec, stream_id, events, expected_version, keys)
            return span.done((writing.commit(self._shared, [prepared]))[0])

    def append_many(self, writes: Sequence[StreamWrite]) -> list[AppendResult]:
        """Append to several streams in one transaction: all commit or none."""
        with appending(SYSTEM, "append_many", events=append_many_events(writes)) as span:
            keys = write_keys(self.codec, writes)
            return span.done(writing.commit(self._shared, prepare_writes(self.codec, writes, keys)))

    # -- subjects' keys (crypto-shredding; subject_keys.py) --------------------------------

    def subject_keys(self, subjects: Collection[str], *, create: bool = False) -> dict[str, SubjectKey]:
        """The subjects' keys (``chronik.store.SubjectKeyStore``), from the codec's key store."""
        return subject_keys_of(self.codec, subjects, create)

    def forget(self, subject: str) -> None:
        """Destroy ``subject``'s key: its personal data reads as redacted from now on."""
        forget_subject(self.codec, subject)

    # -- Dynamic Consistency Boundaries (dcb.py: the locking, and why it is enough) ----

    def read_query(
        self, query: Query, *, after: int | None = None, limit: int | None = None, backwards: bool = False
    ) -> ReadResult:
        query, start, limit = check_read(query, after, limit)
        events, head = dcb.read_query(self._shared, query, start, limit, backwards)
        return ReadResult(events, head)

    def append_if(
        self, events: Sequence[object], condition: AppendCondition | None, *, stream_id: str | None = None
    ) -> AppendResult:
        with appending(SYSTEM, "append_if", stream_id, None, events) as span:
            keys = write_keys(self.codec, [events])
            prepared, checked = prepare_decision(self.codec, events, condition, stream_id, keys)
            return span.done(dcb.append_if(self._shared, prepared, checked))

    def transaction(self) -> AbstractContextManager[PostgresTransaction]:
        """A transaction for appends, checkpoints, snapshots and your own SQL, all or nothing.

        A read model kept in the same database commits with its checkpoint, so a
        crash can neither lose nor double an effect. It runs at READ COMMITTED. On a
        store with append hooks its first append takes the inline lock, held until
        it ends (see ``projection_state.py``).
        """
        return writing.transaction(self._shared)

    # -- reading (reader.py) -----------------------------------------------------------

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
        return reader.read_stream(
            self._shared, stream_id, from_version, to_version, backwards=backwards, limit=limit
        )

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
        self._shared.check_open()
        return reader.read_all(self._shared, start, cats, kinds, checked)

    def head(self) -> Checkpoint | None:
        """The checkpoint of the last event in the global log, None when empty."""
        return reader.head(self._shared)

    def stream_info(self, stream_id: str) -> StreamInfo:
        """The stream's version; 0 (``exists`` False) when it has no events."""
        return reader.stream_info(self._shared, stream_id)

    def list_streams(
        self, *, category: str | None = None, after: str | None = None, limit: int = 100
    ) -> list[StreamInfo]:
        """Streams ordered by id, after the id ``after``: pass the last id for the next page."""
        return reader.list_streams(self._shared, category, after, limit)

    # -- snapshots and checkpoints (writing.py) ------------------------------------------

    def save_snapshot(self, snapshot: Snapshot) -> None:
        """Store ``snapshot``, replacing an older one of the same stream."""
        params = writing.snapshot_params(snapshot)
        self._shared.on(writing.save_snapshot, params)

    def load_snapshot(self, stream_id: str) -> Snapshot | None:
        """The latest snapshot of ``stream_id``, if any."""
        return self._shared.on(writing.load_snapshot, validate_stream_id(stream_id))

    def save_checkpoint(self, name: str, checkpoint: Checkpoint) -> None:
        """Record that reader ``name`` has processed everything up to ``checkpoint``."""
        params = writing.checkpoint_params(name, checkpoint)
        self._shared.on(writing.save_checkpoint, params)

    def delete_checkpoint(self, name: str) -> None:
        """Forget the checkpoint ``name`` (a reset reader starts from the beginning)."""
        validate_checkpoint_name(name)
        self._shared.on(writing.delete_checkpoint, name)

    def load_checkpoint(self, name: str) -> Checkpoint | None:
        """Where reader ``name`` stands, or None if it never saved one."""
        validate_checkpoint_name(name)
        return self._shared.on(writing.load_checkpoint, name)

    # -- projection state (projection_state.py) ------------------------------------------

    def save_projection_state(self, state: ProjectionState) -> None:
        """Store ``state``, replacing the one of the same name and version."""
        self._shared.on(projection_state.save_projection_state, state)

    def projection_states(self, name: str | None = None) -> list[ProjectionState]:
        """States ordered by name and version, of one projection or of all."""
        return self._shared.on(projection_state.projection_states, name)

    def delete_projection_state(self, name: str, version: int) -> None:
        """Forget one version of a projection: its state and its dead letters."""
        self._shared.on(projection_state.delete_projection_state, name, version)

    def park_event(self, letter: DeadLetter) -> None:
        """Record a dead letter; parking the same event again changes nothing."""
        self._shared.on(projection_state.park_event, letter)

    def dead_letters(self, projection: str | None = None) -> list[DeadLetter]:
        """Dead letters in the order they were parked, of one projection or of all."""
        return self._shared.on(projection_state.dead_letters, projection)

    def delete_dead_letter(self, projection: str, version: int, position: int) -> None:
        """Forget one dead letter (replayed or skipped); one that is not there changes nothing."""
        self._shared.on(projection_state.delete_dead_letter, projection, version, position)

    # -- runners' heartbeats (projection_state.py) ----------------------------------------

    def save_heartbeat(self, heartbeat: RunnerHeartbeat) -> None:
        """Store ``heartbeat``, replacing the record of the same runner."""
        self._shared.on(projection_state.save_heartbeat, heartbeat)

    def heartbeats(self, name: str | None = None) -> list[RunnerHeartbeat]:
        """Records of the runners of one projection (or of all)."""
        return self._shared.on(projection_state.heartbeats, name)

    def delete_heartbeat(self, runner_id: str) -> None:
        """Forget one runner's record; one that is not there changes nothing."""
        self._shared.on(projection_state.delete_heartbeat, runner_id)

    # -- deleting, retaining, repairing (lifecycle.py) -----------------------------------

    def delete_stream(
        self, stream_id: str, expected_version: ExpectedVersion = ANY, *, hard: bool = False
    ) -> DeleteResult:
        """Delete ``stream_id`` if it is at ``expected_version`` (``docs/lifecycle.md``)."""
        stream_id = validate_stream_id(stream_id)
        expected = validate_expected_version(expected_version)
        return lifecycle.delete(self._shared, stream_id, expected, hard)

    def set_stream_metadata(self, stream_id: str, metadata: StreamMetadata) -> None:
        """Replace the stream's metadata; reads of the stream respect it at once."""
        stream_id = validate_stream_id(stream_id)
        lifecycle.set_metadata(self._shared, stream_id, validate_stream_metadata(metadata))

    def get_stream_metadata(self, stream_id: str) -> StreamMetadata:
        """The stream's metadata (every limit None when it has none)."""
        stream_id = validate_stream_id(stream_id)
        return (self._shared.on(lifecycle.metadata_of, stream_id))[1]

    def scavenge(self) -> ScavengeResult:
        """Remove what deletes and metadata hide, then ``VACUUM`` the events table."""
        return lifecycle.scavenge(self._shared)

    def repair_event(
        self, stream_id: str, version: int, event: object, *, reason: str, operator: str
    ) -> RepairRecord:
        """Replace an event in place, recorded in ``$repairs`` in the same transaction."""
        stream_id = validate_stream_id(stream_id)
        reason, operator = validate_repair(stream_id, version, reason, operator)
        return lifecycle.repair(self._shared, stream_id, version, event, reason, operator)

    def archive_stream(
        self, stream_id: str, expected_version: ExpectedVersion = ANY, *, reason: str, operator: str
    ) -> RepairRecord:
        """Set a stream aside, recorded in ``$repairs`` in the same transaction."""
        stream_id = validate_stream_id(stream_id)
        expected = validate_expected_version(expected_version)
        reason, operator = validate_operator(reason, operator)
        return lifecycle.archive(self._shared, stream_id, expected, reason, operator)

    # -- append hooks (inline projections; see projection_state.py) ----------------------

    def add_append_hook(self, hook: AppendHook) -> None:
        """Run ``hook`` inside every append of this store object from now on.

        ``hook.installed`` runs first, in a transaction holding the inline lock
        once every older write transaction has ended, so it catches up on every
        event committed before, and no append running hooks (in any process) comes
        between its catch-up and the hook's first call. Events of appends without
        the hook are caught up by the next append with it.
        """
        if hook.name in self._shared.hooks:
            raise InvalidInputError(f"an append hook named {hook.name!r} is already installed")
        writing.install_hook(self._shared, hook)

    def remove_append_hook(self, name: str) -> None:
        """Stop running the hook ``name`` (appends already in progress may still run it)."""
        hooks = dict(self._shared.hooks)
        hooks.pop(name, None)
        self._shared.hooks = hooks

    # -- subscriptions (reader.py) -------------------------------------------------------

    def log_reader(self) -> PostgresLogReader:
        """A reader for subscriptions (``chronik.store.LogReader``)."""
        self._shared.check_open()
        log_reader = PostgresLogReader(self._shared)
        self._shared.readers.add(log_reader)
        return log_reader

    # -- lifecycle -----------------------------------------------------------------------

    def close(self) -> None:
        """Release every connection, subscriptions' too. The store cannot be used afterwards."""
        self._shared.close()

    def __enter__(self) -> PostgresEventStore:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.where!r})"
