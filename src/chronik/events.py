"""The values that cross the store boundary: new events, recorded events, results,
and what projections record about themselves (state, dead letters, and the
heartbeats of the runners running them).

Nothing here does I/O. ``RecordedEvent`` decodes its payload lazily, on first access
to ``data`` or ``metadata``, so a reader that only routes or counts events never pays
for decoding them.
"""

from __future__ import annotations

import enum
import random
import threading
import time
import unicodedata
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, Generic, Literal

import msgspec

from chronik.errors import InvalidExpectedVersionError, InvalidStreamIdError

if TYPE_CHECKING:
    from typing_extensions import TypeVar

    from chronik.codec import Codec

    # For type checkers, a bare ``RecordedEvent`` is ``RecordedEvent[Any]`` (PEP 696), as
    # it was before the class was generic. Covariant: ``data`` is read-only, so a
    # ``RecordedEvent[BookAdded]`` is a ``RecordedEvent[object]``.
    DataT = TypeVar("DataT", covariant=True, default=Any)
else:  # typing.TypeVar takes a default only from Python 3.13; it is never used at run time.
    from typing import TypeVar

    DataT = TypeVar("DataT", covariant=True)

__all__ = [
    "ACTIVE_STATES",
    "ANY",
    "NO_STREAM",
    "STALE_BEATS",
    "STREAM_EXISTS",
    "AppendResult",
    "Checkpoint",
    "DeadLetter",
    "ExpectedVersion",
    "FailedEvent",
    "NewEvent",
    "ProjectionState",
    "ProjectionStatus",
    "RecordedEvent",
    "Recovery",
    "Retrying",
    "RunnerHeartbeat",
    "RunnerState",
    "Snapshot",
    "StreamInfo",
    "StreamState",
    "StreamWrite",
    "category_of",
    "unprintable",
    "uuid7",
    "validate_expected_version",
    "validate_stream_id",
    "validate_tags",
]

MAX_STREAM_ID_LENGTH: Final = 200


class StreamState(enum.Enum):
    """Expected versions that are not an exact number."""

    ANY = "any"
    NO_STREAM = "no_stream"
    STREAM_EXISTS = "stream_exists"

    def __repr__(self) -> str:
        return self.name


ANY: Final = StreamState.ANY
NO_STREAM: Final = StreamState.NO_STREAM
STREAM_EXISTS: Final = StreamState.STREAM_EXISTS

ExpectedVersion = int | StreamState
"""``ANY``, ``NO_STREAM``, ``STREAM_EXISTS`` or an exact version (0 = no stream yet)."""


def validate_stream_id(stream_id: object) -> str:
    """Return ``stream_id`` if valid, else raise :class:`InvalidStreamIdError`."""
    if not isinstance(stream_id, str):
        raise InvalidStreamIdError(f"stream id must be a str, got {type(stream_id).__name__}")
    if not stream_id:
        raise InvalidStreamIdError("stream id must not be empty")
    if len(stream_id) > MAX_STREAM_ID_LENGTH:
        raise InvalidStreamIdError(
            f"stream id is {len(stream_id)} characters, over the limit of {MAX_STREAM_ID_LENGTH}"
        )
    if not stream_id.isprintable():
        raise InvalidStreamIdError(f"stream id {stream_id!r} is refused: {unprintable(stream_id)}")
    if stream_id.isspace():  # after isprintable, so only spaces are left to find here
        raise InvalidStreamIdError(f"stream id {stream_id!r} is only whitespace")
    return stream_id


_UNPRINTABLE_KINDS: Final = {
    "Cc": "control character",
    "Cf": "invisible format character",
    "Co": "private-use character",
    "Cn": "unassigned code point",
    "Zl": "line separator",
    "Zp": "paragraph separator",
    "Zs": "space character other than ' '",
}


def unprintable(text: str) -> str:
    """Name the first character of ``text`` that ``str.isprintable`` refuses, and where."""
    index, char = next((i, c) for i, c in enumerate(text) if not c.isprintable())
    code = repr(char)[1:-1]
    category = unicodedata.category(char)
    if category == "Cs":  # half of a UTF-16 pair on its own: no encoder can write it
        return f"lone surrogate {code} at index {index}; not valid Unicode"
    name = unicodedata.name(char, "")
    kind = _UNPRINTABLE_KINDS.get(category, "unprintable character")
    return f"{kind} {code}{f' ({name})' if name else ''} at index {index}"


def category_of(stream_id: str) -> str:
    """The part of a stream id before the first ``-`` (the whole id if there is none)."""
    return stream_id.partition("-")[0]


def validate_expected_version(expected: object) -> ExpectedVersion:
    """Return ``expected`` if valid, else raise :class:`InvalidExpectedVersionError`."""
    if isinstance(expected, StreamState):
        return expected
    if isinstance(expected, bool) or not isinstance(expected, int):
        raise InvalidExpectedVersionError(
            f"expected version must be ANY, NO_STREAM, STREAM_EXISTS or an int >= 0, got {expected!r}"
        )
    if expected < 0:
        raise InvalidExpectedVersionError(
            f"expected version must be >= 0 (0 means the stream does not exist), got {expected}"
        )
    return expected


def check_expected_version(expected: ExpectedVersion, actual: int) -> bool:
    """Whether a stream at version ``actual`` satisfies ``expected``."""
    if expected is ANY:
        return True
    if expected is NO_STREAM:
        return actual == 0
    if expected is STREAM_EXISTS:
        return actual > 0
    return expected == actual


_uuid_lock = threading.Lock()
_last_ms = 0
_counter = 0
# The random bits only need to make ids unique, not unguessable: Python's generator
# is seeded from os.urandom and re-seeded in a forked child, and is 10x cheaper.
_random_bits = random.getrandbits
_time_ns = time.time_ns
_new_uuid = object.__new__
_set = object.__setattr__
_UNKNOWN = uuid.SafeUUID.unknown
_VERSION_AND_VARIANT: Final = (0x7 << 76) | (0b10 << 62)


def uuid7() -> uuid.UUID:
    """A time-ordered UUID (RFC 9562 version 7), monotonic within this process.

    Within one millisecond the 12-bit ``rand_a`` field is a counter seeded at random,
    so ids made in a row sort in the order they were made. 62 random bits follow.
    """
    global _last_ms, _counter
    rand = _random_bits(62)
    ms = _time_ns() // 1_000_000
    with _uuid_lock:
        if ms > _last_ms:
            _last_ms = ms
            _counter = rand >> 51  # 11 random bits: room to count up within the ms
        else:
            ms = _last_ms
            _counter += 1
            if _counter > 0xFFF:  # counter exhausted: borrow the next millisecond
                _last_ms += 1
                ms = _last_ms
                _counter = 0
        counter = _counter
    # Built the way uuid.UUID(int=...) would, without re-validating what is valid by
    # construction: this runs once per appended event.
    value = ((ms & 0xFFFF_FFFF_FFFF) << 80) | (counter << 64) | _VERSION_AND_VARIANT | rand
    result: uuid.UUID = _new_uuid(uuid.UUID)
    _set(result, "int", value)
    _set(result, "is_safe", _UNKNOWN)
    return result


class NewEvent(msgspec.Struct, frozen=True):
    """An event to append, with its payload already in JSON-ready form.

    ``data`` is any value msgspec can encode as JSON (usually a dict); registered
    typed events are turned into a ``NewEvent`` by the store's codec.
    """

    type: str
    data: Any
    metadata: Mapping[str, Any] | None = None
    event_id: uuid.UUID | None = None
    schema_version: int = 1
    tags: Sequence[str] = ()
    """Labels such as ``"course:c1"`` that queries by tag find the event by (see
    ``docs/dcb.md``); stored as a set, returned sorted."""


MAX_TAG_LENGTH: Final = 200


def validate_tags(tags: object) -> tuple[str, ...]:
    """``tags`` as a sorted tuple without repeats, or :class:`InvalidTagError`.

    A tag is a non-empty printable str of at most 200 characters; a bare str is
    refused (``tags="a"`` would be the tags ``a``), so is anything but a collection.
    """
    from chronik.errors import InvalidTagError

    if isinstance(tags, (str, bytes)) or not isinstance(tags, (Sequence, set, frozenset)):
        raise InvalidTagError(f"tags must be a list of strings, got {type(tags).__name__}: {tags!r}")
    for tag in tags:
        if not isinstance(tag, str):
            raise InvalidTagError(f"a tag must be a str, got {type(tag).__name__}: {tag!r}")
        if not tag or len(tag) > MAX_TAG_LENGTH:
            raise InvalidTagError(f"a tag must be 1 to {MAX_TAG_LENGTH} characters long, got {tag!r}")
        if not tag.isprintable():
            raise InvalidTagError(f"tag {tag!r} is refused: {unprintable(tag)}")
    return tuple(sorted(set(tags)))


class StreamWrite(msgspec.Struct, frozen=True):
    """One stream's part of an atomic multi-stream append."""

    stream_id: str
    events: Sequence[Any]
    expected_version: ExpectedVersion = ANY


class Checkpoint(msgspec.Struct, frozen=True, order=True):
    """Where a reader of the global log stands: resume with ``read_all(after=...)``.

    ``kind`` names the backend that made it; ``parts`` are its ordered numbers. To
    callers it is opaque; ``str()`` and :meth:`parse` round-trip it.
    """

    kind: str
    parts: tuple[int, ...]

    def __str__(self) -> str:
        return f"{self.kind}:{'.'.join(map(str, self.parts))}"

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        """Parse the form that ``str(checkpoint)`` produces."""
        from chronik.errors import InvalidCheckpointError

        kind, sep, rest = text.partition(":")
        try:
            parts = tuple(int(p) for p in rest.split("."))
        except ValueError:
            parts = ()
        if not sep or not kind or not parts:
            raise InvalidCheckpointError(f"not a checkpoint: {text!r} (expected 'kind:n[.n]')")
        return cls(kind, parts)


class AppendResult(msgspec.Struct, frozen=True):
    """What an append returns: the stream's version after it and where its last event is."""

    stream_id: str
    version: int
    position: int
    checkpoint: Checkpoint

    @property
    def next_expected_version(self) -> int:
        """The expected version for the next append to this stream."""
        return self.version


class StreamInfo(msgspec.Struct, frozen=True):
    """A stream's current version (0 when it does not exist).

    ``deleted`` says why a stream that had events reads as not existing: ``"soft"``
    (deleted, and may be written to again), ``"hard"`` (deleted for good) or
    ``"archived"`` (set aside by an operator); None for a live stream (see
    ``docs/lifecycle.md``). A deleted stream's version is 0.
    """

    stream_id: str
    version: int
    deleted: Literal["soft", "hard", "archived"] | None = None

    @property
    def exists(self) -> bool:
        return self.version > 0

    @property
    def category(self) -> str:
        return category_of(self.stream_id)


class Snapshot(msgspec.Struct, frozen=True):
    """A stored snapshot of a stream's state at ``version``.

    ``data`` is the encoded state (JSON bytes); ``schema_version`` is the state's own
    version, so the application can ignore a snapshot its code no longer understands.
    """

    stream_id: str
    version: int
    type: str
    schema_version: int
    data: bytes
    recorded_at: datetime | None = None
    subjects: tuple[str, ...] = ()
    """The data subjects whose personal data the state holds (crypto-shredding): the
    snapshot is sealed with their keys, and forgetting any of them makes it unusable.
    Filled in by the command handler; stores need not keep it (it is in ``data``)."""


_UNSET: Any = object()
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
# RecordedEvent's lazy fields are filled in past its read-only __setattr__.
_set_field: Final = msgspec.Struct.__setattr__


class RecordedEvent(msgspec.Struct, Generic[DataT], gc=False):
    """An event as stored: read-only, and as cheap to build as a tuple.

    ``data`` and ``metadata`` are decoded on first access; ``data`` is the registered
    typed object, or the raw JSON value for a type this process did not register
    (strict registries raise instead). ``raw_data`` is the stored JSON as read.

    Generic in its payload for type checkers only: a handler registered for
    ``BookAdded`` takes a ``RecordedEvent[BookAdded]`` and sees ``event.data`` as a
    ``BookAdded``; a bare ``RecordedEvent`` is ``RecordedEvent[Any]``. Nothing is
    checked at run time (``RecordedEvent[BookAdded]`` builds the same objects).

    ``tags`` follow the codec: a tuple, a list, a JSON array as text, or None.
    Backends may pass ``event_id`` as its 16 bytes, ``recorded_at`` as microseconds
    since the Unix epoch and ``checkpoint`` as the name of their checkpoint kind (for
    a checkpoint that is just the position); each is converted on first access, so a
    reader that only routes or counts events pays for none of it.

    (A msgspec Struct built by position: a store builds one per row read, and this is
    three times cheaper than a Python ``__init__``. ``gc=False`` is safe: a recorded
    event refers to its codec and payload, never back to anything that refers to it.)
    """

    stream_id: str
    version: int
    position: int
    _checkpoint: Checkpoint | str
    _event_id: uuid.UUID | bytes
    type: str
    schema_version: int
    raw_data: bytes | str
    raw_metadata: bytes | str | None
    _recorded_at: datetime | int
    _codec: Codec
    _tags: tuple[str, ...] | list[str] | str | None = ()
    _data: Any = _UNSET
    _metadata: Any = _UNSET
    _keys: Any = None
    """The subjects' keys the read loaded (``chronik.personal.KeyRing``), when it has
    personal data (set by ``chronik.backend.unlock_events``)."""

    def __setattr__(self, name: str, value: Any) -> None:
        # Only the lazily converted fields change, and only from their properties.
        if name[0] != "_" or name == "_codec":
            raise AttributeError(f"RecordedEvent is read-only: cannot set {name!r}")
        msgspec.Struct.__setattr__(self, name, value)

    @property
    def checkpoint(self) -> Checkpoint:
        """Where a reader of the global log stands after this event."""
        checkpoint = self._checkpoint
        if isinstance(checkpoint, str):
            checkpoint = Checkpoint(checkpoint, (self.position,))
            _set_field(self, "_checkpoint", checkpoint)
        return checkpoint

    @property
    def event_id(self) -> uuid.UUID:
        event_id = self._event_id
        if isinstance(event_id, bytes):
            event_id = uuid.UUID(bytes=event_id)
            _set_field(self, "_event_id", event_id)
        return event_id

    @property
    def recorded_at(self) -> datetime:
        """When the event was committed (UTC)."""
        recorded_at = self._recorded_at
        if isinstance(recorded_at, int):
            recorded_at = _EPOCH + timedelta(microseconds=recorded_at)
            _set_field(self, "_recorded_at", recorded_at)
        return recorded_at

    @property
    def tags(self) -> tuple[str, ...]:
        """The event's tags, sorted (empty when it has none)."""
        tags = self._tags
        if type(tags) is tuple:
            return tags
        if not tags:
            result: tuple[str, ...] = ()
        elif isinstance(tags, str):  # stored as a JSON array (SQLite)
            result = tuple(msgspec.json.decode(tags))
        else:
            result = tuple(tags)
        _set_field(self, "_tags", result)
        return result

    @property
    def data(self) -> DataT:
        """The payload: a typed event object, or a JSON value for unregistered types."""
        data: DataT = self._data
        if data is _UNSET:
            data = self._codec.decode(self)
            _set_field(self, "_data", data)
        return data

    @property
    def metadata(self) -> dict[str, Any]:
        """Metadata as a dict (``correlation_id``, ``causation_id``, ``user``, ...)."""
        metadata: dict[str, Any] = self._metadata
        if metadata is _UNSET:
            metadata = self._codec.decode_metadata(self)
            _set_field(self, "_metadata", metadata)
        return metadata

    @property
    def plain_data(self) -> bytes | str:
        """The payload as JSON, as the application wrote it: opened when it is sealed at
        rest (``chronik.cipher``), personal fields opened or, where their subject was
        forgotten, redacted (``chronik.personal``). ``raw_data`` when nothing is sealed.

        It is what the command line, exports and the web UI show.
        """
        return self._codec.plain_data(self)

    @property
    def plain_metadata(self) -> bytes | str | None:
        """The metadata as JSON, opened when it is sealed at rest (None when there is none)."""
        return self._codec.plain_metadata(self)

    @property
    def redacted(self) -> tuple[str, ...]:
        """The personal fields that read redacted, their subject forgotten (empty when none)."""
        return self._codec.redacted_fields(self)

    @property
    def category(self) -> str:
        return category_of(self.stream_id)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RecordedEvent):
            return NotImplemented
        return (
            self.stream_id == other.stream_id
            and self.version == other.version
            and self.position == other.position
            and self.event_id == other.event_id
            and self.type == other.type
            and self.schema_version == other.schema_version
            and self.data == other.data
            and self.metadata == other.metadata
            and self.tags == other.tags
        )

    def __hash__(self) -> int:
        return hash((self.event_id, self.position))

    def __repr__(self) -> str:
        return (
            f"RecordedEvent(stream_id={self.stream_id!r}, version={self.version}, "
            f"position={self.position}, type={self.type!r}, event_id={self.event_id})"
        )


# -- what projections record (every backend stores and returns these alike) --------------
ProjectionStatus = Literal["building", "live", "failed", "retired"]
"""``building``: catching up (from the start, or after a failure); ``live``: caught up,
following; ``failed``: stopped on an event its handler could not take; ``retired``:
replaced by a newer version (blue/green)."""


class FailedEvent(msgspec.Struct, frozen=True):
    """An event a handler could not take, and why."""

    stream_id: str
    version: int
    position: int
    checkpoint: Checkpoint
    event_id: uuid.UUID
    type: str
    error: str
    attempts: int

    @classmethod
    def of(cls, event: RecordedEvent, error: BaseException, attempts: int) -> FailedEvent:
        return cls(
            event.stream_id,
            event.version,
            event.position,
            event.checkpoint,
            event.event_id,
            event.type,
            f"{type(error).__name__}: {error}",
            attempts,
        )

    def describe(self) -> str:
        return (
            f"stream {self.stream_id!r} version {self.version} (type {self.type!r}, "
            f"position {self.position}): {self.error}"
        )


class ProjectionState(msgspec.Struct, frozen=True):
    """One version of one projection: its status, whether it serves queries, its failure."""

    name: str
    version: int
    status: ProjectionStatus
    active: bool = False
    failure: FailedEvent | None = None
    updated_at: datetime | None = None


class DeadLetter(msgspec.Struct, frozen=True):
    """An event parked by a projection whose failure policy is ``park``."""

    projection: str
    projection_version: int
    event: FailedEvent
    parked_at: datetime | None = None


# -- what running runners say about themselves (RunnerHeartbeats) ----------------------------
RunnerState = Literal["idle", "running", "caught_up", "retrying", "stopped"]
"""``idle``: not running (a ``run_until_caught_up`` returned); ``running``: handling
events, behind the head; ``caught_up``: following live events at the head;
``retrying``: riding out a transient fault; ``stopped``: ended (why is recorded)."""

ACTIVE_STATES: Final = frozenset({"running", "caught_up", "retrying"})
"""States in which a runner writes heartbeats, so a silent one is stale."""

STALE_BEATS: Final = 3
"""A running runner not heard from for this many heartbeat intervals is stale."""


class Retrying(msgspec.Struct, frozen=True):
    """A run of transient failures still going on: ``since`` the first, ``attempts``
    failed so far, ``error`` the last one (as text)."""

    since: datetime
    attempts: int
    error: str


class Recovery(msgspec.Struct, frozen=True):
    """A run of transient failures that ended: from ``since`` (the first failure) to
    ``until`` (the first success after them), ``attempts`` failed, ``error`` the last."""

    since: datetime
    until: datetime
    attempts: int
    error: str

    @property
    def seconds(self) -> float:
        return max(0.0, (self.until - self.since).total_seconds())


class RunnerHeartbeat(msgspec.Struct, frozen=True):
    """What one runner (of a projection, a process manager, a consumer-group member)
    last said about itself, stored where other processes read it.

    ``runner_id`` names this runner object, from its start on ``host`` in process
    ``pid``; ``name``, ``version``, ``kind`` and ``partition`` name what it runs. It
    writes a record at start, on each change of ``state`` and every ``interval``
    seconds between, stamped ``heard_at`` by its own clock; ``since`` is when it
    entered its state. ``retrying`` is the run of transient failures going on, and
    ``recovered`` the last one that ended; ``error`` why it stopped (None: it was asked
    to). ``checkpoint``, ``lag_events`` and ``lag_seconds`` are where it stood when it
    wrote (lag None: not measured then).

    While the store cannot be written (an outage, a held lock) the record stays as it
    was, ageing: :meth:`stale` says so, which is what an operator sees meanwhile.
    """

    runner_id: str
    name: str
    version: int
    kind: str
    partition: str | None
    host: str
    pid: int
    state: RunnerState
    since: datetime
    heard_at: datetime
    interval: float
    started_at: datetime
    checkpoint: Checkpoint | None = None
    lag_events: int | None = None
    lag_seconds: float | None = None
    handled: int = 0
    parked: int = 0
    retrying: Retrying | None = None
    error: str | None = None
    recovered: Recovery | None = None

    def silent_for(self, now: datetime | None = None) -> float:
        """Seconds since it was last heard from (by the clock of ``now``, default this one's)."""
        now = now if now is not None else datetime.now(UTC)
        return max(0.0, (now - self.heard_at).total_seconds())

    def stale(self, now: datetime | None = None) -> bool:
        """Whether it should be running (its last record says so) but has not been heard
        from for :data:`STALE_BEATS` heartbeat intervals: stuck, gone (killed, its host
        down) or cut off from the store."""
        return self.state in ACTIVE_STATES and self.silent_for(now) > STALE_BEATS * self.interval
