"""What the sync and async PostgreSQL stores share, with no I/O.

Error translation, statement parameters, turning rows into results (events,
projection states, dead letters), and the decision an append makes when its fast
path did not go through. Both stores call these; only the awaiting differs between
them.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC
from typing import Any, Final, NamedTuple, Protocol

import msgspec
import psycopg
import psycopg_pool
from psycopg.adapt import AdaptersMap, Buffer, Loader

from chronik._append import ExistingEvent, PreparedWrite, expected_ok, resolve_existing
from chronik._migrations import Migration, load_migrations
from chronik.codec import Codec
from chronik.errors import (
    ChronikError,
    ConfigurationError,
    IntegrityError,
    InternalError,
    InvalidCheckpointError,
    InvalidInputError,
    OperationalError,
    PersistenceError,
    StoreClosedError,
    WrongExpectedVersionError,
)
from chronik.events import (
    ANY,
    NO_STREAM,
    STREAM_EXISTS,
    AppendResult,
    Checkpoint,
    DeadLetter,
    FailedEvent,
    ProjectionState,
    RecordedEvent,
)
from chronik.store import AppendHook, LogPage
from chronik.stores.postgres import sql

__all__ = [
    "ADAPTERS",
    "KIND",
    "MAX_APPEND_ATTEMPTS",
    "MAX_VERSION",
    "MIGRATIONS",
    "PAGE_SIZE",
    "AppendHook",
    "AppendRow",
    "AsyncAppendHook",
    "Found",
    "OutOfOrderError",
    "append_params",
    "append_statement",
    "check_order",
    "check_projection",
    "check_server",
    "checkpoint_start",
    "connection_lost",
    "decide",
    "finish",
    "letter_of",
    "letter_params",
    "record",
    "state_of",
    "state_params",
    "translate",
    "window",
]

KIND: Final = "postgres"
PAGE_SIZE: Final = 1000
MAX_VERSION: Final = 2**63 - 1
MIN_SERVER_VERSION: Final = 130000
MIGRATIONS: Final[list[Migration]] = load_migrations("chronik.stores.postgres")
# Attempts of one append when concurrent writers keep taking the version it read
# (only ANY appends retry; an exact expected version fails on the first conflict).
MAX_APPEND_ATTEMPTS: Final = 1000


class AsyncAppendHook(Protocol):
    """The asyncio twin of :class:`chronik.store.AppendHook`, which the async store runs.

    Its methods are awaited inside the append's transaction, with an
    ``AsyncPostgresTransaction``. (The generated sync store takes the core's
    ``AppendHook``, re-exported here under that name for it; chronik's inline
    projections are such sync hooks.)
    """

    @property
    def name(self) -> str: ...

    async def installed(self, tx: Any) -> None: ...

    async def appended(self, tx: Any, events: Sequence[RecordedEvent]) -> None: ...


class _RawJsonLoader(Loader):
    """Loads ``json`` columns as the bytes stored, for :class:`RecordedEvent` to decode lazily."""

    def load(self, data: Buffer) -> bytes:
        return bytes(data)


ADAPTERS: Final = AdaptersMap(psycopg.adapters)
ADAPTERS.register_loader("json", _RawJsonLoader)
# In binary results a json value is its text, as stored: bytea's binary loader
# (written in C when psycopg has its C extension) hands those bytes over as they are.
# The reads of events ask for binary results, so every column has a C loader.
_BYTEA_BINARY = psycopg.adapters.get_loader(psycopg.postgres.types["bytea"].oid, psycopg.pq.Format.BINARY)
assert _BYTEA_BINARY is not None
ADAPTERS.register_loader("json", _BYTEA_BINARY)


def check_server(info: psycopg.ConnectionInfo, where: str) -> None:
    """Refuse a server without what chronik needs, saying what it needs."""
    version = info.server_version
    if version < MIN_SERVER_VERSION:
        major = version // 10000
        minor = version % 10000 if version >= 100000 else (version // 100) % 100
        raise ConfigurationError(
            f"chronik needs PostgreSQL 13 or newer (for the xid8 type and pg_current_xact_id()); "
            f"the server at {where} runs {major}.{minor}"
        )
    encoding = info.parameter_status("server_encoding")
    if encoding is not None and encoding.upper() != "UTF8":
        raise ConfigurationError(f"chronik needs a UTF8 database; the database at {where} uses {encoding}")


# SQLSTATE classes (https://www.postgresql.org/docs/current/errcodes-appendix.html).
_OPERATIONAL_CLASSES: Final = ("08", "40", "53", "54", "55", "57", "58")
_CONNECTION_LOST: Final = frozenset({"57P01", "57P02", "57P03"})


def translate(err: psycopg.Error, where: str) -> ChronikError:
    """Map a driver error to chronik's persistence branch by SQLSTATE and class."""
    if isinstance(err, psycopg_pool.PoolClosed):
        return StoreClosedError(f"the PostgreSQL store at {where} is closed")
    if isinstance(err, psycopg_pool.PoolTimeout):
        return OperationalError(
            f"no connection to {where} within pool_timeout: the server is unreachable or every "
            f"connection of the pool is busy ({err})"
        )
    state = err.sqlstate or ""
    message = f"PostgreSQL error on {where}: {err}" + (f" (SQLSTATE {state})" if state else "")
    if state.startswith(_OPERATIONAL_CLASSES) or (not state and isinstance(err, psycopg.OperationalError)):
        return OperationalError(message)
    if state.startswith("23"):
        return IntegrityError(message)
    if state.startswith("XX"):
        return InternalError(message)
    if isinstance(err, psycopg.OperationalError):
        return OperationalError(message)
    if isinstance(err, psycopg.IntegrityError):
        return IntegrityError(message)
    if isinstance(err, psycopg.InternalError):
        return InternalError(message)
    return PersistenceError(message)


def connection_lost(err: psycopg.Error) -> bool:
    """Whether ``err`` means the connection died (so the operation may go again on another)."""
    if not isinstance(err, psycopg.OperationalError) or isinstance(err, psycopg_pool.PoolTimeout):
        return False
    state = err.sqlstate
    return state is None or state.startswith("08") or state in _CONNECTION_LOST


def checkpoint_start(after: object) -> tuple[int, int]:
    """The (transaction id, position) a read starts after; checks the checkpoint."""
    if after is None:
        return (0, 0)
    if not isinstance(after, Checkpoint):
        raise InvalidCheckpointError(f"after must be a Checkpoint, got {type(after).__name__}")
    if after.kind != KIND or len(after.parts) != 2 or min(after.parts) < 0:
        raise InvalidCheckpointError(
            f"checkpoint {after} was made by a {after.kind!r} store; this is a {KIND!r} store"
        )
    return (after.parts[0], after.parts[1])


def record(row: Sequence[Any], codec: Codec) -> RecordedEvent:
    """A row of ``sql._COLUMNS`` as a :class:`RecordedEvent`."""
    return RecordedEvent(
        row[0],
        row[1],
        row[2],
        Checkpoint(KIND, (row[3], row[2])),
        row[4],
        row[5],
        row[6],
        row[7],
        row[8],
        row[9],
        codec,
    )


def window(rows: Sequence[Sequence[Any]], codec: Codec, after: Checkpoint | None) -> LogPage:
    """The answer of ``sql._READ_WINDOW`` as a page: the events, then the end marker."""
    events = [record(row, codec) for row in rows if row[0] is not None]
    ends = [row for row in rows if row[0] is None]
    return LogPage(events, Checkpoint(KIND, (ends[0][3], ends[0][2])) if ends else after)


def _expectation(want: object) -> tuple[int | None, bool]:
    """An expected version as the statement's (expected, must_exist)."""
    if want is ANY:
        return None, False
    if want is STREAM_EXISTS:
        return None, True
    if want is NO_STREAM:
        return 0, False
    assert isinstance(want, int)
    return want, False


def append_statement(
    statements: sql.Statements, writes: Sequence[PreparedWrite], pinned: Sequence[int] | None = None
) -> tuple[str, dict[str, Any]]:
    """The append statement for ``writes`` and its parameters; ``pinned`` replaces
    each write's expected version. One event to one stream goes as scalars."""
    if len(writes) == 1 and len(writes[0].events) == 1:
        write = writes[0]
        event = write.events[0]
        expected, must_exist = _expectation(write.expected if pinned is None else pinned[0])
        return statements.append_one, {
            "stream_id": write.stream_id,
            "category": write.category,
            "expected": expected,
            "must_exist": must_exist,
            "event_id": event.event_id,
            "type": event.type,
            "schema_version": event.schema_version,
            "data": event.data.decode(),
            "metadata": None if event.metadata is None else event.metadata.decode(),
        }
    return statements.append, append_params(writes, pinned)


def append_params(writes: Sequence[PreparedWrite], pinned: Sequence[int] | None = None) -> dict[str, Any]:
    """Parameters of ``sql._APPEND``; ``pinned`` replaces each write's expected version."""
    stream_ids: list[str] = []
    categories: list[str] = []
    expected: list[int | None] = []
    must_exist: list[bool] = []
    write_idx: list[int] = []
    offsets: list[int] = []
    event_ids: list[uuid.UUID] = []
    types: list[str] = []
    schema_versions: list[int] = []
    data: list[str] = []
    metadata: list[str | None] = []
    for index, write in enumerate(writes):
        stream_ids.append(write.stream_id)
        categories.append(write.category)
        want, exists = _expectation(write.expected if pinned is None else pinned[index])
        expected.append(want)
        must_exist.append(exists)
        for offset, event in enumerate(write.events, 1):
            write_idx.append(index + 1)
            offsets.append(offset)
            event_ids.append(event.event_id)
            types.append(event.type)
            schema_versions.append(event.schema_version)
            data.append(event.data.decode())
            metadata.append(None if event.metadata is None else event.metadata.decode())
    return {
        "stream_ids": stream_ids,
        "categories": categories,
        "expected": expected,
        "must_exist": must_exist,
        "write_idx": write_idx,
        "offsets": offsets,
        "event_ids": event_ids,
        "types": types,
        "schema_versions": schema_versions,
        "data": data,
        "metadata": metadata,
    }


class AppendRow(NamedTuple):
    """One write's line of the append statement's answer."""

    idx: int
    version: int  # before the append
    expected_ok: bool
    order_ok: bool
    last_version: int | None
    last_position: int | None
    transaction_id: int | None


def finish(writes: Sequence[PreparedWrite], rows: Sequence[Sequence[Any]]) -> list[AppendResult] | None:
    """The results if the append statement wrote every write, else None."""
    parsed = [AppendRow(*row) for row in rows]
    if len(parsed) != len(writes) or any(r.last_position is None for r in parsed):
        return None
    results = []
    for write, row in zip(writes, parsed, strict=True):
        assert row.last_version is not None
        assert row.last_position is not None
        assert row.transaction_id is not None
        results.append(
            AppendResult(
                write.stream_id,
                row.last_version,
                row.last_position,
                Checkpoint(KIND, (row.transaction_id, row.last_position)),
            )
        )
    return results


class OutOfOrderError(WrongExpectedVersionError):
    """A write refused only because its transaction is older than the stream's tip.

    To callers it is a ``WrongExpectedVersionError``; an append that owns its
    transaction (one running inline projections) tells it apart, to go again in a
    new transaction."""


def check_order(writes: Sequence[PreparedWrite], rows: Sequence[Sequence[Any]]) -> None:
    """Raise for a write refused only because its transaction is older than the stream's tip."""
    for write, row in zip(writes, (AppendRow(*r) for r in rows), strict=True):
        if row.expected_ok and not row.order_ok:
            # Inside transaction(): another writer appended to this stream after this
            # transaction began writing. Appending now would put this event before
            # the stream's previous one in the global log; the transaction must go
            # again, exactly like a lost race on the expected version.
            raise OutOfOrderError(write.stream_id, write.expected, row.version)


class Found(NamedTuple):
    """An event id already stored: where, and in which transaction."""

    stream_id: str
    version: int
    position: int
    transaction_id: int


def decide(
    writes: Sequence[PreparedWrite], found: Mapping[uuid.UUID, Found], versions: Mapping[str, int]
) -> tuple[list[AppendResult | None], list[int]]:
    """Decide every write from freshly read state, as the memory store would.

    Writes are taken in order: one some of whose ids are stored is an idempotent
    re-send or a :class:`DuplicateEventError` (``resolve_existing``); otherwise its
    expected version must hold or it is a :class:`WrongExpectedVersionError`. Returns
    the results known so far and the indexes of the writes still to insert.
    """
    results: list[AppendResult | None] = []
    plan: list[int] = []
    for index, write in enumerate(writes):
        stored = {e.event_id: found[e.event_id] for e in write.events if e.event_id in found}
        if stored:
            existing = {k: ExistingEvent(v.stream_id, v.version, v.position) for k, v in stored.items()}
            by_position = {v.position: v.transaction_id for v in stored.values()}

            def checkpoint_of(where: ExistingEvent, xids: dict[int, int] = by_position) -> Checkpoint:
                return Checkpoint(KIND, (xids[where.position], where.position))

            results.append(resolve_existing(write, existing, checkpoint_of))
            continue
        actual = versions.get(write.stream_id, 0)
        if not expected_ok(write, actual):
            raise WrongExpectedVersionError(write.stream_id, write.expected, actual)
        results.append(None)
        plan.append(index)
    return results, plan


# -- projection state and dead letters ------------------------------------------------

_STATUSES: Final = frozenset({"building", "live", "failed", "retired"})
_failure_decoder: Final = msgspec.json.Decoder(FailedEvent)


def check_projection(name: object, version: object) -> None:
    """Refuse a projection name or version that no projection can have."""
    if not isinstance(name, str) or not name:
        raise InvalidInputError(f"projection name must be a non-empty str, got {name!r}")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise InvalidInputError(f"projection version must be an int >= 1, got {version!r}")


def state_params(state: ProjectionState) -> tuple[Any, ...]:
    """Parameters of ``sql._SAVE_PROJECTION_STATE``."""
    check_projection(state.name, state.version)
    if state.status not in _STATUSES:
        raise InvalidInputError(f"projection status must be one of {sorted(_STATUSES)}, got {state.status!r}")
    failure = None if state.failure is None else msgspec.json.encode(state.failure).decode()
    return (state.name, state.version, state.status, bool(state.active), failure, state.updated_at)


def state_of(row: Sequence[Any]) -> ProjectionState:
    """A row of ``sql._PROJECTION_STATES`` as a :class:`ProjectionState`."""
    return ProjectionState(
        row[0],
        row[1],
        row[2],
        row[3],
        None if row[4] is None else _failure_decoder.decode(row[4]),
        row[5].astimezone(UTC),
    )


def letter_params(letter: DeadLetter) -> tuple[Any, ...]:
    """Parameters of ``sql._PARK_EVENT``; the event must be one of this kind of store."""
    check_projection(letter.projection, letter.projection_version)
    e = letter.event
    xid, position = checkpoint_start(e.checkpoint)
    if position != e.position:
        raise InvalidInputError(
            f"dead letter of position {e.position} carries the checkpoint {e.checkpoint} of another event"
        )
    return (
        letter.projection,
        letter.projection_version,
        e.position,
        xid,
        e.stream_id,
        e.version,
        e.type,
        e.event_id,
        e.error,
        e.attempts,
        letter.parked_at,
    )


def letter_of(row: Sequence[Any]) -> DeadLetter:
    """A row of ``sql._DEAD_LETTERS`` as a :class:`DeadLetter`."""
    event = FailedEvent(
        row[4], row[5], row[2], Checkpoint(KIND, (row[3], row[2])), row[7], row[6], row[8], row[9]
    )
    return DeadLetter(row[0], row[1], event, row[10].astimezone(UTC))
