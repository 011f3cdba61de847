"""Append and read logic shared by every backend (no I/O).

Backends validate and encode with :func:`prepare_writes` before opening a
transaction, so bad input never reaches the database, and decide about re-sent
event ids with :func:`resolve_existing`, so idempotency means the same everywhere.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Final, NamedTuple, get_args

from chronik._otel import trace_metadata
from chronik.codec import Codec, EncodedEvent, given_ids
from chronik.errors import (
    DuplicateEventError,
    InvalidCheckpointError,
    InvalidEventError,
    InvalidInputError,
)
from chronik.events import (
    ANY,
    AppendResult,
    Checkpoint,
    DeadLetter,
    ExpectedVersion,
    NewEvent,
    ProjectionState,
    ProjectionStatus,
    RunnerHeartbeat,
    RunnerState,
    StreamWrite,
    category_of,
    check_expected_version,
    uuid7,
    validate_expected_version,
    validate_stream_id,
)
from chronik.personal import KeyRing
from chronik.query import AppendCondition, check_condition, check_events

__all__ = [
    "DCB_CATEGORY",
    "ExistingEvent",
    "PreparedWrite",
    "heartbeat_order",
    "normalize_filter",
    "position_after",
    "prepare_decision",
    "prepare_replacement",
    "prepare_writes",
    "resolve_existing",
    "validate_checkpoint_name",
    "validate_dead_letter",
    "validate_dead_letter_key",
    "validate_heartbeat",
    "validate_limit",
    "validate_projection",
    "validate_projection_state",
    "validate_read_stream",
    "validate_runner_id",
]


class PreparedWrite(NamedTuple):
    stream_id: str
    category: str
    expected: ExpectedVersion
    events: list[EncodedEvent]


class ExistingEvent(NamedTuple):
    """Where an event id is already stored."""

    stream_id: str
    version: int
    position: int


def prepare_writes(
    codec: Codec, writes: Sequence[StreamWrite], keys: KeyRing | None = None
) -> list[PreparedWrite]:
    """Validate and encode every write; raise before anything touches the database.

    ``keys``: the subjects' keys the writes need (:func:`chronik.backend.write_keys`).
    """
    if not isinstance(writes, Sequence) or isinstance(writes, (str, bytes)):
        raise InvalidInputError(f"append_many takes a list of StreamWrite, got {type(writes).__name__}")
    if not writes:
        raise InvalidInputError("append_many needs at least one StreamWrite")
    prepared: list[PreparedWrite] = []
    seen_streams: set[str] = set()
    seen_ids: set[uuid.UUID] = set()
    for write in writes:
        if not isinstance(write, StreamWrite):
            raise InvalidInputError(f"append_many takes StreamWrite values, got {type(write).__name__}")
        p = prepare_write(codec, write.stream_id, write.events, write.expected_version, keys)
        if p.stream_id in seen_streams:
            raise InvalidInputError(f"stream {p.stream_id!r} appears twice in one append_many")
        seen_streams.add(p.stream_id)
        for event_id in given_ids(write.events):
            if event_id in seen_ids:
                raise InvalidEventError(f"event id {event_id} appears twice in one append_many")
            seen_ids.add(event_id)
        prepared.append(p)
    return prepared


DCB_CATEGORY: Final = "dcb"
"""The category of the streams that ``append_if`` makes when it is given none."""


def prepare_decision(
    codec: Codec, events: object, condition: object, stream_id: str | None, keys: KeyRing | None = None
) -> tuple[PreparedWrite, AppendCondition | None]:
    """Validate and encode a DCB append (``DCBStore.append_if``) before any I/O.

    Without ``stream_id`` the events go to a new stream of their own,
    ``dcb-<uuid7>``: decisions on disjoint tags never contend for a stream version.
    """
    checked = check_condition(condition)
    stream = f"{DCB_CATEGORY}-{uuid7().hex}" if stream_id is None else stream_id
    return prepare_write(codec, stream, check_events(events), ANY, keys), checked


def prepare_write(
    codec: Codec,
    stream_id: str,
    events: Sequence[object],
    expected_version: object,
    keys: KeyRing | None = None,
) -> PreparedWrite:
    """Validate and encode one stream's write (``keys``: as for :func:`prepare_writes`)."""
    stream_id = validate_stream_id(stream_id)
    expected = validate_expected_version(expected_version)
    # The trace context of the append's span (chronik._otel.appending), or of the
    # caller's: continued by whoever handles these events.
    encoded = codec.encode_many(stream_id, events, trace_metadata(), keys)
    return PreparedWrite(stream_id, category_of(stream_id), expected, encoded)


def prepare_replacement(
    codec: Codec,
    stream_id: str,
    event: object,
    *,
    event_id: uuid.UUID,
    metadata: bytes | str | None,
    tags: Sequence[str],
    keys: KeyRing | None = None,
) -> EncodedEvent:
    """Validate and encode the event that replaces a stored one in place (a repair).

    It is checked against its registered type as any append is, and sealed as any
    append is (``keys``: its subjects' keys, :func:`chronik.backend.write_keys`); it
    keeps the stored event's id and tags, and the stored metadata unless it brings
    its own (a :class:`NewEvent` with metadata).
    """
    if isinstance(event, (list, tuple, str, bytes)):
        raise InvalidEventError(f"a repair replaces one event, got {type(event).__name__}")
    encoded = codec.encode(stream_id, event, None, keys)
    if isinstance(event, NewEvent):
        if event.event_id is not None and event.event_id != event_id:
            raise InvalidEventError(
                f"the replacement carries event id {event.event_id}, but a replaced event keeps its id "
                f"({event_id}); leave event_id unset"
            )
        if event.tags and tuple(encoded.tags) != tuple(tags):
            raise InvalidEventError(
                f"the replacement carries tags {list(encoded.tags)!r}, but a replaced event keeps its tags "
                f"({list(tags)!r}); leave tags unset"
            )
    kept = metadata.encode() if isinstance(metadata, str) else metadata
    new_metadata = encoded.metadata if isinstance(event, NewEvent) and event.metadata else kept
    return EncodedEvent(
        event_id, encoded.type, encoded.schema_version, encoded.data, new_metadata, tuple(tags)
    )


def resolve_existing(
    write: PreparedWrite,
    existing: Mapping[uuid.UUID, ExistingEvent],
    checkpoint_of: Callable[[ExistingEvent], Checkpoint],
) -> AppendResult:
    """Decide a write some of whose event ids are already stored.

    It is an idempotent re-send, and succeeds without writing, when every event id
    of the batch is stored in this stream, in the same order at consecutive
    versions, starting just after a version that ``expected`` would have accepted.
    Anything else is a :class:`DuplicateEventError`.
    """
    found = [existing.get(e.event_id) for e in write.events]
    first = found[0]
    for event, where in zip(write.events, found, strict=True):
        if where is None:
            raise DuplicateEventError(
                next(e.event_id for e, w in zip(write.events, found, strict=True) if w is not None),
                write.stream_id,
                f"part of the batch is already stored and part ({event.event_id}) is not; "
                "a re-sent batch must be sent whole",
            )
        if where.stream_id != write.stream_id:
            raise DuplicateEventError(
                event.event_id,
                write.stream_id,
                f"already stored in stream {where.stream_id!r} at version {where.version}",
            )
    assert first is not None
    for offset, where in enumerate(found):
        assert where is not None
        if where.version != first.version + offset:
            raise DuplicateEventError(
                write.events[offset].event_id,
                write.stream_id,
                f"already stored at version {where.version}, not in the order of this batch",
            )
    before = first.version - 1
    expected = write.expected
    if not check_expected_version(expected, before):
        raise DuplicateEventError(
            write.events[0].event_id,
            write.stream_id,
            f"already stored at version {first.version}, which expected version "
            f"{expected!r} would not have allowed",
        )
    last = found[-1]
    assert last is not None
    return AppendResult(write.stream_id, last.version, last.position, checkpoint_of(last))


def normalize_filter(values: Iterable[str] | None, what: str) -> tuple[str, ...] | None:
    """Turn a category or type filter into a tuple, refusing a bare string."""
    if values is None:
        return None
    if isinstance(values, str):
        raise InvalidInputError(f"{what} must be a list of strings, not a single string {values!r}")
    result = tuple(values)
    for v in result:
        if not isinstance(v, str):
            raise InvalidInputError(f"{what} must contain strings, got {v!r}")
    return result


def validate_limit(limit: object, what: str = "limit") -> int | None:
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise InvalidInputError(f"{what} must be an int >= 0 or None, got {limit!r}")
    return limit


def validate_read_stream(
    stream_id: str, from_version: object, to_version: object, limit: object
) -> tuple[str, int, int | None, int | None]:
    stream_id = validate_stream_id(stream_id)
    if isinstance(from_version, bool) or not isinstance(from_version, int) or from_version < 0:
        raise InvalidInputError(f"from_version must be an int >= 0, got {from_version!r}")
    if to_version is not None and (
        isinstance(to_version, bool) or not isinstance(to_version, int) or to_version < 0
    ):
        raise InvalidInputError(f"to_version must be an int >= 0 or None, got {to_version!r}")
    return stream_id, from_version, to_version, validate_limit(limit)


def validate_checkpoint_name(name: object) -> str:
    if not isinstance(name, str) or not name or len(name) > 200 or not name.isprintable():
        raise InvalidInputError(
            f"checkpoint name must be a non-empty printable str of at most 200 characters, got {name!r}"
        )
    return name


def position_after(after: Checkpoint | None, kind: str) -> int:
    """The position a read resumes after, for stores whose checkpoint is one position."""
    if after is None:
        return 0
    if not isinstance(after, Checkpoint):
        raise InvalidCheckpointError(f"after must be a Checkpoint, got {type(after).__name__}")
    if after.kind != kind or len(after.parts) != 1:
        raise InvalidCheckpointError(
            f"checkpoint {after} was made by a {after.kind!r} store; this is a {kind!r} store"
        )
    return after.parts[0]


# -- projection records -----------------------------------------------------------------------

_STATUSES: Final = frozenset(get_args(ProjectionStatus))


def validate_projection(name: object, version: object) -> None:
    """Refuse a projection name or version that no projection can have."""
    if not isinstance(name, str) or not name:
        raise InvalidInputError(f"projection name must be a non-empty str, got {name!r}")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise InvalidInputError(f"projection version must be an int >= 1, got {version!r}")


def validate_projection_state(state: ProjectionState) -> ProjectionState:
    """Return ``state`` if a store may keep it (name, version and status), else raise."""
    validate_projection(state.name, state.version)
    if state.status not in _STATUSES:
        raise InvalidInputError(f"projection status must be one of {sorted(_STATUSES)}, got {state.status!r}")
    return state


_RUNNER_STATES: Final = frozenset(get_args(RunnerState))


def validate_runner_id(runner_id: object) -> str:
    """Refuse what names no runner: an empty, over-long or unprintable id."""
    if not isinstance(runner_id, str) or not runner_id or len(runner_id) > 200 or not runner_id.isprintable():
        raise InvalidInputError(
            f"runner id must be a non-empty printable str of at most 200 characters, got {runner_id!r}"
        )
    return runner_id


def validate_heartbeat(heartbeat: RunnerHeartbeat) -> RunnerHeartbeat:
    """Return ``heartbeat`` if a store may keep it (its runner id, projection, state,
    interval and times), else raise."""
    if not isinstance(heartbeat, RunnerHeartbeat):
        raise InvalidInputError(f"expected a RunnerHeartbeat, got {type(heartbeat).__name__}")
    validate_runner_id(heartbeat.runner_id)
    validate_projection(heartbeat.name, heartbeat.version)
    if heartbeat.state not in _RUNNER_STATES:
        raise InvalidInputError(
            f"runner state must be one of {sorted(_RUNNER_STATES)}, got {heartbeat.state!r}"
        )
    interval = heartbeat.interval
    if isinstance(interval, bool) or not isinstance(interval, int | float) or not interval > 0:
        raise InvalidInputError(f"a heartbeat's interval must be seconds > 0, got {interval!r}")
    for when, what in (
        (heartbeat.heard_at, "heard_at"),
        (heartbeat.since, "since"),
        (heartbeat.started_at, "started_at"),
    ):
        if when.tzinfo is None:
            raise InvalidInputError(f"a heartbeat's {what} must be an aware datetime (UTC), got {when!r}")
    return heartbeat


def heartbeat_order(heartbeat: RunnerHeartbeat) -> tuple[str, int, str, datetime, str]:
    """How every store orders heartbeats: by name, version, partition, start and runner id."""
    return (
        heartbeat.name,
        heartbeat.version,
        heartbeat.partition or "",
        heartbeat.started_at,
        heartbeat.runner_id,
    )


def validate_dead_letter_key(projection: object, version: object, position: object) -> None:
    """Refuse what names no dead letter: a projection, its version, an event's position."""
    validate_projection(projection, version)
    if isinstance(position, bool) or not isinstance(position, int) or position < 0:
        raise InvalidInputError(f"a dead letter's position must be an int >= 0, got {position!r}")


def validate_dead_letter(letter: DeadLetter, kind: str) -> DeadLetter:
    """Return ``letter`` if a store of checkpoint kind ``kind`` may park it, else raise.

    Its event's checkpoint must be one of this kind of store, and end in the event's
    position (``InvalidCheckpointError`` otherwise).
    """
    validate_projection(letter.projection, letter.projection_version)
    checkpoint = letter.event.checkpoint
    if not isinstance(checkpoint, Checkpoint) or checkpoint.kind != kind:
        raise InvalidCheckpointError(
            f"dead letter of {letter.projection!r} carries the checkpoint {checkpoint} of another kind "
            f"of store; this is a {kind!r} store"
        )
    if not checkpoint.parts or checkpoint.parts[-1] != letter.event.position:
        raise InvalidInputError(
            f"dead letter of position {letter.event.position} carries the checkpoint {checkpoint} "
            "of another event"
        )
    return letter
