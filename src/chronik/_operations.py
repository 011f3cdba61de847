"""What the command line and the web UI do to a store and its application's
projections, written once: their status and lag, the runners running them (from
their heartbeats: live, stale or stopped, said in one sentence), dead letters found,
replayed and skipped, and the counts of an overview.

Each takes a sync :class:`~chronik.Store` and an :class:`~chronik._app.App`; what
is stored about projections (state, checkpoints, dead letters) is read through the
store's ``ProjectionStateStore``. Errors are chronik's own (a
``ConfigurationError`` for what the application lacks, an ``InvalidInputError`` for
a dead letter that is not there); each front end words them its way.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

import msgspec

from chronik._app import App
from chronik.cipher import StaticKeys
from chronik.errors import ConfigurationError, InvalidInputError
from chronik.events import (
    STALE_BEATS,
    DeadLetter,
    ProjectionState,
    RecordedEvent,
    RunnerHeartbeat,
    StreamInfo,
)
from chronik.projections import ProjectionRunner, projection_lag
from chronik.projections._concurrency import settle
from chronik.store import EventStore, ProjectionStateStore, RunnerHeartbeats, Store, SubjectKeyStore

__all__ = [
    "all_streams",
    "categories",
    "describe_runner",
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
    "runner_record",
    "runners_of",
    "seconds",
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


# -- runners, from their heartbeats --------------------------------------------------------


def runners_of(store: object, name: str | None = None) -> list[RunnerHeartbeat]:
    """The heartbeat records of the runners of ``name`` (or of all); none when the
    store keeps no heartbeats."""
    return store.heartbeats(name) if isinstance(store, RunnerHeartbeats) else []


def seconds(value: float) -> str:
    """A duration as people say it: ``40 s``, ``3 min 5 s``, ``2 h 5 min``, ``3 d 4 h``."""
    whole = int(value)
    if value < 10:
        return f"{value:.1f} s"
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60} s"
    if whole < 86400:
        return f"{whole // 3600} h {whole % 3600 // 60} min"
    return f"{whole // 86400} d {whole % 86400 // 3600} h"


def _plural(count: int, what: str) -> str:
    return f"{count:,} {what}{'' if count == 1 else 's'}"


def _doing(beat: RunnerHeartbeat) -> str:
    """What the record says the runner was doing, from when."""
    since = iso(beat.since)
    if beat.state == "retrying" and beat.retrying is not None:
        r = beat.retrying
        return f"retrying since {iso(r.since)} ({_plural(r.attempts, 'failed attempt')}; last: {r.error})"
    if beat.state == "running":
        behind = "" if beat.lag_events is None else f", {_plural(beat.lag_events, 'event')} behind"
        return f"running since {since}{behind}"
    if beat.state == "caught_up":
        return f"caught up since {since}"
    if beat.state == "stopped":
        return f"stopped at {since}: {beat.error}" if beat.error else f"stopped at {since} (asked to stop)"
    if beat.state == "idle":
        return f"idle since {since}: it ran until caught up at {beat.checkpoint} and returned"
    return f"{beat.state} since {since}"


def describe_runner(beat: RunnerHeartbeat, now: datetime | None = None) -> str:
    """One sentence an operator reads: what the runner is doing and how long ago it
    said so, plainly stale when it should be beating and is not."""
    now = now or datetime.now(UTC)
    silent = beat.silent_for(now)
    if beat.stale(now):
        text = (
            f"stale: last heard {seconds(silent)} ago (it writes every {seconds(beat.interval)}); "
            f"it was then {_doing(beat)}; it is stuck, gone, or cannot reach the store"
        )
    elif beat.state in ("stopped", "idle"):
        text = _doing(beat)
    else:
        text = f"{_doing(beat)}; heard {seconds(silent)} ago"
    recovered = beat.recovered
    if recovered is not None and beat.state != "retrying":
        text += (
            f"; recovered at {iso(recovered.until)} after {_plural(recovered.attempts, 'failed attempt')} "
            f"over {seconds(recovered.seconds)} (last: {recovered.error})"
        )
    return text


def runner_record(beat: RunnerHeartbeat, now: datetime | None = None) -> dict[str, Any]:
    """A runner's heartbeat as one JSON object, with its age, whether it is stale, and
    the sentence that says it (``summary``)."""
    now = now or datetime.now(UTC)
    retrying = beat.retrying
    recovered = beat.recovered
    return {
        "runner_id": beat.runner_id,
        "name": beat.name,
        "version": beat.version,
        "kind": beat.kind,
        "partition": beat.partition,
        "host": beat.host,
        "pid": beat.pid,
        "state": beat.state,
        "since": iso(beat.since),
        "stale": beat.stale(now),
        "heard_at": iso(beat.heard_at),
        "heard_seconds_ago": round(beat.silent_for(now), 1),
        "interval": beat.interval,
        "stale_after": STALE_BEATS * beat.interval,
        "started_at": iso(beat.started_at),
        "checkpoint": None if beat.checkpoint is None else str(beat.checkpoint),
        "lag_events": beat.lag_events,
        "lag_seconds": beat.lag_seconds,
        "handled": beat.handled,
        "parked": beat.parked,
        "retrying": None
        if retrying is None
        else {"since": iso(retrying.since), "attempts": retrying.attempts, "error": retrying.error},
        "error": beat.error,
        "recovered": None
        if recovered is None
        else {
            "since": iso(recovered.since),
            "until": iso(recovered.until),
            "attempts": recovered.attempts,
            "error": recovered.error,
            "seconds": round(recovered.seconds, 3),
        },
        "label": "stale" if beat.stale(now) else beat.state.replace("_", " "),
        "summary": describe_runner(beat, now),
    }


def projection_row(
    store: Store,
    app: App,
    name: str,
    states: list[ProjectionState],
    beats: list[RunnerHeartbeat] | None = None,
) -> dict[str, Any]:
    """One projection: kind, version, status, dead letters, its runners (from their
    heartbeats), and checkpoint and lag when the application has it at the stored version."""
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
    now = datetime.now(UTC)
    found = runners_of(store, name) if beats is None else beats
    record["runners"] = [runner_record(b, now) for b in found]
    if runner is not None and runner.projection.version == record["version"]:
        lag = projection_lag(store, runner.projection, runner.target)
        record.update(
            checkpoint=None if lag.checkpoint is None else str(lag.checkpoint),
            lag_events=lag.events,
            lag_seconds=round(lag.seconds, 3),
        )
    return record


def projection_rows(store: Store, app: App) -> list[dict[str, Any]]:
    """The application's projections and those the store knows (by their state or
    their runners' heartbeats), by name."""
    by_name: dict[str, list[ProjectionState]] = {}
    for state in states_of(store).projection_states():
        by_name.setdefault(state.name, []).append(state)
    beats: dict[str, list[RunnerHeartbeat]] = {}
    for beat in runners_of(store):
        beats.setdefault(beat.name, []).append(beat)
    names = sorted(set(by_name) | set(app.names) | set(beats))
    return [projection_row(store, app, n, by_name.get(n, []), beats.get(n, [])) for n in names]


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
