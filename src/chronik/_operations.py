"""What the command line and the web UI do to a store and its application's
projections, written once: their status and lag, dead letters found, replayed and
skipped, and the counts of an overview.

Each takes a sync :class:`~chronik.Store` and an :class:`~chronik._app.App`; what
is stored about projections (state, checkpoints, dead letters) is read through the
store's ``ProjectionStateStore``. Errors are chronik's own (a
``ConfigurationError`` for what the application lacks, an ``InvalidInputError`` for
a dead letter that is not there); each front end words them its way.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

import msgspec

from chronik._app import App
from chronik.cipher import StaticKeys
from chronik.errors import ConfigurationError, InvalidInputError
from chronik.events import DeadLetter, ProjectionState, RecordedEvent, StreamInfo
from chronik.projections import ProjectionRunner, projection_lag
from chronik.projections._concurrency import settle
from chronik.store import EventStore, ProjectionStateStore, Store, SubjectKeyStore

__all__ = [
    "all_streams",
    "categories",
    "event_record",
    "find_letters",
    "forget_letter",
    "forget_subject",
    "iso",
    "letter_record",
    "operator_options",
    "pretty_json",
    "projection_row",
    "projection_rows",
    "replay_letter",
    "skip_letter",
    "states_of",
]


def event_record(event: RecordedEvent) -> dict[str, Any]:
    """An event as one JSON object: what ``--json``, ``export``, ``import`` and the
    HTTP API use.

    ``data`` and ``metadata`` are the JSON the application wrote, at the schema
    version it was stored at (no upcasting), so that an export imports back exactly:
    opened if it is sealed at rest, personal fields opened, or redacted where their
    subject was forgotten (``RecordedEvent.plain_data``).
    """
    metadata = event.plain_metadata
    return {
        "stream_id": event.stream_id,
        "version": event.version,
        "position": event.position,
        "type": event.type,
        "schema_version": event.schema_version,
        "data": msgspec.Raw(_raw(event.plain_data)),
        "metadata": msgspec.Raw(_raw(metadata)) if metadata else {},
        "event_id": str(event.event_id),
        "recorded_at": event.recorded_at.isoformat().replace("+00:00", "Z"),
        "checkpoint": str(event.checkpoint),
        "tags": list(event.tags),
    }


def _raw(value: bytes | str) -> bytes:
    return value.encode() if isinstance(value, str) else value


def pretty_json(raw: bytes | str | None) -> str:
    """Stored JSON, indented (``{}`` for none)."""
    if not raw:
        return "{}"
    return msgspec.json.format(_raw(raw), indent=2).decode()


def operator_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """``chronik.connect`` options for the command line and the web UI: an operator
    reads personal data whatever the registry declares (``shredding``), and the
    cipher's keys come from ``$CHRONIK_CIPHER_KEYS`` unless the application gives
    them (``App.store_options``)."""
    found = dict(options)
    found.setdefault("shredding", True)
    if "cipher" not in found:
        keys = StaticKeys.from_env()
        if keys is not None:
            found["cipher"] = keys
    return found


def forget_subject(store: object, subject: str) -> None:
    """Forget ``subject`` in the store's key store (a ConfigurationError when it keeps none)."""
    if not isinstance(store, SubjectKeyStore):
        raise ConfigurationError("this store keeps no subjects' keys (it is not a SubjectKeyStore)")
    store.forget(subject)


def states_of(store: object) -> ProjectionStateStore:
    """The store's projection bookkeeping, or a ConfigurationError when it keeps none."""
    if not isinstance(store, ProjectionStateStore):
        raise ConfigurationError("this store keeps no projection state (it is not a ProjectionStateStore)")
    return store


def iso(at: datetime | None) -> str:
    """``2024-05-01T12:00:00Z``, or '' for None."""
    return "" if at is None else at.isoformat(timespec="seconds").replace("+00:00", "Z")


def all_streams(store: EventStore, category: str | None = None, page: int = 1000) -> Iterator[StreamInfo]:
    """Every stream (of ``category``), by id, read a page at a time."""
    after: str | None = None
    while True:
        found = store.list_streams(category=category, after=after, limit=page)
        yield from found
        if len(found) < page:
            return
        after = found[-1].stream_id


def categories(store: EventStore) -> list[dict[str, Any]]:
    """Each category with its count of streams and events, by name."""
    events: Counter[str] = Counter()
    streams: Counter[str] = Counter()
    for stream in all_streams(store):
        events[stream.category] += stream.version
        streams[stream.category] += 1
    return [{"category": c, "streams": streams[c], "events": events[c]} for c in sorted(events)]


def projection_row(store: Store, app: App, name: str, states: list[ProjectionState]) -> dict[str, Any]:
    """One projection: kind, version, status, dead letters, and checkpoint and lag
    when the application has it at the stored version."""
    letters = states_of(store).dead_letters(name)
    record: dict[str, Any] = {"name": name, "kind": None, "version": None, "status": "never run"}
    runner = None
    if name in app.names:
        runner = app.runner(store, name)
        record["kind"] = "process manager" if name not in {p.name for p in app.projections} else "projection"
        record["version"] = runner.projection.version
    mine = next((s for s in states if s.version == record["version"]), None)
    if mine is None and states:
        mine = next((s for s in states if s.active), states[-1])
    if mine is not None:
        record.update(version=mine.version, status=mine.status, active=mine.active)
        record["updated_at"] = iso(mine.updated_at)
        if mine.failure is not None:
            record["failure"] = mine.failure.describe()
    record["dead_letters"] = sum(1 for d in letters if d.projection_version == record["version"])
    if runner is not None and runner.projection.version == record["version"]:
        lag = projection_lag(store, runner.projection, runner.target)
        record.update(
            checkpoint=None if lag.checkpoint is None else str(lag.checkpoint),
            lag_events=lag.events,
            lag_seconds=round(lag.seconds, 3),
        )
    return record


def projection_rows(store: Store, app: App) -> list[dict[str, Any]]:
    """The application's projections and those the store knows, by name."""
    by_name: dict[str, list[ProjectionState]] = {}
    for state in states_of(store).projection_states():
        by_name.setdefault(state.name, []).append(state)
    names = sorted(set(by_name) | set(app.names))
    return [projection_row(store, app, name, by_name.get(name, [])) for name in names]


def letter_record(letter: DeadLetter) -> dict[str, Any]:
    """A dead letter as one JSON object."""
    e = letter.event
    return {
        "projection": letter.projection,
        "projection_version": letter.projection_version,
        "position": e.position,
        "stream_id": e.stream_id,
        "version": e.version,
        "type": e.type,
        "event_id": str(e.event_id),
        "checkpoint": str(e.checkpoint),
        "error": e.error,
        "attempts": e.attempts,
        "parked_at": iso(letter.parked_at),
    }


def find_letters(store: Store, projection: str, positions: tuple[int, ...]) -> list[DeadLetter]:
    """The dead letters of ``projection`` at ``positions``; an InvalidInputError names
    the first position that has none."""
    letters = states_of(store).dead_letters(projection)
    found = []
    for position in positions:
        matches = [d for d in letters if d.event.position == position]
        if not matches:
            raise InvalidInputError(f"projection {projection!r} has no dead letter at position {position}")
        found.append(matches[-1])
    return found


def forget_letter(states: ProjectionStateStore, letter: DeadLetter) -> None:
    """Remove one dead letter (inside the handler's unit, when replaying)."""
    states.delete_dead_letter(letter.projection, letter.projection_version, letter.event.position)


def skip_letter(store: Store, letter: DeadLetter) -> None:
    """Drop a dead letter without handling its event."""
    forget_letter(states_of(store), letter)


def replay_letter(store: Store, runner: ProjectionRunner[Any], letter: DeadLetter) -> None:
    """Handle a parked event again; when the handler succeeds the letter is removed in
    the same unit as the handler's writes. The handler's error propagates otherwise."""
    e = letter.event
    [event] = store.read_stream(e.stream_id, e.version, e.version)
    with runner.target.unit() as unit:
        settle(runner.projection.handle(event, unit.context), runner.projection, "a handler")
        forget_letter(unit.states or states_of(store), letter)
