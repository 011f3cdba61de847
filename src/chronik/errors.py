"""Every error chronik raises, under one root.

::

    ChronikError
    ├── ConfigurationError              bad URL, unknown scheme, missing extra, bad option
    ├── InvalidInputError (ValueError)  caught before anything is written
    │   ├── InvalidStreamIdError
    │   ├── InvalidExpectedVersionError
    │   ├── InvalidEventError           duplicate ids in one batch, bad type name, ...
    │   │   ├── InvalidTagError         a tag that is not a non-empty printable str
    │   │   ├── NotAnEventError         a decider or aggregate produced a non-event
    │   │   └── EventValidationError    a payload that does not fit its registered type
    │   ├── UnregisteredEventError      an object whose class is not in the registry
    │   ├── EventEncodeError            a payload or metadata that JSON cannot carry as given
    │   ├── EventTooLargeError          over the store's size limit
    │   ├── InvalidCheckpointError      a checkpoint from another kind of store
    │   ├── WrongCategoryError          a command sent to a stream of another category
    │   ├── UndecodableMessageError     an inbound message whose body is not what its handler takes
    │   ├── InvalidQueryError           a DCB query or append condition that is not one
    │   └── InvalidStreamMetadataError  a stream's max_count, max_age or truncate_before out of range
    ├── ConcurrencyError
    │   ├── WrongExpectedVersionError   (stream_id, expected, actual)
    │   │   └── StreamNotFoundError     a command that needs its stream found none
    │   ├── AppendConditionFailedError  (DCB) an event matching the condition's query came first
    │   ├── DecisionRetriesExhaustedError (DCB) a decision still conflicting after its last retry
    │   └── RetriesExhaustedError       a command still conflicting after its last retry
    ├── DuplicateEventError             an event id already stored at another place
    ├── StreamDeletedError              a write to a stream deleted for good (or archived)
    ├── RegistryError                   duplicate type names, gaps in upcaster chains
    ├── DecodeError                     reading back what was stored
    │   ├── UnknownEventTypeError       strict mode: a type this process did not register
    │   ├── UpcastError                 an upcaster missing, failing, or leaving a payload undecodable
    │   ├── EventDecodeError            a payload that never fitted the version it was stored at
    │   ├── SnapshotDecodeError         a snapshot the code should understand but cannot
    │   ├── KeyNotFoundError            sealed with a cipher key the key provider does not have
    │   └── DecryptionError             a seal that does not authenticate: wrong key, altered bytes
    ├── UnhandledEventError             a decider or aggregate met an event it cannot apply
    ├── SchemaError                     the database and this chronik disagree
    │   ├── NotAChronikStoreError
    │   ├── SchemaVersionError          created by a newer chronik
    │   └── PendingMigrationsError      migrations needed but not allowed
    ├── StoreClosedError                the store was used after close()
    ├── ProjectionError                 projections, consumer groups, process managers
    │   ├── DuplicateProjectionError    two projections, one name (also a ConfigurationError)
    │   ├── ProjectionFailedError       a handler failed for good: stream, version, type, position
    │   ├── ProjectionVersionError      code older than the store's active version
    │   └── ProjectionConflictError     another runner moved the checkpoint (also a ConcurrencyError)
    ├── BrokerError                     a message broker (relay, inbound) refused or could not be reached
    └── PersistenceError                driver failures, shaped like PEP 249 and
        ├── OperationalError            translated at the transaction boundary from
        ├── IntegrityError              the driver's own error codes, which also set
        └── InternalError               their ``transient`` flag (see is_transient)

Driver errors are translated with ``raise ... from err`` so the original stays on
``__cause__``.

Some errors go away when the same work is tried again a moment later: a lost
connection, a server shutting down, a serialization failure or a deadlock, a lock
that was not free, a busy SQLite file. :func:`is_transient` tells them from the
rest (a bug, an SQL syntax error, an event that no longer decodes), which trying
again cannot fix; projection runners retry only the former.
"""

from __future__ import annotations

import sys
from typing import Any, Final

__all__ = [
    "AppendConditionFailedError",
    "BrokerError",
    "ChronikError",
    "ConcurrencyError",
    "ConfigurationError",
    "DecisionRetriesExhaustedError",
    "DecodeError",
    "DecryptionError",
    "DuplicateEventError",
    "DuplicateProjectionError",
    "EventDecodeError",
    "EventEncodeError",
    "EventTooLargeError",
    "EventValidationError",
    "IntegrityError",
    "InternalError",
    "InvalidCheckpointError",
    "InvalidEventError",
    "InvalidExpectedVersionError",
    "InvalidInputError",
    "InvalidQueryError",
    "InvalidStreamIdError",
    "InvalidStreamMetadataError",
    "InvalidTagError",
    "KeyNotFoundError",
    "NotAChronikStoreError",
    "NotAnEventError",
    "OperationalError",
    "PendingMigrationsError",
    "PersistenceError",
    "ProjectionConflictError",
    "ProjectionError",
    "ProjectionFailedError",
    "ProjectionVersionError",
    "ProjectionWarning",
    "RegistryError",
    "RetriesExhaustedError",
    "SchemaError",
    "SchemaVersionError",
    "SnapshotDecodeError",
    "StoreClosedError",
    "StreamDeletedError",
    "StreamNotFoundError",
    "UndecodableMessageError",
    "UnhandledEventError",
    "UnknownEventTypeError",
    "UnregisteredEventError",
    "UpcastError",
    "WrongCategoryError",
    "WrongExpectedVersionError",
    "_Located",
    "is_transient",
]


class ChronikError(Exception):
    """Root of every error raised by chronik."""

    transient: bool = False
    """Whether the same work may succeed when tried again later (see :func:`is_transient`)."""


class ConfigurationError(ChronikError):
    """A URL, option or installation problem found before any I/O."""


class InvalidInputError(ChronikError, ValueError):
    """Input that chronik refuses before anything is written."""


class InvalidStreamIdError(InvalidInputError):
    """A stream id that is empty, only whitespace, too long, or not printable text.

    The message names the first character refused and its index: a control
    character, an invisible format character, a lone surrogate (not valid Unicode).
    """


class InvalidExpectedVersionError(InvalidInputError):
    """An expected version that is not ANY, NO_STREAM, STREAM_EXISTS or an int >= 0."""


class InvalidEventError(InvalidInputError):
    """An event that cannot be appended as given."""


class InvalidTagError(InvalidEventError):
    """A tag that is not a non-empty printable str of at most 200 characters, or tags
    that are not a list of them."""


class InvalidQueryError(InvalidInputError):
    """A DCB query, query item or append condition that chronik cannot run as given."""


class InvalidStreamMetadataError(InvalidInputError):
    """A stream's metadata (``max_count``, ``max_age``, ``truncate_before``) out of range;
    ``field`` names the one refused. Nothing is written."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(message)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.field, self.args[0]))


class EventValidationError(InvalidEventError):
    """A payload under a registered type name that does not decode into that type.

    Raised before anything is written, so no stored event can be one that its own
    readers cannot decode. ``stream_id`` and ``type`` say which; the message names
    the field.
    """

    def __init__(self, message: str, *, stream_id: str, type: str) -> None:
        self.stream_id = stream_id
        self.type = type
        super().__init__(message)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.args, self.__dict__))


class UnregisteredEventError(InvalidInputError):
    """An event object whose class is not registered with the store's registry."""


class EventEncodeError(InvalidInputError):
    """A payload or metadata that cannot be encoded as JSON.

    Also metadata that JSON would not hand back as given (a ``datetime``, a UUID, a
    tuple, a key that is not a str): metadata has no type to decode into, so it
    must be JSON values already. The message names the part and the fix.
    """


class EventTooLargeError(InvalidInputError):
    """An encoded event over the store's size limit."""

    def __init__(self, stream_id: str, type: str, size: int, limit: int) -> None:
        self.stream_id = stream_id
        self.type = type
        self.size = size
        self.limit = limit
        super().__init__(
            f"event {type!r} for stream {stream_id!r} is {size} bytes encoded, "
            f"over the limit of {limit} bytes (max_event_size)"
        )


class InvalidCheckpointError(InvalidInputError):
    """A checkpoint that this store cannot resume from."""


class ConcurrencyError(ChronikError):
    """Another writer got there first."""


class AppendConditionFailedError(ConcurrencyError):
    """(DCB) An event matching the append condition's query was stored after ``after``
    (with no ``after``: at all), so the decision was made on stale facts.

    ``query`` is the condition's query, ``after`` its position, ``position`` that of
    the first matching event found after it. Nothing of the append was written.
    """

    def __init__(self, query: Any, after: int | None, position: int | None) -> None:
        self.query = query
        self.after = after
        self.position = position
        where = "any position" if after is None else f"position {after}"
        found = "" if position is None else f" (at position {position})"
        super().__init__(f"append condition failed: an event matching {query!r} exists after {where}{found}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.query, self.after, self.position))


class DecisionRetriesExhaustedError(ConcurrencyError):
    """(DCB) A decision kept meeting events appended after its read until its handler
    gave up. ``attempts`` is how many times it was decided; the last
    :class:`AppendConditionFailedError` is the ``__cause__``. Nothing was written.
    """

    transient = True

    def __init__(self, query: Any, attempts: int) -> None:
        self.query = query
        self.attempts = attempts
        super().__init__(
            f"decision on {query!r} still conflicted with other writers after {attempts} "
            f"attempt{'' if attempts == 1 else 's'}; nothing was written. Retry later, or raise "
            "the handler's retries="
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.query, self.attempts))


class WrongExpectedVersionError(ConcurrencyError):
    """The stream was not at the version the append expected."""

    def __init__(self, stream_id: str, expected: Any, actual: int) -> None:
        self.stream_id = stream_id
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"stream {stream_id!r}: expected version {_describe(expected)}, actual version {actual}"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.stream_id, self.expected, self.actual))


class StreamNotFoundError(WrongExpectedVersionError):
    """A command that needs its stream (``expected_version=STREAM_EXISTS``) found none.

    A ``WrongExpectedVersionError`` whose expected version is ``STREAM_EXISTS`` and
    actual version 0, so code that handles conflicts handles it too; catch it first
    to tell "not found" apart (as ``eventsourcing``'s ``AggregateNotFoundError``).
    """

    def __init__(self, stream_id: str, expected: Any) -> None:
        super().__init__(stream_id, expected, 0)
        self.args = (f"stream {stream_id!r} does not exist, and the command needs it to",)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.stream_id, self.expected))


def _describe(expected: Any) -> str:
    name = getattr(expected, "name", None)
    return str(name) if name is not None else repr(expected)


class DuplicateEventError(ChronikError):
    """An event id that is already stored somewhere other than this place."""

    def __init__(self, event_id: Any, stream_id: str, detail: str) -> None:
        self.event_id = event_id
        self.stream_id = stream_id
        super().__init__(f"event id {event_id} for stream {stream_id!r}: {detail}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.args, self.__dict__))


class StreamDeletedError(ChronikError):
    """A write to a stream that was deleted for good (``mode == "hard"``: its id can
    never be used again) or archived (``mode == "archived"``: set aside by an operator,
    see ``docs/lifecycle.md``). Nothing was written."""

    def __init__(self, stream_id: str, mode: str = "hard") -> None:
        self.stream_id = stream_id
        self.mode = mode
        if mode == "archived":
            why = "is archived (set aside by an operator): it takes no more events; delete it to free its id"
        else:
            why = "was deleted for good (a hard delete): its id cannot be written to again"
        super().__init__(f"stream {stream_id!r} {why}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.stream_id, self.mode))


def _rebuild(cls: type[Exception], args: tuple[Any, ...], state: dict[str, Any]) -> Exception:
    err = cls.__new__(cls)
    err.args = args
    err.__dict__.update(state)
    return err


class RegistryError(ChronikError):
    """The event registry is inconsistent (duplicate names, gaps in upcasters)."""


class DecodeError(ChronikError):
    """A stored event could not be turned back into what the application expects."""

    def __init__(self, message: str, *, stream_id: str = "", version: int = 0, type: str = ""):
        self.stream_id = stream_id
        self.version = version
        self.type = type
        super().__init__(message)


class UnknownEventTypeError(DecodeError):
    """Strict mode met an event type that this process has not registered."""


class UpcastError(DecodeError):
    """An old payload could not be upcast to the registered schema version.

    An upcaster is missing (the message names the step, ``vN`` to ``vN+1``), one
    raised, or the chain ran but its result does not fit the registered type (the
    message names the versions it runs between): the chain is incomplete. A payload
    written by newer code (a higher schema version than this process knows) is one
    too.
    """


class EventDecodeError(DecodeError):
    """A stored payload that does not decode, though nothing needed upcasting.

    The event is at its type's registered schema version (or its type is not
    registered) and its payload never fitted: it was written unchecked, by another
    program or before chronik checked payloads on append, or the class changed
    without a new schema version.
    """


class KeyNotFoundError(DecodeError):
    """A payload sealed at rest with a cipher key that the key provider does not have
    (or read with no cipher configured); ``key_id`` names the key."""

    def __init__(
        self, message: str, *, key_id: str = "", stream_id: str = "", version: int = 0, type: str = ""
    ) -> None:
        self.key_id = key_id
        super().__init__(message, stream_id=stream_id, version=version, type=type)


class DecryptionError(DecodeError):
    """A sealed payload (or a subject's personal data) that does not authenticate:
    the key has the right id but other bytes, or the stored bytes were altered.
    AES-GCM never hands back garbage: it refuses, and so does chronik."""

    def __init__(
        self, message: str, *, key_id: str = "", stream_id: str = "", version: int = 0, type: str = ""
    ) -> None:
        self.key_id = key_id
        super().__init__(message, stream_id=stream_id, version=version, type=type)


class SchemaError(ChronikError):
    """The database schema and this version of chronik disagree."""


class NotAChronikStoreError(SchemaError):
    """The database exists but is not a chronik store."""


class SchemaVersionError(SchemaError):
    """The database was created or migrated by a newer chronik."""


class PendingMigrationsError(SchemaError):
    """Migrations are pending and the store was opened with migrate=False."""


class StoreClosedError(ChronikError):
    """The store was used after ``close()``."""


class UndecodableMessageError(InvalidInputError):
    """An inbound message whose body does not decode into what its handler takes: a
    poison message, sent to the dead-letter place at once (retrying cannot fix it)."""


class BrokerError(ChronikError):
    """A message broker (NATS, RabbitMQ, Redis; ``chronik.relay``, ``chronik.inbound``)
    refused a request or could not be reached.

    ``transient`` says whether trying again later may succeed: a lost or refused
    connection, a timeout, a broker restarting are; a refused subject, a missing
    queue, bad credentials are not. Translated from the client's error, which stays
    on ``__cause__``.
    """

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.args, self.__dict__))


class PersistenceError(ChronikError):
    """The database driver failed (PEP 249 shaped).

    ``transient`` says whether trying again later may succeed; a backend sets it
    from the driver's own codes when it translates the error (see :func:`is_transient`).
    """

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.args, self.__dict__))


class OperationalError(PersistenceError):
    """Connection lost, database locked, disk full, server gone; on SQLite also SQL errors.

    Most are ``transient``; an SQL syntax error (SQLite reports those as operational
    errors too) is not.
    """


class IntegrityError(PersistenceError):
    """A constraint failed in a way chronik did not expect."""


class InternalError(PersistenceError):
    """The driver or database reported an internal error."""


# -- the application layer: deciders, aggregates, command handlers ------------------


class _Located(ChronikError):
    """Base of the errors that name the stream, version and type they are about."""

    stream_id: str
    version: int
    type: str

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.args, self.__dict__))


class WrongCategoryError(_Located, InvalidInputError):
    """A command sent to a stream whose category its decider or aggregate does not handle.

    ``category`` is the stream's, ``expected`` the one the model declares; ``type``
    names the model. Nothing is read or written.
    """

    def __init__(self, stream_id: str, category: str, expected: str, model: str) -> None:
        self.stream_id = stream_id
        self.version = 0
        self.type = model
        self.category = category
        self.expected = expected
        super().__init__(
            f"stream {stream_id!r} is in category {category!r}, but {model} handles "
            f"category {expected!r} (stream ids like '{expected}-42')"
        )


class NotAnEventError(_Located, InvalidEventError):
    """A decider or aggregate produced something that is not a registered event.

    ``version`` is the stream version the decision was made at and ``type`` the name
    of the offending value's type. Nothing is written.
    """

    def __init__(self, message: str, *, stream_id: str, version: int, type: str) -> None:
        self.stream_id = stream_id
        self.version = version
        self.type = type
        super().__init__(message)


class RetriesExhaustedError(_Located, ConcurrencyError):
    """A command kept conflicting with other writers until its handler gave up.

    ``attempts`` is how many times it was decided; ``version`` the stream version the
    last conflict found; ``type`` names the model. The last
    :class:`WrongExpectedVersionError` is the ``__cause__``. Nothing was written.
    """

    transient = True  # the writers it lost to will have moved on: try again later

    def __init__(self, stream_id: str, attempts: int, *, version: int, type: str) -> None:
        self.stream_id = stream_id
        self.attempts = attempts
        self.version = version
        self.type = type
        super().__init__(
            f"stream {stream_id!r}: {type} command still conflicted with other writers after "
            f"{attempts} attempt{'' if attempts == 1 else 's'} (the stream had moved on to version "
            f"{version}); nothing was written. Retry later, or raise the handler's retries="
        )


class SnapshotDecodeError(DecodeError):
    """A snapshot whose type and schema version match the code, but that does not decode.

    ``version`` is the snapshot's stream version and ``type`` its stored type. A
    snapshot whose schema version does not match is not an error: it is ignored and
    replaced.
    """

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.args, self.__dict__))


class UnhandledEventError(_Located, ChronikError):
    """A decider or aggregate met an event type it has no handler for.

    Raised when a stream holds such an event (``version`` is its version) or when an
    aggregate records one (``version`` is 0 there: nothing was stored).
    """

    def __init__(self, message: str, *, stream_id: str = "", version: int = 0, type: str = "") -> None:
        self.stream_id = stream_id
        self.version = version
        self.type = type
        super().__init__(message)


# -- projections, consumer groups and process managers --------------------------------


class ProjectionError(ChronikError):
    """Something went wrong with a projection (or a process manager, which is one)."""


class DuplicateProjectionError(ProjectionError, ConfigurationError):
    """Two projections were declared with the same name."""


class ProjectionFailedError(ProjectionError):
    """A handler raised on an event: an error retrying cannot fix, or a transient one
    through every retry.

    Names the projection (``kind`` says what it is: ``"projection"``, ``"process
    manager"``) and its version, and the event: ``stream_id``, ``version``, ``type``,
    ``position``. The handler's last exception is the ``__cause__``. The
    projection's checkpoint stays before the event, so nothing is skipped.
    """

    def __init__(
        self,
        projection: str,
        projection_version: int,
        *,
        stream_id: str,
        version: int,
        type: str,
        position: int,
        error: str,
        attempts: int,
        kind: str = "projection",
    ) -> None:
        self.projection = projection
        self.kind = kind
        self.projection_version = projection_version
        self.stream_id = stream_id
        self.version = version
        self.type = type
        self.position = position
        self.error = error
        self.attempts = attempts
        tries = f"{attempts} attempt{'' if attempts == 1 else 's'}"
        super().__init__(
            f"{kind} {projection!r} v{projection_version} stopped at stream {stream_id!r} "
            f"version {version} (type {type!r}, position {position}) after {tries}: {error}"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.args, self.__dict__))


class ProjectionVersionError(ProjectionError):
    """This code's version of a projection was replaced by a newer one in the store."""


class ProjectionConflictError(ProjectionError, ConcurrencyError):
    """Another runner of the same projection moved its checkpoint: this batch was not applied."""


class ProjectionWarning(UserWarning):
    """A projection that may not do what it says, e.g. it handles a type nobody emits."""


# -- which errors trying again may fix ----------------------------------------------

# SQLSTATE (the SQL standard's error code; PostgreSQL's list is at
# https://www.postgresql.org/docs/current/errcodes-appendix.html). Classes: 08
# connection exception, 53 insufficient resources (disk full, out of memory, too
# many connections). Codes: 40001 serialization failure, 40P01 deadlock detected,
# 55P03 lock not available (lock_timeout, NOWAIT), 57P01-03 the server shutting
# down, crashed or not accepting connections yet, 25006 a write on a server that is
# (now) a read-only standby: after a failover, the old primary's connections answer
# that until they are replaced by ones to the new primary, and 57014 a statement
# cancelled (statement_timeout under load, or an administrator's pg_cancel_backend):
# both go away when tried again later, and a runner that stopped on them would only
# wait for a person to start it again. (A statement that always outlasts its timeout
# is retried for as long as it fails: the runner's status and log say so, and a
# FailurePolicy with retries= bounds it for handlers.)
_TRANSIENT_SQLSTATE_CLASSES: Final = ("08", "53")
_TRANSIENT_SQLSTATES: Final = frozenset(
    {"25006", "40001", "40P01", "55P03", "57014", "57P01", "57P02", "57P03"}
)
# SQLite primary result codes (https://sqlite.org/rescode.html): BUSY ("database is
# locked": another connection holds the write lock), LOCKED, IOERR, FULL.
_TRANSIENT_SQLITE_CODES: Final = frozenset({5, 6, 10, 13})


def is_transient(error: BaseException) -> bool:
    """Whether ``error`` may go away if the same work is tried again a moment later.

    True for a lost or refused connection, a server shutting down or restarting, a
    failover (a write refused by a server that became a standby), a cancelled
    statement (a timeout, an administrator), a serialization failure, a deadlock, a
    lock that was not available, too few resources (a full disk), a busy or locked
    SQLite database, and a command that kept conflicting with other writers
    (:class:`RetriesExhaustedError`). False for everything else: a bug, an SQL syntax
    error, a constraint violation, an event that no longer decodes, refused input.

    It decides by chronik's own errors (their ``transient`` flag, set by the
    backends from the driver's codes), by the driver errors a handler's own SQL
    raises (PostgreSQL's SQLSTATE, SQLite's result code) and by the builtin
    ``ConnectionError`` and ``TimeoutError``. An error it cannot classify is judged
    by its ``__cause__`` (so ``raise MyError(...) from err`` keeps ``err``'s verdict),
    and is not transient when it has none.
    """
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        verdict = _transient(current)
        if verdict is not None:
            return verdict
        current = current.__cause__
    return False


def _transient(error: BaseException) -> bool | None:
    """The verdict on one error, or None when it is not one this knows."""
    if isinstance(error, ChronikError):
        return error.transient
    if isinstance(error, (ConnectionError, TimeoutError)):
        return True
    state = getattr(error, "sqlstate", None)  # psycopg, asyncpg
    if isinstance(state, str) and len(state) == 5:
        return state.startswith(_TRANSIENT_SQLSTATE_CLASSES) or state in _TRANSIENT_SQLSTATES
    code = getattr(error, "sqlite_errorcode", None)  # sqlite3: the extended result code
    if isinstance(code, int) and not isinstance(code, bool):
        return code & 0xFF in _TRANSIENT_SQLITE_CODES
    # Looked up, not imported: the core does not depend on a driver, and an error of
    # psycopg's exists only if psycopg was imported.
    psycopg: Any = sys.modules.get("psycopg")
    if psycopg is not None and isinstance(error, psycopg.Error):
        # No SQLSTATE: the server never said why. An operational error then means the
        # connection could not be made, broke, or was closed under the caller.
        return isinstance(error, psycopg.OperationalError)
    return None
