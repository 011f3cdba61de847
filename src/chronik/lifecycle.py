"""Deleting, retaining and repairing streams: the values and the rules every store shares.

Nothing here does I/O; each backend applies these rules in its own transactions, so
a stream is deleted, truncated or repaired the same way on every store
(``docs/lifecycle.md`` is the user's guide; the capability suites in
``chronik.testing.conformance`` hold every store to it).

Deleting (``StreamDeletion.delete_stream``). A delete appends one event to the
stream, of type ``$StreamDeleted`` (:data:`STREAM_DELETED`), whose data names the
mode (``"soft"``, ``"hard"`` or ``"archived"``) and the version it deleted up to.
It goes through the store's append path, so it is ordered against concurrent appends
exactly as they are against each other (the same unique key, the same expected
subject sequence): a delete and an append that both expected version N cannot both
succeed. It is what subscribers see of a delete, in the stream's own category. Then:

- soft: the stream reads as not existing (no events, ``stream_info`` version 0 with
  ``deleted="soft"``). Its events stay in the global log until ``scavenge`` removes
  them. An append (expecting ``NO_STREAM``, 0 or ``ANY``) brings it back, numbered on
  after the deletion event; ``truncate_before`` keeps the old events hidden.
- hard: the events before the deletion event are removed at once; it stays as a
  tombstone, and every later write to the id raises ``StreamDeletedError``.
- archived (``EventRepair.archive_stream``): as soft, but audited, refusing appends,
  and kept whole by ``scavenge`` (the evidence of a broken stream stays).

Retaining (``StreamRetention``). :class:`StreamMetadata` hides old events from reads
of the stream at once (``truncate_before``, ``max_count``, ``max_age``, as
KurrentDB's ``$tb``, ``$maxCount``, ``$maxAge``); the global log and subscriptions
still carry them until ``scavenge`` removes them. Scavenging never removes the last
event of a stream (it holds the stream's version, as in KurrentDB), nor anything of
an archived stream.

Repairing (``EventRepair``). An event replaced in place keeps its stream, version,
position, id, tags and time; an audit event (``$EventReplaced`` or
``$StreamArchived``, with a :class:`RepairRecord` as data) goes to the stream
``$repairs`` in the same transaction, with who, when, why and the digest of what was
there before.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal, Protocol, runtime_checkable

import msgspec

from chronik.errors import (
    InvalidInputError,
    InvalidStreamMetadataError,
    StreamDeletedError,
    WrongExpectedVersionError,
)
from chronik.events import (
    ANY,
    Checkpoint,
    ExpectedVersion,
    NewEvent,
    check_expected_version,
    unprintable,
)

__all__ = [
    "EVENT_REPLACED",
    "MAX_VALUE",
    "REPAIRS_STREAM",
    "STREAM_ARCHIVED",
    "STREAM_DELETED",
    "AsyncEventRepair",
    "AsyncStreamDeletion",
    "AsyncStreamRetention",
    "DeleteMode",
    "DeleteResult",
    "EventRepair",
    "RepairRecord",
    "ScavengeResult",
    "StreamDeletion",
    "StreamMetadata",
    "StreamRetention",
    "archive_mode",
    "archive_record",
    "check_append",
    "check_metadata_target",
    "check_repairable",
    "decide_delete",
    "deletion_event",
    "digest",
    "hidden_below",
    "max_age_micros",
    "repair_event_record",
    "replace_record",
    "scavenge_below",
    "validate_operator",
    "validate_repair",
    "validate_stream_metadata",
    "visible_version",
]

STREAM_DELETED: Final = "$StreamDeleted"
"""The type of the event a delete appends to the stream it deletes."""
EVENT_REPLACED: Final = "$EventReplaced"
"""The type of the audit event of a replaced event (in :data:`REPAIRS_STREAM`)."""
STREAM_ARCHIVED: Final = "$StreamArchived"
"""The type of the audit event of an archived stream (in :data:`REPAIRS_STREAM`)."""
REPAIRS_STREAM: Final = "$repairs"
"""The stream that holds the audit trail of repairs; it cannot be deleted or repaired."""
MAX_VALUE: Final = 2**62
"""The largest ``max_count`` and ``truncate_before``, and ``max_age`` in microseconds."""

DeleteMode = Literal["soft", "hard", "archived"]


class StreamMetadata(msgspec.Struct, frozen=True, kw_only=True):
    """What a stream keeps visible: events before ``truncate_before`` (a version), all
    but the last ``max_count``, and those older than ``max_age`` are hidden from reads
    of the stream at once, and removed by ``scavenge``. None: no such limit."""

    max_count: int | None = None
    max_age: timedelta | None = None
    truncate_before: int | None = None


class DeleteResult(msgspec.Struct, frozen=True):
    """What ``delete_stream`` did: the deletion event it appended (its ``version``,
    ``position`` and ``checkpoint``), or nothing (``version`` 0) when the stream was
    deleted that way already, or a soft delete found no stream."""

    stream_id: str
    mode: DeleteMode
    version: int = 0
    position: int | None = None
    checkpoint: Checkpoint | None = None

    @property
    def hard(self) -> bool:
        return self.mode == "hard"


class ScavengeResult(msgspec.Struct, frozen=True):
    """What ``scavenge`` removed: how many events, from how many streams."""

    events: int = 0
    streams: int = 0


class RepairRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One repair, as it is kept in the ``$repairs`` stream (and returned by it).

    ``action`` is ``"replace"`` (one event: ``version``, ``position`` and ``event_id``
    are its own; ``old_*`` and ``new_*`` its type and schema version before and
    after) or ``"archive"`` (a stream: ``version`` and ``position`` of its last
    event, ``events`` how many it held). ``digest`` is the SHA-256 of what was there
    before (:func:`digest`), ``new_digest`` of what replaced it.
    """

    action: Literal["replace", "archive"]
    stream_id: str
    version: int
    position: int
    operator: str
    reason: str
    at: datetime
    digest: str
    event_id: uuid.UUID | None = None
    old_type: str | None = None
    old_schema_version: int | None = None
    new_type: str | None = None
    new_schema_version: int | None = None
    new_digest: str | None = None
    events: int = 1


# -- the powers (re-exported by chronik.store, where the other powers are) ---------------------


@runtime_checkable
class StreamDeletion(Protocol):
    """A store that deletes streams, softly or for good."""

    def delete_stream(
        self, stream_id: str, expected_version: ExpectedVersion = ANY, *, hard: bool = False
    ) -> DeleteResult:
        """Delete ``stream_id`` if it is at ``expected_version`` (else nothing is deleted);
        ``hard``: its events go now, its id is forbidden for good."""
        ...


@runtime_checkable
class AsyncStreamDeletion(Protocol):
    """The asyncio twin of :class:`StreamDeletion`."""

    async def delete_stream(
        self, stream_id: str, expected_version: ExpectedVersion = ANY, *, hard: bool = False
    ) -> DeleteResult: ...


@runtime_checkable
class StreamRetention(Protocol):
    """Streams show what their metadata keeps; ``scavenge`` removes the rest, freeing space."""

    def set_stream_metadata(self, stream_id: str, metadata: StreamMetadata) -> None: ...

    def get_stream_metadata(self, stream_id: str) -> StreamMetadata: ...

    def scavenge(self) -> ScavengeResult: ...


@runtime_checkable
class AsyncStreamRetention(Protocol):
    """The asyncio twin of :class:`StreamRetention`."""

    async def set_stream_metadata(self, stream_id: str, metadata: StreamMetadata) -> None: ...

    async def get_stream_metadata(self, stream_id: str) -> StreamMetadata: ...

    async def scavenge(self) -> ScavengeResult: ...


@runtime_checkable
class EventRepair(Protocol):
    """A store on which an operator replaces an event in place or archives a stream,
    each recorded in the ``$repairs`` stream in the same transaction."""

    def repair_event(
        self, stream_id: str, version: int, event: object, *, reason: str, operator: str
    ) -> RepairRecord: ...

    def archive_stream(
        self, stream_id: str, expected_version: ExpectedVersion = ANY, *, reason: str, operator: str
    ) -> RepairRecord: ...


@runtime_checkable
class AsyncEventRepair(Protocol):
    """The asyncio twin of :class:`EventRepair`."""

    async def repair_event(
        self, stream_id: str, version: int, event: object, *, reason: str, operator: str
    ) -> RepairRecord: ...

    async def archive_stream(
        self, stream_id: str, expected_version: ExpectedVersion = ANY, *, reason: str, operator: str
    ) -> RepairRecord: ...


# -- stream metadata -------------------------------------------------------------------


def validate_stream_metadata(metadata: object) -> StreamMetadata:
    """``metadata`` if every value is in range, else :class:`InvalidStreamMetadataError`
    naming the field."""
    if not isinstance(metadata, StreamMetadata):
        raise InvalidInputError(f"stream metadata must be a StreamMetadata, got {type(metadata).__name__}")
    for field in ("max_count", "truncate_before"):
        value = getattr(metadata, field)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_VALUE:
            raise InvalidStreamMetadataError(
                field, f"{field} must be an int from 1 to {MAX_VALUE}, or None, got {value!r}"
            )
    age = metadata.max_age
    if age is not None:
        if not isinstance(age, timedelta):
            raise InvalidStreamMetadataError(
                "max_age",
                f"max_age must be a datetime.timedelta (e.g. timedelta(days=30)) or None, got {age!r}",
            )
        if age <= timedelta(0) or age // timedelta(microseconds=1) > MAX_VALUE:
            raise InvalidStreamMetadataError(
                "max_age", f"max_age must be positive and at most {MAX_VALUE} microseconds, got {age!r}"
            )
    return metadata


def check_metadata_target(stream_id: str, mode: str | None) -> None:
    """Refuse metadata for the audit trail and for a stream deleted for good."""
    if stream_id == REPAIRS_STREAM:
        raise InvalidInputError(f"the audit trail {REPAIRS_STREAM!r} keeps every event: it takes no metadata")
    if mode == "hard":
        raise StreamDeletedError(stream_id, mode)


def max_age_micros(metadata: StreamMetadata) -> int | None:
    """``max_age`` in microseconds (how the stores keep it), None when unset."""
    age = metadata.max_age
    return None if age is None else age // timedelta(microseconds=1)


def hidden_below(metadata: StreamMetadata, last_version: int) -> int:
    """The lowest version reads of the stream show (``truncate_before``, ``max_count``);
    ``max_age`` hides by time, on top of this."""
    low = 1
    if metadata.truncate_before is not None:
        low = max(low, metadata.truncate_before)
    if metadata.max_count is not None:
        low = max(low, last_version - metadata.max_count + 1)
    return low


def scavenge_below(metadata: StreamMetadata, last_version: int) -> int:
    """The versions below this one are removed by ``scavenge`` (time aside): the hidden
    ones, but never the stream's last event."""
    return min(hidden_below(metadata, last_version), last_version)


# -- deleting ---------------------------------------------------------------------------


def visible_version(version: int, mode: str | None) -> int:
    """The version callers see (and expected versions are checked against): 0 while
    the stream is deleted."""
    return 0 if mode is not None else version


def check_append(stream_id: str, mode: str | None) -> None:
    """Refuse a write to a stream deleted for good or archived (``StreamDeletedError``)."""
    if mode == "hard" or mode == "archived":
        raise StreamDeletedError(stream_id, mode)


def decide_delete(
    stream_id: str, expected: ExpectedVersion, version: int, mode: str | None, *, hard: bool
) -> DeleteMode | None:
    """The mode a delete moves the stream to, or None when there is nothing to do.

    ``version`` is the stream's last version, ``mode`` how it is deleted now (None:
    live); the expected version is checked against what callers see
    (``WrongExpectedVersionError``, nothing deleted). Deleting again the same way, or
    anything once the stream is deleted for good, changes nothing; a soft delete of a
    stream that never had events has nothing to delete, while a hard one still
    forbids its id.
    """
    if stream_id == REPAIRS_STREAM:
        raise InvalidInputError(f"the audit trail {REPAIRS_STREAM!r} cannot be deleted")
    visible = visible_version(version, mode)
    if not check_expected_version(expected, visible):
        raise WrongExpectedVersionError(stream_id, expected, visible)
    new: DeleteMode = "hard" if hard else "soft"
    if mode == "hard" or mode == new or (new == "soft" and version == 0):
        return None
    return new


def archive_mode(stream_id: str, expected: ExpectedVersion, version: int, mode: str | None) -> DeleteMode:
    """Check that the stream can be archived: it has events, is not deleted, and is at
    ``expected`` (the errors say which)."""
    if stream_id == REPAIRS_STREAM or stream_id.startswith("$"):
        raise InvalidInputError(f"stream {stream_id!r} is chronik's own and cannot be archived")
    if mode == "hard":
        raise StreamDeletedError(stream_id, mode)
    if mode == "archived":
        raise InvalidInputError(f"stream {stream_id!r} is archived already")
    visible = visible_version(version, mode)
    if not check_expected_version(expected, visible):
        raise WrongExpectedVersionError(stream_id, expected, visible)
    if visible == 0:
        raise InvalidInputError(f"stream {stream_id!r} has no events to archive")
    return "archived"


def deletion_event(mode: DeleteMode, version: int, **extra: Any) -> NewEvent:
    """The event a delete appends: ``{"mode": ..., "version": <the last version deleted>}``."""
    return NewEvent(STREAM_DELETED, {"mode": mode, "version": version, **extra})


# -- repairing --------------------------------------------------------------------------


def digest(parts: Iterable[bytes | str | None]) -> str:
    """``sha256:<hex>`` of stored payloads (data, metadata, ...), each length-prefixed so
    that no two different sequences of parts share a digest."""
    h = hashlib.sha256()
    for part in parts:
        raw = b"" if part is None else part.encode() if isinstance(part, str) else bytes(part)
        h.update(len(raw).to_bytes(8, "big"))
        h.update(raw)
    return f"sha256:{h.hexdigest()}"


def validate_operator(reason: object, operator: object) -> tuple[str, str]:
    """A repair says why and who: both non-empty printable text of at most 1,000 characters."""
    checked: list[str] = []
    for name, value in (("reason", reason), ("operator", operator)):
        if not isinstance(value, str) or not value.strip() or len(value) > 1000:
            raise InvalidInputError(f"a repair needs a {name}: non-empty text of at most 1000 characters")
        if not value.isprintable():
            raise InvalidInputError(f"the repair's {name} is refused: {unprintable(value)}")
        checked.append(value)
    return checked[0], checked[1]


def validate_repair(stream_id: str, version: object, reason: object, operator: object) -> tuple[str, str]:
    """Check a repair before anything is read: not of the audit trail, a version >= 1,
    and who and why (:func:`validate_operator`); returns (reason, operator)."""
    if stream_id == REPAIRS_STREAM:
        raise InvalidInputError(f"the audit trail {REPAIRS_STREAM!r} cannot be repaired")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise InvalidInputError(f"version must be an int >= 1, got {version!r}")
    return validate_operator(reason, operator)


def repair_event_record(record: RepairRecord) -> NewEvent:
    """The audit event of ``record``, for the ``$repairs`` stream."""
    kind = EVENT_REPLACED if record.action == "replace" else STREAM_ARCHIVED
    data = msgspec.to_builtins(record)
    return NewEvent(kind, data, {"user": record.operator})


def check_repairable(stream_id: str, version: int, type: str) -> None:
    """Refuse repairing chronik's own events (deletion events, the audit trail)."""
    if stream_id == REPAIRS_STREAM:
        raise InvalidInputError(f"the audit trail {REPAIRS_STREAM!r} cannot be repaired")
    if type.startswith("$"):
        raise InvalidInputError(
            f"event {type!r} at {stream_id!r} version {version} is chronik's own and cannot be replaced"
        )


def replace_record(
    *,
    stream_id: str,
    version: int,
    position: int,
    event_id: uuid.UUID,
    old: tuple[str, int, bytes | str, bytes | str | None],
    new: tuple[str, int, bytes | str, bytes | str | None],
    reason: str,
    operator: str,
) -> RepairRecord:
    """The record of replacing one event; ``old`` and ``new`` are (type, schema version,
    data, metadata) as stored."""
    return RepairRecord(
        action="replace",
        stream_id=stream_id,
        version=version,
        position=position,
        operator=operator,
        reason=reason,
        at=datetime.now(UTC),
        digest=digest(old[2:]),
        event_id=event_id,
        old_type=old[0],
        old_schema_version=old[1],
        new_type=new[0],
        new_schema_version=new[1],
        new_digest=digest(new[2:]),
    )


def archive_record(
    *,
    stream_id: str,
    version: int,
    position: int,
    events: Iterable[tuple[str, bytes | str, bytes | str | None]],
    reason: str,
    operator: str,
) -> RepairRecord:
    """The record of archiving a stream whose stored events are ``events`` (type, data,
    metadata, in version order); ``version`` and ``position`` are its last event's."""
    parts: list[bytes | str | None] = []
    count = 0
    for type_, data, metadata in events:
        parts += [type_, data, metadata]
        count += 1
    return RepairRecord(
        action="archive",
        stream_id=stream_id,
        version=version,
        position=position,
        operator=operator,
        reason=reason,
        at=datetime.now(UTC),
        digest=digest(parts),
        events=count,
    )
