"""chronik as a persistence module for the ``eventsourcing`` library (9.5).

An existing ``eventsourcing`` application moves onto a chronik store by configuration::

    PERSISTENCE_MODULE=chronik.compat.eventsourcing
    CHRONIK_URL=sqlite:///bank.db          # any chronik URL (postgresql://..., ...)

The library's own variables apply as usual (``TRANSCODER_TOPIC``, ``CIPHER_TOPIC``,
``COMPRESSOR_TOPIC``, ``IS_SNAPSHOTTING_ENABLED``, ``ORIGINATOR_ID_TYPE``, each also
with the application's name as prefix, ``BANKACCOUNTS_CHRONIK_URL``); ``CREATE_TABLE``
is accepted and has nothing to do: chronik migrates its own schema.

How the library's records become chronik's (docs/eventsourcing.md says it for users):

- an aggregate's sequence is the stream ``<category>-<originator id>``, the category
  being ``CHRONIK_CATEGORY`` or the application's name in lower case; its snapshots
  are the stream ``<category>.snapshot-<originator id>``;
- ``originator_version`` is the stream's version (both start at 1). A sequence that
  starts at 0 is kept at versions 1, 2, ... with the library's version in the
  event's metadata (``{"eventsourcing": {"originator_version": 0}}``); so is every
  snapshot whose version is not its place in the snapshot stream;
- the topic is the event type; the state is the payload: the JSON that the library's
  ``JSONTranscoder`` wrote, stored as JSON, or, when the state is not JSON (a cipher, a
  compressor, another transcoder), its base64 text, marked in the metadata
  (``{"eventsourcing": {"state": "base64"}}``) and handed back byte for byte;
- notification ids are the positions of chronik's global log, and a tracking record
  is a row of the table ``eventsourcing_tracking`` beside chronik's tables, written in
  the same store transaction as the events it tracks (so SQL stores only).
"""

from __future__ import annotations

import base64
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from itertools import islice
from typing import Any, Final
from uuid import UUID

import msgspec
from eventsourcing.persistence import (
    AggregateRecorder,
    ApplicationRecorder,
    DataError,
    InfrastructureFactory,
    IntegrityError,
    Notification,
    OperationalError,
    ProcessRecorder,
    StoredEvent,
    Subscription,
    Tracking,
    TrackingRecorder,
)
from eventsourcing.utils import Environment, EnvType, resolve_topic

import chronik
from chronik.errors import ChronikError, ConcurrencyError, WrongExpectedVersionError
from chronik.store import StoreTransaction

__all__ = [
    "ChronikAggregateRecorder",
    "ChronikApplicationRecorder",
    "ChronikFactory",
    "ChronikProcessRecorder",
    "ChronikTrackingRecorder",
    "Factory",
]

# Tracking records live in a table of this module's own beside chronik's, written in
# the store transaction that appends the events they answer (``tx.execute``): one row
# per upstream application, as the library's SQLite recorder keeps by default. Not a
# chronik checkpoint: those hold positions of this store's own log, and an upstream
# notification id is a position in another application's.
_CREATE_TRACKING: Final = """
CREATE TABLE IF NOT EXISTS eventsourcing_tracking (
    application_name TEXT PRIMARY KEY,
    notification_id BIGINT NOT NULL
)"""
_SELECT_TRACKING: Final = "SELECT notification_id FROM eventsourcing_tracking WHERE application_name = :name"
_UPSERT_TRACKING: Final = """
INSERT INTO eventsourcing_tracking (application_name, notification_id) VALUES (:name, :id)
ON CONFLICT (application_name) DO UPDATE SET notification_id = excluded.notification_id"""

_KEY: Final = "eventsourcing"
_BASE64: Final = "base64"
_OFFSETS_CACHED: Final = 10_000
_CHECKPOINTS_CACHED: Final = 10_000

# THE ORDER OF NOTIFICATION IDS. Notification ids are chronik positions. On SQLite one
# writer commits at a time, so positions follow commit order and a reader that has
# seen position N can never see an N' < N appear later. PostgreSQL hands out positions
# from a sequence before commit, so two writers can commit in the other order; chronik's
# own readers cope by ordering the log by (transaction id, position), but the library's
# readers only have the integer. So, as the library's own PostgreSQL recorder locks its
# table, every write of this module takes one transaction-level advisory lock per
# schema before its first statement that takes a transaction id: writers through this
# module then take positions, and transaction ids, in commit order, and a position
# rolled back leaves a gap that no reader ever waits for.
_POSTGRES_LOCK: Final = (
    "SELECT pg_advisory_xact_lock(hashtextextended('chronik.compat.eventsourcing.' || current_schema(), 0))"
)


class ChronikFactory(InfrastructureFactory[TrackingRecorder]):
    """The infrastructure factory: one chronik store, opened from ``CHRONIK_URL``."""

    CHRONIK_URL: Final = "CHRONIK_URL"
    CHRONIK_CATEGORY: Final = "CHRONIK_CATEGORY"
    ORIGINATOR_ID_TYPE: Final = "ORIGINATOR_ID_TYPE"
    CREATE_TABLE: Final = "CREATE_TABLE"

    def __init__(self, env: Environment | EnvType | None) -> None:
        super().__init__(env)
        url = self.env.get(self.CHRONIK_URL)
        if not url:
            keys = ", ".join(self.env.create_keys(self.CHRONIK_URL))
            raise OSError(f"chronik URL not found in environment with keys: {keys}")
        category = self.env.get(self.CHRONIK_CATEGORY) or (self.env.name or "aggregate").lower()
        if "-" in category or not category.isprintable() or not category.strip():
            raise OSError(
                f"{self.CHRONIK_CATEGORY} {category!r} cannot be a chronik category: "
                "it must be printable and hold no '-'"
            )
        id_type = (self.env.get(self.ORIGINATOR_ID_TYPE) or "uuid").lower()
        if id_type not in ("uuid", "text"):
            raise OSError(f"Invalid {self.ORIGINATOR_ID_TYPE} {id_type!r}, must be 'uuid' or 'text'")
        try:
            store = chronik.connect(url)
        except ChronikError as err:
            raise OSError(f"cannot open the chronik store at {self.CHRONIK_URL}: {err}") from err
        self.store: chronik.Store = store
        self.category = category
        self._shared = _Shared(store, text_ids=id_type == "text")
        try:
            with store.transaction() as tx:
                self._shared.begin(tx)
                tx.execute(_CREATE_TRACKING)
        except ChronikError as err:
            store.close()
            raise OSError(f"cannot create the tracking table in the chronik store: {err}") from err

    def aggregate_recorder(self, purpose: str = "events") -> AggregateRecorder:
        """Events in streams ``<category>-<id>``; snapshots (or any other purpose) in
        ``<category>.<purpose>-<id>``, where versions may leave gaps."""
        if purpose == "events":
            return ChronikAggregateRecorder(self._shared, self.category)
        singular = purpose[:-1] if purpose.endswith("s") else purpose
        return ChronikAggregateRecorder(self._shared, f"{self.category}.{singular}", sparse=True)

    def application_recorder(self) -> ApplicationRecorder:
        topic = self.env.get(self.APPLICATION_RECORDER_TOPIC)
        cls: type[ChronikApplicationRecorder] = resolve_topic(topic) if topic else ChronikApplicationRecorder
        return cls(self._shared, self.category)

    def tracking_recorder(
        self, tracking_recorder_class: type[TrackingRecorder] | None = None
    ) -> TrackingRecorder:
        if tracking_recorder_class is None:
            topic = self.env.get(self.TRACKING_RECORDER_TOPIC)
            tracking_recorder_class = resolve_topic(topic) if topic else ChronikTrackingRecorder
        cls: type[TrackingRecorder] = tracking_recorder_class
        if not issubclass(cls, ChronikTrackingRecorder):
            raise TypeError(f"{cls!r} is not a ChronikTrackingRecorder: it cannot use a chronik store")
        return cls(self._shared)

    def process_recorder(self) -> ProcessRecorder:
        topic = self.env.get(self.PROCESS_RECORDER_TOPIC)
        cls: type[ChronikProcessRecorder] = resolve_topic(topic) if topic else ChronikProcessRecorder
        return cls(self._shared, self.category)

    def close(self) -> None:
        self.store.close()
        super().close()


Factory = ChronikFactory


class _Shared:
    """What the recorders of one factory share: the store and what they learnt of it."""

    def __init__(self, store: chronik.Store, *, text_ids: bool) -> None:
        self.store = store
        self.text_ids = text_ids
        dialect = str(getattr(store, "sql_dialect", ""))
        self.lock_statement = _POSTGRES_LOCK if dialect.startswith("postgresql") else None
        self.lock = threading.Lock()
        # Where the global log stands after position N (PostgreSQL's checkpoints also
        # hold a transaction id that a bare position cannot give back).
        self.checkpoints: OrderedDict[int, chronik.Checkpoint] = OrderedDict()
        # Streams kept one version below the library's (sequences that start at 0).
        self.offsets: OrderedDict[str, int] = OrderedDict()

    def begin(self, tx: StoreTransaction) -> None:
        if self.lock_statement is not None:
            tx.execute(self.lock_statement)

    def remember(self, position: int, checkpoint: chronik.Checkpoint) -> None:
        with self.lock:
            self.checkpoints[position] = checkpoint
            self.checkpoints.move_to_end(position)
            while len(self.checkpoints) > _CHECKPOINTS_CACHED:
                self.checkpoints.popitem(last=False)

    def start_after(self, position: int) -> chronik.Checkpoint | None:
        """A checkpoint at or before position ``position`` in the log (None: the start).

        Readers skip what they read at or below ``position``, so an earlier one is
        only slower, never wrong (see THE ORDER OF NOTIFICATION IDS)."""
        if position <= 0:
            return None
        with self.lock:
            known = self.checkpoints.get(position)
            if known is not None:
                return known
            below = [p for p in self.checkpoints if p < position]
            nearest = self.checkpoints[max(below)] if below else None
        head = self.store.head()
        if head is None:
            return None
        if len(head.parts) == 1:  # the checkpoint is the position itself (SQLite, memory)
            return chronik.Checkpoint(head.kind, (position,))
        return nearest

    def offset(self, stream_id: str) -> int | None:
        with self.lock:
            return self.offsets.get(stream_id)

    def set_offset(self, stream_id: str, offset: int) -> None:
        with self.lock:
            self.offsets[stream_id] = offset
            while len(self.offsets) > _OFFSETS_CACHED:
                self.offsets.popitem(last=False)


def _encode_state(state: bytes) -> tuple[Any, bool]:
    """The payload for ``state``: its JSON value when it is JSON that reads back byte
    for byte, else its base64 text (True: say so in the metadata)."""
    try:
        value = msgspec.json.decode(state)
    except msgspec.DecodeError:
        pass
    else:
        if msgspec.json.encode(value) == state:
            return value, False
    return base64.b64encode(state).decode("ascii"), True


def _library_part(event: chronik.RecordedEvent) -> dict[str, Any]:
    if event.raw_metadata is None:
        return {}
    part = event.metadata.get(_KEY)
    return part if isinstance(part, dict) else {}


def _originator_version(event: chronik.RecordedEvent) -> int:
    version = _library_part(event).get("originator_version")
    return event.version if version is None else int(version)


class ChronikAggregateRecorder(AggregateRecorder):
    """Aggregate sequences as chronik streams.

    In an event recorder a sequence's versions follow each other (as an aggregate's
    do), from 1 or from 0; in a sparse one (snapshots) they only increase.
    """

    def __init__(self, shared: _Shared, category: str, *, sparse: bool = False) -> None:
        self._shared = shared
        self.store = shared.store
        self.category = category
        self.sparse = sparse
        self._prefix = f"{category}-"

    # -- ids ------------------------------------------------------------------------------

    def stream_id(self, originator_id: UUID | str) -> str:
        """The chronik stream of an aggregate's sequence."""
        return f"{self._prefix}{originator_id}"

    def _originator_id(self, stream_id: str) -> UUID | str:
        text = stream_id[len(self._prefix) :] if stream_id.startswith(self._prefix) else stream_id
        if self._shared.text_ids:
            return text
        try:
            return UUID(text)
        except ValueError:
            return text

    def _stored(self, event: chronik.RecordedEvent) -> tuple[int, bytes]:
        part = _library_part(event)
        raw = event.raw_data
        data = raw.encode() if isinstance(raw, str) else bytes(raw)
        if part.get("state") == _BASE64:
            data = base64.b64decode(msgspec.json.decode(data))
        version = part.get("originator_version")
        return (event.version if version is None else int(version)), data

    # -- writing --------------------------------------------------------------------------

    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        self._write(stored_events, kwargs.get("tracking"))
        return None

    def _write(self, stored_events: Sequence[StoredEvent], tracking: Tracking | None) -> list[int]:
        """Append the events (and record ``tracking``) in one transaction; their positions."""
        groups: dict[str, list[StoredEvent]] = {}
        for stored in stored_events:
            groups.setdefault(self.stream_id(stored.originator_id), []).append(stored)
        for stream_id, group in groups.items():
            self._check_sequence(stream_id, group)
        for _attempt in range(3):
            plans = {stream_id: self._plan(stream_id, group) for stream_id, group in groups.items()}
            try:
                with self.store.transaction() as tx:
                    self._shared.begin(tx)
                    positions: list[int] = []
                    for stream_id, (expected, events) in plans.items():
                        result = tx.append(stream_id, events, expected)
                        first = result.position - len(events) + 1
                        positions.extend(range(first, result.position + 1))
                        self._shared.remember(result.position, result.checkpoint)
                    if tracking is not None:
                        _record_tracking(tx, tracking)
                return positions
            except WrongExpectedVersionError as err:
                if not self._learn(err, groups):
                    raise IntegrityError(str(err)) from err
            except ConcurrencyError as err:
                raise IntegrityError(str(err)) from err
            except ChronikError as err:
                raise OperationalError(str(err)) from err
        raise IntegrityError(f"cannot place the events of {sorted(groups)} in their streams")

    def _check_sequence(self, stream_id: str, group: list[StoredEvent]) -> None:
        versions = [stored.originator_version for stored in group]
        if len(set(versions)) != len(versions):
            raise IntegrityError(f"stream {stream_id!r}: the same version twice in one write: {versions}")
        if versions[0] < 0:
            raise DataError(f"stream {stream_id!r}: originator_version {versions[0]} is below 0")
        if self.sparse:
            if versions != sorted(versions):
                raise IntegrityError(f"stream {stream_id!r}: versions must increase, got {versions}")
        elif versions != list(range(versions[0], versions[0] + len(versions))):
            raise DataError(
                f"stream {stream_id!r}: versions {versions} leave a gap; a chronik stream's "
                "versions follow each other, as an aggregate's do"
            )

    def _plan(self, stream_id: str, group: list[StoredEvent]) -> tuple[int, list[chronik.NewEvent]]:
        """The expected version and the events to append to ``stream_id``."""
        first = group[0].originator_version
        if self.sparse:
            last = self.store.read_stream(stream_id, backwards=True, limit=1)
            current = last[0].version if last else 0
            if last and first <= _originator_version(last[0]):
                raise IntegrityError(
                    f"stream {stream_id!r}: version {first} is not after the last recorded, "
                    f"{_originator_version(last[0])}"
                )
        else:
            offset = 1 if first == 0 else (self._shared.offset(stream_id) or 0)
            current = first - 1 + offset
        events = []
        for place, stored in enumerate(group, start=current + 1):
            data, as_base64 = _encode_state(stored.state)
            part: dict[str, Any] = {}
            if stored.originator_version != place:
                part["originator_version"] = stored.originator_version
            if as_base64:
                part["state"] = _BASE64
            events.append(chronik.NewEvent(stored.topic, data, {_KEY: part} if part else None))
        return current, events

    def _learn(self, err: WrongExpectedVersionError, groups: dict[str, list[StoredEvent]]) -> bool:
        """After a conflict: whether the stream turns out to be one version below the
        library's (it started at 0), so that a new attempt can succeed."""
        stream_id = err.stream_id
        if self.sparse or stream_id not in groups or self._shared.offset(stream_id):
            return False
        first = self.store.read_stream(stream_id, 1, 1)
        if not first or _originator_version(first[0]) != 0:
            return False
        self._shared.set_offset(stream_id, 1)
        return True

    # -- reading --------------------------------------------------------------------------

    def select_events(
        self,
        originator_id: UUID | str,
        *,
        gt: int | None = None,
        lte: int | None = None,
        desc: bool = False,
        limit: int | None = None,
    ) -> Sequence[StoredEvent]:
        stream_id = self.stream_id(originator_id)
        try:
            if self.sparse:  # a snapshot stream: few events, read whole
                recorded = self.store.read_stream(stream_id, backwards=desc)
            else:
                # The library's version v is chronik's v or v + 1 (a sequence from 0):
                # read the versions that can hold the range, then keep the range.
                low = 1 if gt is None else gt + 1
                high = None if lte is None else lte + 1
                margin = None if limit is None else limit + 1
                recorded = self.store.read_stream(stream_id, low, high, backwards=desc, limit=margin)
        except ChronikError as err:
            raise OperationalError(str(err)) from err
        selected: list[StoredEvent] = []
        for event in recorded:
            version, state = self._stored(event)
            if (gt is not None and version <= gt) or (lte is not None and version > lte):
                continue
            selected.append(StoredEvent(originator_id, version, event.type, state))
        return selected if limit is None else selected[:limit]


def _tracked(tx: StoreTransaction, application_name: str) -> int | None:
    row = tx.execute(_SELECT_TRACKING, {"name": application_name}).fetchone()
    return None if row is None else int(row[0])


def _record_tracking(tx: StoreTransaction, tracking: Tracking) -> None:
    current = _tracked(tx, tracking.application_name)
    if current is not None and current >= tracking.notification_id:
        raise IntegrityError(
            f"tracking: {tracking.application_name!r} is already at notification "
            f"{current}, not before {tracking.notification_id}"
        )
    tx.execute(_UPSERT_TRACKING, {"name": tracking.application_name, "id": tracking.notification_id})


class ChronikApplicationRecorder(ChronikAggregateRecorder, ApplicationRecorder):
    """Aggregate sequences, and the application sequence as chronik's global log."""

    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        return self._write(stored_events, kwargs.get("tracking"))

    def notifications(
        self, after: int, topics: Sequence[str] = (), stop: int | None = None
    ) -> Iterator[Notification]:
        """Notifications with ids above ``after`` (up to ``stop``), read lazily."""
        checkpoint = self._shared.start_after(after)
        try:
            for event in self.store.read_all(checkpoint, types=topics or None):
                if event.position <= after:
                    continue
                if stop is not None and event.position > stop:
                    return
                yield self.notification(event)
        except ChronikError as err:
            raise OperationalError(str(err)) from err

    def notification(self, event: chronik.RecordedEvent) -> Notification:
        """The library's notification for a recorded event."""
        self._shared.remember(event.position, event.checkpoint)
        version, state = self._stored(event)
        return Notification(
            id=event.position,
            originator_id=self._originator_id(event.stream_id),
            originator_version=version,
            topic=event.type,
            state=state,
        )

    def select_notifications(
        self,
        start: int | None,
        limit: int,
        stop: int | None = None,
        topics: Sequence[str] = (),
        *,
        inclusive_of_start: bool = True,
    ) -> Sequence[Notification]:
        after = 0 if start is None else (start - 1 if inclusive_of_start else start)
        return list(islice(self.notifications(after, topics, stop), limit))

    def max_notification_id(self) -> int | None:
        try:
            head = self.store.head()
        except ChronikError as err:
            raise OperationalError(str(err)) from err
        # A checkpoint's last part is the position, on every chronik backend.
        return None if head is None else head.parts[-1]

    def subscribe(
        self, gt: int | None = None, topics: Sequence[str] = ()
    ) -> Subscription[ApplicationRecorder]:
        return ChronikSubscription(self, gt, topics)


class ChronikSubscription(Subscription[ApplicationRecorder]):
    """The library's subscription over a chronik subscription: it blocks for new events
    and ends when stopped, from any thread."""

    def __init__(self, recorder: ChronikApplicationRecorder, gt: int | None, topics: Sequence[str]) -> None:
        super().__init__(recorder, gt, topics)
        self._chronik = recorder
        self._after = gt or 0
        self._feed = recorder.store.subscribe(
            recorder._shared.start_after(self._after), types=list(topics) or None
        )

    def stop(self) -> None:
        super().stop()
        self._feed.close()

    def __next__(self) -> Any:
        while not self._has_been_stopped:
            try:
                event = next(self._feed)
            except StopIteration:
                break
            except ChronikError as err:
                self.stop()
                raise OperationalError(str(err)) from err
            if event.position > self._after:
                return self._chronik.notification(event)
        raise StopIteration


class ChronikTrackingRecorder(TrackingRecorder):
    """Tracking records in the table ``eventsourcing_tracking`` of the store's database."""

    def __init__(self, shared: _Shared) -> None:
        self._shared = shared
        self.store = shared.store

    def insert_tracking(self, tracking: Tracking) -> None:
        try:
            with self.store.transaction() as tx:
                self._shared.begin(tx)
                _record_tracking(tx, tracking)
        except ChronikError as err:
            raise OperationalError(str(err)) from err

    def max_tracking_id(self, application_name: str) -> int | None:
        try:
            with self.store.transaction() as tx:
                return _tracked(tx, application_name)
        except ChronikError as err:
            raise OperationalError(str(err)) from err


class ChronikProcessRecorder(ChronikTrackingRecorder, ChronikApplicationRecorder, ProcessRecorder):
    """Events and the tracking record of the notification they answer, in one transaction."""

    def __init__(self, shared: _Shared, category: str) -> None:
        ChronikApplicationRecorder.__init__(self, shared, category)
