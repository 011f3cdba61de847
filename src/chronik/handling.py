"""Command handling: load a stream, decide, append with the loaded version, retry.

A :class:`CommandHandler` serves one model (a :class:`~chronik.Decider` or an
:class:`~chronik.Aggregate` subclass) on one store. For each command it loads the
stream (the latest snapshot, then the events after it), runs the decision, and
appends the new events expecting the version it loaded. When another writer got
there first the append fails with ``WrongExpectedVersionError``; the handler then
reloads and decides again, up to ``retries`` times. A command that decides nothing
appends nothing.

Every event a command produces carries its metadata: what the caller gave (the
acting user, a correlation id, ...), ``causation_id`` set to the command's id, and
``correlation_id`` defaulting to the command's id, or to the correlation id of the
event the command reacts to (``caused_by=``). A command given an id (``command_id=``
or ``caused_by=``) is applied at most once per stream: its events get ids derived
from it, so the store itself refuses a second copy, even after a snapshot.

The logic is written once, as generators that yield the I/O they need (read a
stream, load or save a snapshot, append) and receive its result. The sync
:class:`CommandHandler` and the asyncio :class:`AsyncCommandHandler` are thin shells
that perform those requests, so the retry loop exists in one place.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Final, Generic, Protocol, TypeVar, overload

from chronik import _spans
from chronik._command_io import Append as _Append
from chronik._command_io import Flow as _Flow
from chronik._command_io import LoadSnapshot as _LoadSnapshot
from chronik._command_io import ReadStream as _ReadStream
from chronik._command_io import SaveSnapshot as _SaveSnapshot
from chronik._command_io import drive as _drive
from chronik._command_io import drive_async as _drive_async
from chronik._model import Model, check_category, check_decision, fold_recorded
from chronik.aggregate import Aggregate, AggregateModel
from chronik.codec import Codec, EventRegistry
from chronik.decider import Decider, DeciderModel
from chronik.errors import (
    ConfigurationError,
    DuplicateEventError,
    InvalidInputError,
    RetriesExhaustedError,
    SnapshotDecodeError,
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
    Snapshot,
    check_expected_version,
    uuid7,
    validate_expected_version,
    validate_stream_id,
)
from chronik.snapshots import SnapshotPolicy, Snapshotter, state_subjects
from chronik.store import AsyncEventStore, AsyncSnapshotStore, EventStore, SnapshotStore, is_async

__all__ = ["AsyncCommandHandler", "CommandHandler", "CommandResult", "Loaded", "as_model"]

C = TypeVar("C")
S = TypeVar("S")
T = TypeVar("T")
A = TypeVar("A", bound=Aggregate)

_log = logging.getLogger(__name__)

# Event ids of a command with an id are uuid5(_IDS, "<command id> <stream id> <index>"):
# the same command decided again on the same stream yields the same ids, and the
# store refuses to store an id twice.
_IDS: Final = uuid.UUID("5b1e3c52-7d0a-4f43-9a35-2f6c1e0d8b27")
DEFAULT_RETRIES: Final = 3


@dataclasses.dataclass(frozen=True)
class CommandResult(Generic[S]):
    """What handling a command did.

    ``events`` are the events the command appended (empty when it decided nothing),
    ``version`` the stream's version afterwards and ``state`` the state at it.
    ``attempts`` is 1 unless the handler had to retry after a conflict.
    ``already_handled`` is True when the command's id had been handled on this
    stream before: nothing was appended this time, and ``events`` are the earlier
    ones when they could be found.
    """

    stream_id: str
    version: int
    state: S
    events: tuple[object, ...] = ()
    position: int | None = None
    checkpoint: Checkpoint | None = None
    attempts: int = 1
    already_handled: bool = False
    snapshot_saved: bool = False

    @property
    def appended(self) -> bool:
        """Whether this call appended events."""
        return bool(self.events) and not self.already_handled


@dataclasses.dataclass(frozen=True)
class Loaded(Generic[S]):
    """A stream's state at a version.

    ``recorded_at`` is when the event at ``version`` was recorded (None at version
    0); ``snapshot_version`` the version of the snapshot the load started from, or
    None when it replayed every event.
    """

    stream_id: str
    version: int
    state: S
    recorded_at: datetime | None = None
    snapshot_version: int | None = None


def as_model(model: object) -> Model[Any, Any]:
    """The :class:`Model` of a :class:`~chronik.Decider` or an Aggregate subclass."""
    if isinstance(model, Model):
        return model
    if isinstance(model, Decider):
        return DeciderModel(model)
    if isinstance(model, type) and issubclass(model, Aggregate):
        return AggregateModel(model)
    if isinstance(model, Aggregate):
        raise ConfigurationError(
            f"pass the aggregate class {type(model).__qualname__}, not an instance of it: "
            "the handler makes a fresh one for every command"
        )
    raise ConfigurationError(f"expected a chronik.Decider or a chronik.Aggregate subclass, got {model!r}")


@dataclasses.dataclass
class _Current(Generic[S]):
    """A stream as loaded for a command."""

    state: S
    version: int
    events: list[RecordedEvent]  # the events folded after the snapshot
    snapshot_version: int | None
    stale_snapshot: bool
    subjects: frozenset[str] = frozenset()  # whose personal data the state holds


@dataclasses.dataclass(frozen=True)
class _Stamp:
    """A command's id and the metadata stamped on every event it produces."""

    command_id: str
    explicit: bool
    metadata: dict[str, Any]

    @classmethod
    def make(
        cls,
        command_id: str | uuid.UUID | None,
        metadata: Mapping[str, Any] | None,
        caused_by: RecordedEvent | None,
    ) -> _Stamp:
        if metadata is not None and not isinstance(metadata, Mapping):
            raise InvalidInputError(f"metadata must be a mapping, got {type(metadata).__name__}")
        meta = dict(metadata or {})
        for key in meta:
            if not isinstance(key, str):
                raise InvalidInputError(f"metadata keys must be strings, got {key!r}")
        if "causation_id" in meta:
            raise InvalidInputError(
                "metadata must not set causation_id: it is the command's id, so pass command_id= instead"
            )
        if caused_by is not None and not isinstance(caused_by, RecordedEvent):
            raise InvalidInputError(f"caused_by takes a RecordedEvent, got {type(caused_by).__name__}")
        explicit = command_id is not None or caused_by is not None
        if command_id is None:
            # A reaction's id is the id of the event it reacts to, so the same event
            # handled twice (subscriptions deliver at least once) acts once.
            command_id = str(caused_by.event_id) if caused_by is not None else str(uuid7())
        elif isinstance(command_id, uuid.UUID):
            command_id = str(command_id)
        elif not isinstance(command_id, str) or not command_id or not command_id.isprintable():
            raise InvalidInputError(f"command_id must be a non-empty str or a UUID, got {command_id!r}")
        if caused_by is not None:
            upstream = caused_by.metadata.get("correlation_id")
            meta.setdefault("correlation_id", upstream if upstream else str(caused_by.event_id))
        meta.setdefault("correlation_id", command_id)
        meta["causation_id"] = command_id
        return cls(command_id, explicit, meta)

    def event_id(self, stream_id: str, index: int) -> uuid.UUID:
        if not self.explicit:
            return uuid7()
        return uuid.uuid5(_IDS, f"{self.command_id}\x1f{stream_id}\x1f{index}")

    def earlier(self, stream_id: str, events: list[RecordedEvent]) -> list[RecordedEvent]:
        """The events of ``events`` this command appended before (it has an id), in order."""
        if not self.explicit:
            return []
        return [e for e in events if e.metadata.get("causation_id") == self.command_id]


class Stamp(Protocol):
    """How a command's events are stamped, and how its earlier run is recognised: a
    :class:`_Stamp`, or a process manager's reaction (``chronik.process_managers``)."""

    @property
    def explicit(self) -> bool:
        """Whether the command has an id (so it is applied at most once per stream)."""

    @property
    def metadata(self) -> dict[str, Any]:
        """The metadata of every event it appends."""

    def event_id(self, stream_id: str, index: int) -> uuid.UUID:
        """The id of the ``index``-th (0-based) event it appends to ``stream_id``."""

    def earlier(self, stream_id: str, events: list[RecordedEvent]) -> list[RecordedEvent]:
        """Its events among ``events`` (a stream read when it is loaded), if it ran before."""


class _Plan(Generic[C, S]):
    """The whole of loading and command handling, as generators of I/O requests."""

    def __init__(
        self,
        model: Model[C, S],
        registry: EventRegistry,
        snapshots: SnapshotPolicy | None,
        retries: int,
        codec: Codec | None = None,
    ) -> None:
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ConfigurationError(f"retries must be an int >= 0, got {retries!r}")
        self.model = model
        self.registry = registry
        self.snapshots = None if snapshots is None else Snapshotter(snapshots, model)
        self.retries = retries
        self.codec = codec  # the store's: it tells whose personal data a folded state holds

    # -- loading ------------------------------------------------------------------

    def _snapshot(
        self, stream_id: str, limit: int | None
    ) -> _Flow[tuple[tuple[S, int, frozenset[str]] | None, bool]]:
        """The latest usable snapshot at or below ``limit`` as (state, version, the
        subjects whose data it holds), and whether a snapshot of another type or schema
        version was found instead."""
        if self.snapshots is None:
            return None, False
        snapshot: Snapshot | None = yield _LoadSnapshot(stream_id)
        if snapshot is None:
            return None, False
        if not self.snapshots.matches(snapshot):
            return None, True
        if limit is not None and isinstance(snapshot.version, int) and snapshot.version > limit:
            return None, False  # newer than the point asked for
        state: S = self.snapshots.restore(snapshot)
        return (state, snapshot.version, frozenset(snapshot.subjects)), False

    def _from_snapshot(
        self, stream_id: str, version: int, to_version: int | None
    ) -> _Flow[list[RecordedEvent]]:
        """The events from the snapshot's own version on, checking that it is there."""
        events: list[RecordedEvent] = yield _ReadStream(stream_id, version, to_version)
        if not events or events[0].version != version:
            raise SnapshotDecodeError(
                f"snapshot of stream {stream_id!r} is at version {version}, but the stream has no "
                "event at that version: the snapshot does not belong to this stream's events",
                stream_id=stream_id,
                version=version,
                type=self.snapshots.type if self.snapshots else "",
            )
        return events

    def _load_current(self, stream_id: str) -> _Flow[_Current[S]]:
        span = _spans.loading(self.model.name, stream_id)
        try:
            current = yield from self._read_current(stream_id)
        except BaseException as err:
            span.failed(err)
            raise
        span.loaded(current.version, current.snapshot_version, len(current.events))
        return current

    def _read_current(self, stream_id: str) -> _Flow[_Current[S]]:
        found, stale = yield from self._snapshot(stream_id, None)
        subjects: frozenset[str] = frozenset()
        if found is None:
            state, version, snapshot_version = self.model.initial(), 0, None
            events: list[RecordedEvent] = yield _ReadStream(stream_id, 1, None)
        else:
            state, version, subjects = found
            snapshot_version = version
            events = (yield from self._from_snapshot(stream_id, version, None))[1:]
        state = fold_recorded(self.model, state, events, self.registry)
        if events:
            version = events[-1].version
        state = self.model.bind(state, stream_id, version)
        subjects |= state_subjects(self.codec, events)
        return _Current(state, version, events, snapshot_version, stale, subjects)

    def load(self, stream_id: str, version: int | None, as_of: datetime | None) -> _Flow[Loaded[S]]:
        stream_id = validate_stream_id(stream_id)
        check_category(self.model, stream_id)
        if version is not None and as_of is not None:
            raise InvalidInputError("load takes version= or as_of=, not both")
        if version is not None and (isinstance(version, bool) or not isinstance(version, int) or version < 0):
            raise InvalidInputError(f"version must be an int >= 0, got {version!r}")
        if as_of is not None and (not isinstance(as_of, datetime) or as_of.utcoffset() is None):
            raise InvalidInputError(
                f"as_of must be a timezone-aware datetime (events are recorded in UTC), got {as_of!r}"
            )
        if version == 0:
            return Loaded(stream_id, 0, self.model.bind(self.model.initial(), stream_id, 0))
        span = _spans.loading(self.model.name, stream_id)
        try:
            loaded = yield from self._read_at(stream_id, version, as_of)
        except BaseException as err:
            span.failed(err)
            raise
        span.loaded(loaded.version, loaded.snapshot_version, None)
        return loaded

    def _read_at(self, stream_id: str, version: int | None, as_of: datetime | None) -> _Flow[Loaded[S]]:
        found, _ = yield from self._snapshot(stream_id, version)
        state = self.model.initial()
        snapshot_version = None
        read: list[RecordedEvent]
        if found is not None:
            state, snapshot_version, _ = found
            read = yield from self._from_snapshot(stream_id, snapshot_version, version)
            if as_of is not None and read[0].recorded_at > as_of:
                # The snapshot is newer than the moment asked for: replay from the start.
                earlier: list[RecordedEvent] = yield _ReadStream(stream_id, 1, snapshot_version - 1)
                state, snapshot_version, read = self.model.initial(), None, earlier + read
        else:
            read = yield _ReadStream(stream_id, 1, version)
        if as_of is not None:
            read = list(itertools.takewhile(lambda e: e.recorded_at <= as_of, read))
        if version is not None and (not read or read[-1].version < version):
            actual = read[-1].version if read else 0
            raise InvalidInputError(
                f"stream {stream_id!r} is at version {actual}: it has no version {version}"
            )
        later = read[1:] if snapshot_version is not None else read
        state = fold_recorded(self.model, state, later, self.registry)
        at = read[-1].version if read else 0
        return Loaded(
            stream_id,
            at,
            self.model.bind(state, stream_id, at),
            read[-1].recorded_at if read else None,
            snapshot_version,
        )

    def refresh_snapshot(self, stream_id: str) -> _Flow[Loaded[S]]:
        stream_id = validate_stream_id(stream_id)
        check_category(self.model, stream_id)
        if self.snapshots is None:
            raise ConfigurationError("this handler has no SnapshotPolicy: there is no snapshot to refresh")
        events: list[RecordedEvent] = yield _ReadStream(stream_id, 1, None)
        state = fold_recorded(self.model, self.model.initial(), events, self.registry)
        version = events[-1].version if events else 0
        state = self.model.bind(state, stream_id, version)
        if version:
            snapshot = self.snapshots.encode(stream_id, version, state, state_subjects(self.codec, events))
            yield _SaveSnapshot(snapshot)
        return Loaded(stream_id, version, state, events[-1].recorded_at if events else None)

    # -- handling -------------------------------------------------------------------

    def handle(
        self,
        stream_id: str,
        command: C,
        command_id: str | uuid.UUID | None,
        metadata: Mapping[str, Any] | None,
        caused_by: RecordedEvent | None,
        expected_version: ExpectedVersion = ANY,
    ) -> _Flow[CommandResult[S]]:
        stream_id, stamp = self._refuse_early(stream_id, command, command_id, metadata, caused_by)
        return (yield from self.handle_stamped(stream_id, command, stamp, expected_version))

    def handle_stamped(
        self, stream_id: str, command: C, stamp: Stamp, expected_version: ExpectedVersion = ANY
    ) -> _Flow[CommandResult[S]]:
        """:meth:`handle` with the stamp made, the stream id and command checked."""
        expected = validate_expected_version(expected_version)
        conflict: WrongExpectedVersionError | None = None
        for attempt in range(1, self.retries + 2):
            current = yield from self._load_current(stream_id)
            if stamp.explicit:
                earlier = stamp.earlier(stream_id, current.events)
                if earlier:
                    return CommandResult(
                        stream_id,
                        current.version,
                        current.state,
                        tuple(e.data for e in earlier),
                        attempts=attempt,
                        already_handled=True,
                    )
            if expected is STREAM_EXISTS and current.version == 0:
                raise StreamNotFoundError(stream_id, expected)
            if not check_expected_version(expected, current.version):
                # The caller's expectation, not a race: deciding again cannot help.
                raise WrongExpectedVersionError(stream_id, expected, current.version)
            decided = check_decision(
                self.model.decide(command, current.state),
                self.model,
                stream_id,
                current.version,
                self.registry,
            )
            if not decided:
                saved = yield from self._maybe_snapshot(
                    stream_id, current, current.version, current.state, []
                )
                return CommandResult(
                    stream_id, current.version, current.state, attempts=attempt, snapshot_saved=saved
                )
            new_events = self._stamped(stream_id, stamp, decided)
            try:
                appended: AppendResult = yield _Append(stream_id, new_events, current.version)
            except WrongExpectedVersionError as err:
                conflict = err  # another writer got there first: load again and decide again
                if attempt <= self.retries:
                    _spans.conflicted(err, attempt, self.retries + 1)
                continue
            except DuplicateEventError as err:
                if not stamp.explicit or err.event_id not in {e.event_id for e in new_events}:
                    raise
                # Handled before, earlier than the snapshot the scan above started from.
                again = yield from self._load_current(stream_id)
                return CommandResult(
                    stream_id, again.version, again.state, attempts=attempt, already_handled=True
                )
            return (yield from self._appended(stream_id, current, decided, appended, attempt))
        assert conflict is not None
        _spans.handling_log.warning(
            "stream %s still moved on after %d attempts: giving up",
            stream_id,
            self.retries + 1,
            extra={"stream_id": stream_id, "version": conflict.actual, "attempt": self.retries + 1},
        )
        raise RetriesExhaustedError(
            stream_id, self.retries + 1, version=conflict.actual, type=self.model.label
        ) from conflict

    def start(
        self,
        stream_id: str,
        command: C,
        command_id: str | uuid.UUID | None,
        metadata: Mapping[str, Any] | None,
        caused_by: RecordedEvent | None,
    ) -> _Flow[CommandResult[S]]:
        """Decide ``command`` on the initial state and append expecting no stream: no read."""
        stream_id, stamp = self._refuse_early(stream_id, command, command_id, metadata, caused_by)
        current = _Current(self.model.bind(self.model.initial(), stream_id, 0), 0, [], None, False)
        decided = check_decision(
            self.model.decide(command, current.state), self.model, stream_id, 0, self.registry
        )
        if not decided:
            return CommandResult(stream_id, 0, current.state)
        # A stream that exists already fails with WrongExpectedVersionError (expected
        # NO_STREAM): starting it again is not a conflict a retry could resolve.
        appended: AppendResult = yield _Append(stream_id, self._stamped(stream_id, stamp, decided), NO_STREAM)
        return (yield from self._appended(stream_id, current, decided, appended, 1))

    def _refuse_early(
        self,
        stream_id: str,
        command: C,
        command_id: str | uuid.UUID | None,
        metadata: Mapping[str, Any] | None,
        caused_by: RecordedEvent | None,
    ) -> tuple[str, _Stamp]:
        """Everything about a command that can be refused without I/O, refused first."""
        stream_id = validate_stream_id(stream_id)
        check_category(self.model, stream_id)
        self.model.check_command(command)
        return stream_id, _Stamp.make(command_id, metadata, caused_by)

    def _stamped(self, stream_id: str, stamp: Stamp, decided: list[object]) -> list[NewEvent]:
        return [
            self.registry.new_event(event, metadata=stamp.metadata, event_id=stamp.event_id(stream_id, i))
            for i, event in enumerate(decided)
        ]

    def _appended(
        self,
        stream_id: str,
        current: _Current[S],
        decided: list[object],
        appended: AppendResult,
        attempt: int,
    ) -> _Flow[CommandResult[S]]:
        """The result of a command whose events are committed (snapshot taken if due)."""
        state = self.model.bind(self.model.after(current.state, decided), stream_id, appended.version)
        saved = yield from self._maybe_snapshot(stream_id, current, appended.version, state, decided)
        return CommandResult(
            stream_id,
            appended.version,
            state,
            tuple(decided),
            appended.position,
            appended.checkpoint,
            attempt,
            snapshot_saved=saved,
        )

    def _maybe_snapshot(
        self, stream_id: str, current: _Current[S], version: int, state: S, new_events: list[object]
    ) -> _Flow[bool]:
        """Save a snapshot if the policy says so; never fail the command over it."""
        if self.snapshots is None or version == 0:
            return False
        try:
            due = current.stale_snapshot or self.snapshots.policy.due(
                version=version,
                last_snapshot_version=current.snapshot_version or 0,
                state=state,
                new_events=new_events,
            )
            if not due or version == current.snapshot_version:
                return False
            subjects = current.subjects | state_subjects(self.codec, [], new_events)
            saved = yield _SaveSnapshot(self.snapshots.encode(stream_id, version, state, subjects))
        except Exception:
            # The events are committed: the command has succeeded whatever happens to
            # its snapshot, and the next command will simply try again.
            _log.warning(
                "could not save a snapshot of stream %r at version %d", stream_id, version, exc_info=True
            )
            return False
        return saved is not False  # False: a subject of the state was forgotten meanwhile


# -- the shells ------------------------------------------------------------------------


def command_flow(
    model: Model[C, S],
    registry: EventRegistry,
    stream_id: str,
    command: C,
    stamp: Stamp,
    expected_version: ExpectedVersion = ANY,
) -> _Flow[CommandResult[S]]:
    """One command as :meth:`CommandHandler.handle` runs it (without snapshots), its
    events stamped by ``stamp``, checked now: for a process manager to drive through
    its transaction (``chronik._command_io.drive``)."""
    stream_id = validate_stream_id(stream_id)
    check_category(model, stream_id)
    model.check_command(command)
    plan: _Plan[C, S] = _Plan(model, registry, None, DEFAULT_RETRIES)
    return plan.handle_stamped(stream_id, command, stamp, expected_version)


def load_flow(model: Model[C, S], registry: EventRegistry, stream_id: str) -> _Flow[Loaded[S]]:
    """A stream's current state as :meth:`CommandHandler.load` loads it (without snapshots)."""
    plan: _Plan[C, S] = _Plan(model, registry, None, DEFAULT_RETRIES)
    return plan.load(stream_id, None, None)


class CommandHandler(Generic[C, S]):
    """Handles commands for one decider or aggregate class on one store.

    ``snapshots`` is a :class:`~chronik.SnapshotPolicy` (the store must keep
    snapshots); ``retries`` how many times a command is decided again after another
    writer changed its stream first (0: never).

    For a decider, a command is a value passed to its ``decide``; for an aggregate,
    a function that takes the aggregate and calls its methods. A handler keeps
    nothing between commands, so one can serve many threads at once.
    """

    @overload
    def __init__(
        self: CommandHandler[C, S],
        store: EventStore,
        model: Decider[C, Any, S],
        *,
        snapshots: SnapshotPolicy | None = None,
        retries: int = DEFAULT_RETRIES,
    ) -> None: ...

    @overload
    def __init__(
        self: CommandHandler[Callable[[A], object], A],
        store: EventStore,
        model: type[A],
        *,
        snapshots: SnapshotPolicy | None = None,
        retries: int = DEFAULT_RETRIES,
    ) -> None: ...

    def __init__(
        self,
        store: EventStore,
        model: Any,
        *,
        snapshots: SnapshotPolicy | None = None,
        retries: int = DEFAULT_RETRIES,
    ) -> None:
        if is_async(store):
            raise ConfigurationError(f"{store!r} is an asyncio store: use AsyncCommandHandler with it")
        if not isinstance(store, EventStore):
            raise ConfigurationError(f"CommandHandler needs an event store, got {store!r}")
        self._snapshot_store: SnapshotStore | None = None
        if snapshots is not None:
            if not isinstance(store, SnapshotStore):
                raise ConfigurationError(
                    f"{store!r} cannot keep snapshots, so it cannot take a SnapshotPolicy"
                )
            self._snapshot_store = store
        self.store = store
        self._plan: _Plan[C, S] = _Plan(
            as_model(model), store.codec.registry, snapshots, retries, store.codec
        )

    def handle(
        self,
        stream_id: str,
        command: C,
        *,
        command_id: str | uuid.UUID | None = None,
        metadata: Mapping[str, Any] | None = None,
        caused_by: RecordedEvent | None = None,
        expected_version: ExpectedVersion = ANY,
    ) -> CommandResult[S]:
        """Load ``stream_id``, decide ``command``, append what it decided; retry on conflict.

        ``metadata`` (the acting user, a correlation id, ...) is stamped on every
        event, with ``causation_id`` set to ``command_id`` (a new id if not given).
        A command with an id already handled on this stream is not applied again.
        ``caused_by``: the event this command reacts to; its correlation id is
        carried forward and its id is the command's id unless one is given.

        ``expected_version`` is what the stream must be at when loaded: ``ANY`` (the
        default: a new stream starts from the initial state), ``STREAM_EXISTS`` (else
        :class:`~chronik.errors.StreamNotFoundError`, nothing appended), ``NO_STREAM``,
        or an exact version (a client's optimistic lock: a stream that moved on is a
        ``WrongExpectedVersionError`` at once, never retried).
        """
        with _spans.handling("handle", self._plan.model.name, stream_id, command) as span:
            flow = self._plan.handle(stream_id, command, command_id, metadata, caused_by, expected_version)
            return span.done(_drive(self.store, self._snapshot_store, flow))

    def start(
        self,
        stream_id: str,
        command: C,
        *,
        command_id: str | uuid.UUID | None = None,
        metadata: Mapping[str, Any] | None = None,
        caused_by: RecordedEvent | None = None,
    ) -> CommandResult[S]:
        """Run a command that creates ``stream_id``: decide it on the initial state, append
        expecting no stream. Nothing is read first, so it costs one write.

        If the stream exists already it raises ``WrongExpectedVersionError`` (expected
        ``NO_STREAM``) and appends nothing; it does not retry. A start re-sent with the
        same ``command_id`` (or ``caused_by``) is recognised by the store from its event
        ids: it writes nothing and returns the original version and position.
        """
        with _spans.handling("start", self._plan.model.name, stream_id, command) as span:
            flow = self._plan.start(stream_id, command, command_id, metadata, caused_by)
            return span.done(_drive(self.store, self._snapshot_store, flow))

    def load(self, stream_id: str, *, version: int | None = None, as_of: datetime | None = None) -> Loaded[S]:
        """The stream's state now, after its first ``version`` events, or ``as_of`` a moment.

        ``as_of`` gives the state after the last event recorded at or before it. A
        snapshot is used when it is not newer than the point asked for.
        """
        return _drive(self.store, self._snapshot_store, self._plan.load(stream_id, version, as_of))

    def refresh_snapshot(self, stream_id: str) -> Loaded[S]:
        """Replay the whole stream, ignoring its snapshot, and save a fresh snapshot of it."""
        with _spans.handling("refresh_snapshot", self._plan.model.name, stream_id) as span:
            return span.done(_drive(self.store, self._snapshot_store, self._plan.refresh_snapshot(stream_id)))

    def __repr__(self) -> str:
        return f"CommandHandler({self._plan.model.label}, {self.store!r})"


class AsyncCommandHandler(Generic[C, S]):
    """The asyncio twin of :class:`CommandHandler`, for an :class:`~chronik.AsyncEventStore`.

    The same logic runs in both; only the I/O is awaited here.
    """

    @overload
    def __init__(
        self: AsyncCommandHandler[C, S],
        store: AsyncEventStore,
        model: Decider[C, Any, S],
        *,
        snapshots: SnapshotPolicy | None = None,
        retries: int = DEFAULT_RETRIES,
    ) -> None: ...

    @overload
    def __init__(
        self: AsyncCommandHandler[Callable[[A], object], A],
        store: AsyncEventStore,
        model: type[A],
        *,
        snapshots: SnapshotPolicy | None = None,
        retries: int = DEFAULT_RETRIES,
    ) -> None: ...

    def __init__(
        self,
        store: AsyncEventStore,
        model: Any,
        *,
        snapshots: SnapshotPolicy | None = None,
        retries: int = DEFAULT_RETRIES,
    ) -> None:
        if not is_async(store) or not isinstance(store, AsyncEventStore):
            raise ConfigurationError(
                f"AsyncCommandHandler needs an asyncio store (chronik.connect_async), got {store!r}"
            )
        self._snapshot_store: AsyncSnapshotStore | None = None
        if snapshots is not None:
            if not isinstance(store, AsyncSnapshotStore):
                raise ConfigurationError(
                    f"{store!r} cannot keep snapshots, so it cannot take a SnapshotPolicy"
                )
            self._snapshot_store = store
        self.store = store
        self._plan: _Plan[C, S] = _Plan(
            as_model(model), store.codec.registry, snapshots, retries, store.codec
        )

    async def handle(
        self,
        stream_id: str,
        command: C,
        *,
        command_id: str | uuid.UUID | None = None,
        metadata: Mapping[str, Any] | None = None,
        caused_by: RecordedEvent | None = None,
        expected_version: ExpectedVersion = ANY,
    ) -> CommandResult[S]:
        """See :meth:`CommandHandler.handle`."""
        with _spans.handling("handle", self._plan.model.name, stream_id, command) as span:
            flow = self._plan.handle(stream_id, command, command_id, metadata, caused_by, expected_version)
            return span.done(await _drive_async(self.store, self._snapshot_store, flow))

    async def start(
        self,
        stream_id: str,
        command: C,
        *,
        command_id: str | uuid.UUID | None = None,
        metadata: Mapping[str, Any] | None = None,
        caused_by: RecordedEvent | None = None,
    ) -> CommandResult[S]:
        """See :meth:`CommandHandler.start`."""
        with _spans.handling("start", self._plan.model.name, stream_id, command) as span:
            flow = self._plan.start(stream_id, command, command_id, metadata, caused_by)
            return span.done(await _drive_async(self.store, self._snapshot_store, flow))

    async def load(
        self, stream_id: str, *, version: int | None = None, as_of: datetime | None = None
    ) -> Loaded[S]:
        """See :meth:`CommandHandler.load`."""
        return await _drive_async(
            self.store, self._snapshot_store, self._plan.load(stream_id, version, as_of)
        )

    async def refresh_snapshot(self, stream_id: str) -> Loaded[S]:
        """See :meth:`CommandHandler.refresh_snapshot`."""
        with _spans.handling("refresh_snapshot", self._plan.model.name, stream_id) as span:
            flow = self._plan.refresh_snapshot(stream_id)
            return span.done(await _drive_async(self.store, self._snapshot_store, flow))

    def __repr__(self) -> str:
        return f"AsyncCommandHandler({self._plan.model.label}, {self.store!r})"
