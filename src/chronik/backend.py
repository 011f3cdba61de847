"""Everything a backend author needs: what a store implements, and the helpers it may use.

A backend is a package that registers a :class:`Backend` under the entry-point group
``chronik.backends``, one entry per URL scheme::

    # pyproject.toml of the package chronik-dictstore
    [project.entry-points."chronik.backends"]
    dict = "chronik_dictstore:backend"

    # chronik_dictstore/__init__.py
    backend = chronik.backend.Backend("dict", open=open_store, open_async=open_async_store)

after which ``chronik.connect("dict://...")`` opens it. ``docs/backends.md`` walks
through writing one, and ``chronik.testing.conformance`` is the suite it must pass.

What a store implements (Protocols, from ``chronik.store``): :class:`EventStore` or
:class:`AsyncEventStore` (the contract), and any of the optional powers
(``SnapshotStore``, ``CheckpointStore``, ``Subscribable``, ``Transactional``,
``ProjectionStateStore``, ``RunnerHeartbeats``, ``AppendHooks``, ``DCBStore``,
``SubjectKeyStore``, ``StreamDeletion``, ``StreamRetention``, ``EventRepair`` and their
asyncio twins, and ``SQLDatabase`` for a store in a SQL database that read models may
share). A store marks its face with ``is_async = False`` or ``True``; a subscribable
one supplies ``log_reader()`` and inherits ``subscribe()`` from :class:`Subscribes`
(or :class:`AsyncSubscribes`).

The helpers keep every backend's behaviour the same: wrap each append in chronik's
telemetry (:func:`appending`: its span, counters and log line; the events get the
span's trace context when they are prepared), validate and encode writes
before any I/O (:func:`prepare_write`, :func:`prepare_writes`), decide about re-sent
event ids (:func:`resolve_existing`) and expected versions
(:func:`expected_version_ok`), check inputs (``validate_*``), read checkpoints made
of one position (:func:`position_after`), build recorded events
(:func:`recorded_event`), load the subjects' keys that personal data needs, before
a write encodes (:func:`write_keys`) and on what a read returns
(:func:`unlock_events`), keep named migrations (:func:`load_migrations`,
:func:`pending_migrations`), parse URL options (:func:`parse_options`) and show a URL
without its password (:func:`redacted`), take SQL's
portable ``:name`` parameters (:func:`to_pyformat`, :func:`check_named`), and give a
store the face it lacks (:class:`AsyncStoreAdapter`: asyncio over a sync store;
:class:`BlockingStore`: sync over an asyncio store).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from chronik._append import (
    DCB_CATEGORY,
    ExistingEvent,
    PreparedWrite,
    heartbeat_order,
    normalize_filter,
    position_after,
    prepare_decision,
    prepare_replacement,
    prepare_write,
    prepare_writes,
    resolve_existing,
    validate_checkpoint_name,
    validate_dead_letter,
    validate_dead_letter_key,
    validate_heartbeat,
    validate_limit,
    validate_projection,
    validate_projection_state,
    validate_read_stream,
    validate_runner_id,
)
from chronik._migrations import Migration, load_migrations, pending_migrations
from chronik._options import parse_bool, parse_options, redacted
from chronik._otel import append_many_events, appending
from chronik._params import check_named, named_statement, to_pyformat
from chronik._subject_keys import (
    LiveKeys,
    forget_subject,
    forget_subject_async,
    subject_keys_of,
    subject_keys_of_async,
    unlock_events,
    unlock_events_async,
    write_keys,
    write_keys_async,
)
from chronik.aio import AsyncStoreAdapter
from chronik.blocking import BlockingStore
from chronik.codec import DEFAULT_MAX_EVENT_SIZE, Codec, EncodedEvent, EventRegistry
from chronik.events import (
    Checkpoint,
    RecordedEvent,
    check_expected_version,
    validate_expected_version,
    validate_stream_id,
)
from chronik.personal import SubjectKey, new_subject_key, validate_subject, validate_subjects
from chronik.store import (
    AppendHook,
    AppendHooks,
    AsyncAppendHook,
    AsyncAppendHooks,
    AsyncCheckpointStore,
    AsyncDCBStore,
    AsyncEventRepair,
    AsyncEventStore,
    AsyncHookTransaction,
    AsyncLogReader,
    AsyncProjectionStateStore,
    AsyncRunnerHeartbeats,
    AsyncSnapshotStore,
    AsyncStore,
    AsyncStoreTransaction,
    AsyncStreamDeletion,
    AsyncStreamRetention,
    AsyncSubjectKeyStore,
    AsyncSubscribable,
    AsyncTransactional,
    CheckpointStore,
    DCBStore,
    EventRepair,
    EventStore,
    HookTransaction,
    LogPage,
    LogReader,
    ProjectionStateStore,
    RunnerHeartbeats,
    SnapshotStore,
    SQLDatabase,
    Store,
    StoreTransaction,
    StreamDeletion,
    StreamRetention,
    SubjectKeyStore,
    Subscribable,
    Transactional,
    is_async,
)
from chronik.subscriptions import AsyncSubscribes, Subscribes

__all__ = [
    "DCB_CATEGORY",
    "DEFAULT_MAX_EVENT_SIZE",
    "AppendHook",
    "AppendHooks",
    "AsyncAppendHook",
    "AsyncAppendHooks",
    "AsyncCheckpointStore",
    "AsyncDCBStore",
    "AsyncEventRepair",
    "AsyncEventStore",
    "AsyncHookTransaction",
    "AsyncLogReader",
    "AsyncProjectionStateStore",
    "AsyncRunnerHeartbeats",
    "AsyncSnapshotStore",
    "AsyncStore",
    "AsyncStoreAdapter",
    "AsyncStoreTransaction",
    "AsyncStreamDeletion",
    "AsyncStreamRetention",
    "AsyncSubjectKeyStore",
    "AsyncSubscribable",
    "AsyncSubscribes",
    "AsyncTransactional",
    "Backend",
    "BlockingStore",
    "CheckpointStore",
    "Codec",
    "DCBStore",
    "EncodedEvent",
    "EventRepair",
    "EventStore",
    "ExistingEvent",
    "HookTransaction",
    "LiveKeys",
    "LogPage",
    "LogReader",
    "Migration",
    "OpenAsyncStore",
    "OpenStore",
    "PreparedWrite",
    "ProjectionStateStore",
    "RunnerHeartbeats",
    "SQLDatabase",
    "SchemaCheck",
    "SchemaStatus",
    "SnapshotStore",
    "Store",
    "StoreSize",
    "StoreTransaction",
    "StreamDeletion",
    "StreamRetention",
    "SubjectKey",
    "SubjectKeyStore",
    "Subscribable",
    "Subscribes",
    "Transactional",
    "append_many_events",
    "appending",
    "check_named",
    "expected_version_ok",
    "forget_subject",
    "forget_subject_async",
    "heartbeat_order",
    "is_async",
    "load_migrations",
    "named_statement",
    "new_subject_key",
    "normalize_filter",
    "parse_bool",
    "parse_options",
    "pending_migrations",
    "position_after",
    "prepare_decision",
    "prepare_replacement",
    "prepare_write",
    "prepare_writes",
    "recorded_event",
    "redacted",
    "resolve_existing",
    "subject_keys_of",
    "subject_keys_of_async",
    "to_pyformat",
    "unlock_events",
    "unlock_events_async",
    "validate_checkpoint_name",
    "validate_dead_letter",
    "validate_dead_letter_key",
    "validate_expected_version",
    "validate_heartbeat",
    "validate_limit",
    "validate_projection",
    "validate_projection_state",
    "validate_read_stream",
    "validate_runner_id",
    "validate_stream_id",
    "validate_subject",
    "validate_subjects",
    "write_keys",
    "write_keys_async",
]

OpenStore = Callable[[str, EventRegistry | None, dict[str, Any]], EventStore]
"""``open(url, registry, options)``: a sync store at ``url``, connected and ready."""
OpenAsyncStore = Callable[[str, EventRegistry | None, dict[str, Any]], AsyncEventStore]
"""``open_async(url, registry, options)``: an asyncio store at ``url`` (it may connect lazily)."""


class SchemaStatus(NamedTuple):
    """The migrations of a store's schema: those ``applied`` and those ``pending``, in order."""

    applied: list[str]
    pending: list[str]


SchemaCheck = Callable[[str], SchemaStatus]
"""``check_schema(url)``: the migration status of the store at ``url``, read-only (it
neither creates nor changes anything; a store that does not exist yet has every
migration pending)."""

StoreSize = Callable[[str], int]
"""``store_size(url)``: how many bytes the store at ``url`` takes where it lives (a
file and its write-ahead log, a schema's tables and indexes, a JetStream stream and
its buckets), read-only."""


@dataclass(frozen=True)
class Backend:
    """What a backend registers under the ``chronik.backends`` entry-point group.

    ``name`` is used in messages; the URL schemes are the entry points' names (one
    backend may be registered under several, as ``postgresql`` and ``postgres``).
    ``options`` are raised as ``ConfigurationError`` by ``open`` when unknown or
    malformed; :func:`parse_options` does that. A backend with a migrated schema
    gives ``check_schema`` (what ``chronik migrate --check`` and ``chronik info``
    report) and accepts the ``migrate`` option (``migrate=False``: refuse to open a
    store with pending migrations); one without leaves it None. ``store_size`` (also
    optional) tells how many bytes the store takes where it lives, for ``chronik info``.
    """

    name: str
    open: OpenStore
    open_async: OpenAsyncStore
    check_schema: SchemaCheck | None = None
    store_size: StoreSize | None = None


expected_version_ok = check_expected_version
"""``expected_version_ok(expected, actual)``: whether a stream at version ``actual``
satisfies ``expected``, an expected version already validated (a ``PreparedWrite``'s,
or one that passed :func:`validate_expected_version`)."""


def recorded_event(
    *,
    stream_id: str,
    version: int,
    position: int,
    checkpoint: Checkpoint,
    event_id: uuid.UUID,
    type: str,
    schema_version: int,
    data: bytes | str,
    metadata: bytes | str | None,
    recorded_at: datetime,
    codec: Codec,
) -> RecordedEvent:
    """A :class:`RecordedEvent` from its stored parts, by keyword.

    ``data`` and ``metadata`` are the stored JSON (decoded lazily, by ``codec``, with
    its upcasters). chronik's own stores build events positionally with cheaper raw
    forms (bytes ids, microsecond times; see ``RecordedEvent``); this is the readable way.
    """
    return RecordedEvent(
        stream_id,
        version,
        position,
        checkpoint,
        event_id,
        type,
        schema_version,
        data,
        metadata,
        recorded_at,
        codec,
    )
