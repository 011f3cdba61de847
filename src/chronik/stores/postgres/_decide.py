"""How an append decides, with no I/O: the append statement, and what to do when
its fast path did not go through (both faces of the store call these)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any, Final, NamedTuple

import msgspec

from chronik.backend import ExistingEvent, PreparedWrite, expected_version_ok, resolve_existing
from chronik.errors import WrongExpectedVersionError
from chronik.events import ANY, NO_STREAM, STREAM_EXISTS, AppendResult, Checkpoint
from chronik.lifecycle import check_append, visible_version
from chronik.stores.postgres import sql
from chronik.stores.postgres._common import KIND

__all__ = [
    "MAX_APPEND_ATTEMPTS",
    "AppendRow",
    "Found",
    "OutOfOrderError",
    "append_params",
    "append_statement",
    "check_order",
    "decide",
    "finish",
]

# Attempts of one append when concurrent writers keep taking the version it read
# (only ANY appends retry; an exact expected version fails on the first conflict).
MAX_APPEND_ATTEMPTS: Final = 1000


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
    statements: sql.Statements,
    writes: Sequence[PreparedWrite],
    pinned: Sequence[int] | None = None,
    *,
    system: bool = False,
) -> tuple[str, dict[str, Any]]:
    """The append statement for ``writes`` and its parameters; ``pinned`` replaces
    each write's expected version. One event to one stream goes as scalars.
    ``system``: chronik's own event (one), checked against the stream's real version
    whatever its state (``sql._SYSTEM_APPEND``)."""
    if len(writes) == 1 and len(writes[0].events) == 1:
        write = writes[0]
        event = write.events[0]
        expected, must_exist = _expectation(write.expected if pinned is None else pinned[0])
        return statements.append_system if system else statements.append_one, {
            "stream_id": write.stream_id,
            "category": write.category,
            "expected": expected,
            "must_exist": must_exist,
            "event_id": event.event_id,
            "type": event.type,
            "schema_version": event.schema_version,
            "data": event.data.decode(),
            "metadata": None if event.metadata is None else event.metadata.decode(),
            "tags": tags_json(event.tags),
        }
    assert not system, "chronik's own events are appended one at a time"
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
    tags: list[str | None] = []
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
            tags.append(tags_json(event.tags))
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
        "tags": tags,
    }


def tags_json(tags: tuple[str, ...]) -> str | None:
    """An event's tags as the append statement takes them: a JSON array, None for none."""
    return msgspec.json.encode(tags).decode() if tags else None


class AppendRow(NamedTuple):
    """One write's line of the append statement's answer."""

    idx: int
    version: int  # before the append
    expected_ok: bool
    order_ok: bool
    last_version: int | None
    last_position: int | None
    transaction_id: int | None
    refused: bool  # the stream was deleted for good or archived


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
    writes: Sequence[PreparedWrite],
    found: Mapping[uuid.UUID, Found],
    versions: Mapping[str, tuple[int, str | None]],
    *,
    system: bool = False,
) -> tuple[list[AppendResult | None], list[int], list[int]]:
    """Decide every write from freshly read state, as the memory store would.

    Writes are taken in order: one some of whose ids are stored is an idempotent
    re-send or a :class:`DuplicateEventError` (``resolve_existing``); otherwise a
    stream deleted for good or archived refuses it (``StreamDeletedError``, unless it
    is chronik's own ``system`` event) and its expected version must hold against the
    version writers see (0 while deleted) or it is a :class:`WrongExpectedVersionError`.
    ``versions`` holds each stream's (version, deleted). Returns the results known so
    far, the indexes of the writes still to insert and the versions to pin them to.
    """
    results: list[AppendResult | None] = []
    plan: list[int] = []
    pins: list[int] = []
    for index, write in enumerate(writes):
        stored = {e.event_id: found[e.event_id] for e in write.events if e.event_id in found}
        if stored:
            existing = {k: ExistingEvent(v.stream_id, v.version, v.position) for k, v in stored.items()}
            by_position = {v.position: v.transaction_id for v in stored.values()}

            def checkpoint_of(where: ExistingEvent, xids: dict[int, int] = by_position) -> Checkpoint:
                return Checkpoint(KIND, (xids[where.position], where.position))

            results.append(resolve_existing(write, existing, checkpoint_of))
            continue
        version, mode = versions.get(write.stream_id, (0, None))
        actual = version
        if not system:
            check_append(write.stream_id, mode)
            actual = visible_version(version, mode)
        if not expected_version_ok(write.expected, actual):
            raise WrongExpectedVersionError(write.stream_id, write.expected, actual)
        results.append(None)
        plan.append(index)
        pins.append(actual)
    return results, plan, pins
