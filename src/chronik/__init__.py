"""chronik: event sourcing for Python, embedded on SQLite, in production on PostgreSQL.

This namespace is what an application imports: opening a store, the values that
go in and come out of it, the application layer (deciders, aggregates, command
handlers, snapshots) and the errors an application catches. The rest is imported by
module path: every error from ``chronik.errors``, projections from
``chronik.projections``, subscriptions from ``chronik.subscriptions``, what a backend
implements from ``chronik.backend``, test tools from ``chronik.testing``.
"""

from chronik._connect import connect, connect_async
from chronik.aggregate import Aggregate, applies
from chronik.cipher import StaticKeys
from chronik.codec import EventRegistry
from chronik.consumer_groups import ConsumerGroup
from chronik.dcb import AsyncDCBCommandHandler, DCBCommandHandler, DCBDecider, DCBResult
from chronik.decider import Decider
from chronik.errors import (
    ChronikError,
    ConcurrencyError,
    ConfigurationError,
    DecodeError,
    DecryptionError,
    DuplicateEventError,
    EventDecodeError,
    InvalidInputError,
    KeyNotFoundError,
    OperationalError,
    PersistenceError,
    ProjectionFailedError,
    RetriesExhaustedError,
    StoreClosedError,
    StreamDeletedError,
    StreamNotFoundError,
    WrongExpectedVersionError,
)
from chronik.events import (
    ANY,
    NO_STREAM,
    STREAM_EXISTS,
    AppendResult,
    Checkpoint,
    ExpectedVersion,
    NewEvent,
    RecordedEvent,
    StreamInfo,
    StreamWrite,
    category_of,
    uuid7,
)
from chronik.handling import AsyncCommandHandler, CommandHandler, CommandResult, Loaded
from chronik.lifecycle import DeleteResult, ScavengeResult, StreamMetadata
from chronik.personal import REDACTED, PersonalData
from chronik.process_managers import ProcessManager
from chronik.query import AppendCondition, Query, QueryItem
from chronik.snapshots import SnapshotPolicy
from chronik.store import AsyncEventStore, AsyncStore, EventStore, Store, is_async
from chronik.subscriptions import AsyncSubscription, Subscription

__version__ = "0.1.0"

__all__ = [
    "ANY",
    "NO_STREAM",
    "REDACTED",
    "STREAM_EXISTS",
    "Aggregate",
    "AppendCondition",
    "AppendResult",
    "AsyncCommandHandler",
    "AsyncDCBCommandHandler",
    "AsyncEventStore",
    "AsyncStore",
    "AsyncSubscription",
    "Checkpoint",
    "ChronikError",
    "CommandHandler",
    "CommandResult",
    "ConcurrencyError",
    "ConfigurationError",
    "ConsumerGroup",
    "DCBCommandHandler",
    "DCBDecider",
    "DCBResult",
    "Decider",
    "DecodeError",
    "DecryptionError",
    "DeleteResult",
    "DuplicateEventError",
    "EventDecodeError",
    "EventRegistry",
    "EventStore",
    "ExpectedVersion",
    "InvalidInputError",
    "KeyNotFoundError",
    "Loaded",
    "NewEvent",
    "OperationalError",
    "PersistenceError",
    "PersonalData",
    "ProcessManager",
    "ProjectionFailedError",
    "Query",
    "QueryItem",
    "RecordedEvent",
    "RetriesExhaustedError",
    "ScavengeResult",
    "SnapshotPolicy",
    "StaticKeys",
    "Store",
    "StoreClosedError",
    "StreamDeletedError",
    "StreamInfo",
    "StreamMetadata",
    "StreamNotFoundError",
    "StreamWrite",
    "Subscription",
    "WrongExpectedVersionError",
    "applies",
    "category_of",
    "connect",
    "connect_async",
    "is_async",
    "uuid7",
]
