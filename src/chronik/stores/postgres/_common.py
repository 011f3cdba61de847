"""What both faces of the PostgreSQL store share at the driver's boundary, with no I/O.

The constants, the adapters (how columns load), the server check, error
translation, and turning rows into events and pages. The append decision is in
``_decide.py``, projection-state rows in ``_projection_rows.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import psycopg
import psycopg_pool
from psycopg.adapt import AdaptersMap, Buffer, Loader

from chronik.backend import Codec, LogPage, Migration, load_migrations
from chronik.errors import (
    ChronikError,
    ConfigurationError,
    IntegrityError,
    InternalError,
    InvalidCheckpointError,
    OperationalError,
    PersistenceError,
    StoreClosedError,
    is_transient,
)
from chronik.events import Checkpoint, RecordedEvent

__all__ = [
    "ADAPTERS",
    "KIND",
    "MAX_VERSION",
    "MIGRATIONS",
    "PAGE_SIZE",
    "SYSTEM",
    "check_server",
    "checkpoint_start",
    "connection_lost",
    "on_a_standby",
    "record",
    "translate",
    "window",
]

KIND: Final = "postgres"
SYSTEM: Final = "postgresql"
"""What telemetry calls this backend (``db.system.name``, OpenTelemetry's name for it)."""
PAGE_SIZE: Final = 1000
MAX_VERSION: Final = 2**63 - 1
MIN_SERVER_VERSION: Final = 130000
MIGRATIONS: Final[list[Migration]] = load_migrations("chronik.stores.postgres")


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
    """Map a driver error to chronik's persistence branch by SQLSTATE and class.

    The error is ``transient`` (see :func:`chronik.errors.is_transient`) when its
    SQLSTATE says so (a lost connection, a server shutting down, a serialization
    failure, a deadlock, a lock not available, too few resources), when it has none
    but is operational (the connection failed before the server could say why), and
    when the pool had no connection to give in time.
    """
    if isinstance(err, psycopg_pool.PoolClosed):
        return StoreClosedError(f"the PostgreSQL store at {where} is closed")
    if isinstance(err, psycopg_pool.PoolTimeout):
        return OperationalError(
            f"no connection to {where} within pool_timeout: the server is unreachable or every "
            f"connection of the pool is busy ({err})",
            transient=True,
        )
    state = err.sqlstate or ""
    message = f"PostgreSQL error on {where}: {err}" + (f" (SQLSTATE {state})" if state else "")
    transient = is_transient(err)
    if (
        state.startswith(_OPERATIONAL_CLASSES)
        or state == "25006"  # read-only: a failover made the server a standby
        or (not state and isinstance(err, psycopg.OperationalError))
    ):
        return OperationalError(message, transient=transient)
    if state.startswith("23"):
        return IntegrityError(message, transient=transient)
    if state.startswith("XX"):
        return InternalError(message, transient=transient)
    if isinstance(err, psycopg.OperationalError):
        return OperationalError(message, transient=transient)
    if isinstance(err, psycopg.IntegrityError):
        return IntegrityError(message, transient=transient)
    if isinstance(err, psycopg.InternalError):
        return InternalError(message, transient=transient)
    return PersistenceError(message, transient=transient)


def connection_lost(err: psycopg.Error) -> bool:
    """Whether ``err`` means the connection died (so the operation may go again on another)."""
    if not isinstance(err, psycopg.OperationalError) or isinstance(err, psycopg_pool.PoolTimeout):
        return False
    state = err.sqlstate
    return state is None or state.startswith("08") or state in _CONNECTION_LOST


def on_a_standby(err: BaseException) -> bool:
    """Whether ``err`` (or what it was raised from) is a write refused by a read-only
    server (SQLSTATE 25006): after a failover, a connection to the old primary. Such a
    connection is closed rather than given back to the pool, so the next one is opened
    anew (and, with ``target_session_attrs=read-write``, reaches the new primary)."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if getattr(current, "sqlstate", None) == "25006":
            return True
        current = current.__cause__
    return False


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
        row[10],
    )


def window(rows: Sequence[Sequence[Any]], codec: Codec, after: Checkpoint | None) -> LogPage:
    """The answer of ``sql._READ_WINDOW`` as a page: the events, then the end marker."""
    events = [record(row, codec) for row in rows if row[0] is not None]
    ends = [row for row in rows if row[0] is None]
    return LogPage(events, Checkpoint(KIND, (ends[0][3], ends[0][2])) if ends else after)
