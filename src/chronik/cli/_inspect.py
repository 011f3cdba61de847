"""Looking inside a store: ``info``, ``streams``, ``read``, ``log``, ``tail``, and ``append``."""

from __future__ import annotations

import itertools
import sys
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import click
import msgspec
from rich.table import Table

import chronik
from chronik._connect import find_backend
from chronik._operations import all_streams
from chronik.cli._app import load_app
from chronik.cli._common import (
    Output,
    app_option,
    checkpoint_type,
    event_record,
    fail,
    handle_errors,
    json_option,
    open_store,
    render_event,
    url_option,
)
from chronik.errors import ChronikError
from chronik.events import Checkpoint, NewEvent, RecordedEvent
from chronik.projections import projection_lag
from chronik.store import ProjectionStateStore, Subscribable

__all__ = ["append", "info", "log", "read", "streams", "tail"]


def _scheme(url: str) -> str:
    return url.partition("://")[0].lower()


def _bytes(size: int) -> str:
    """``size`` bytes for people: 512 B, 1.5 KiB, 12.3 MiB, 2.0 GiB."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{size:,} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


@click.command(short_help="Backend, schema, counts by category, head, projections and their lag.")
@url_option
@app_option
@json_option
@handle_errors
def info(url: str, app_ref: str | None, as_json: bool) -> None:
    """Backend, schema, counts of events and streams by category, head, projections and lag."""
    app = load_app(app_ref)
    backend = find_backend(_scheme(url))
    store = open_store(url, app.registry, **app.store_options)
    events = streams = 0
    by_category: Counter[str] = Counter()
    streams_by_category: Counter[str] = Counter()
    for stream in all_streams(store):
        streams += 1
        events += stream.version
        by_category[stream.category] += stream.version
        streams_by_category[stream.category] += 1
    head = store.head()
    schema = backend.check_schema(url) if backend.check_schema is not None else None
    size = backend.store_size(url) if backend.store_size is not None else None
    projections: list[dict[str, Any]] = []
    if isinstance(store, ProjectionStateStore):
        letters = Counter((d.projection, d.projection_version) for d in store.dead_letters())
        for state in store.projection_states():
            projections.append(
                {
                    "name": state.name,
                    "version": state.version,
                    "status": state.status,
                    "active": state.active,
                    "dead_letters": letters[(state.name, state.version)],
                    "lag_events": None,
                    "lag_seconds": None,
                }
            )
    for entry in projections:
        if entry["name"] in app.names:
            found = app.find(entry["name"])
            runner = app.runner(store, found.name)
            if runner.projection.version == entry["version"]:
                lag = projection_lag(store, runner.projection, runner.target)
                entry["lag_events"], entry["lag_seconds"] = lag.events, round(lag.seconds, 3)
    categories: list[dict[str, Any]] = [
        {"category": c, "streams": streams_by_category[c], "events": by_category[c]}
        for c in sorted(by_category)
    ]
    record: dict[str, Any] = {
        "url": url,
        "backend": backend.name,
        "schema": None if schema is None else {"applied": schema.applied, "pending": schema.pending},
        "events": events,
        "streams": streams,
        "head": None if head is None else str(head),
        "size_bytes": size,
        "categories": categories,
        "projections": projections,
    }
    out = Output(as_json)
    if as_json:
        out.line(record)
        return
    c = out.console
    c.print(f"[bold]{url}[/bold]  ({backend.name})")
    if schema is not None:
        current = schema.applied[-1] if schema.applied else "none"
        pending = f", pending: {', '.join(schema.pending)}" if schema.pending else " (up to date)"
        c.print(f"schema: {current}{pending}")
    c.print(f"events: {events:,}  streams: {streams:,}  head: {record['head'] or 'empty'}")
    if size is not None:
        c.print(f"size: {_bytes(size)}")
    if by_category:
        table = Table("category", "streams", "events", title="categories", title_justify="left")
        for item in categories:
            table.add_row(item["category"], f"{item['streams']:,}", f"{item['events']:,}")
        c.print(table)
    if projections:
        table = Table("projection", "version", "status", "active", "dead letters", "lag (events)", "lag (s)")
        for p in projections:
            table.add_row(
                p["name"],
                str(p["version"]),
                p["status"],
                "yes" if p["active"] else "",
                str(p["dead_letters"] or ""),
                "" if p["lag_events"] is None else f"{p['lag_events']:,}",
                "" if p["lag_seconds"] is None else f"{p['lag_seconds']:.1f}",
            )
        c.print(table)


@click.command()
@click.option("--category", help="Only streams of this category.")
@click.option("--limit", type=click.IntRange(min=1), help="At most this many streams.")
@url_option
@json_option
@handle_errors
def streams(category: str | None, limit: int | None, url: str, as_json: bool) -> None:
    """Streams by id, with their version."""
    store = open_store(url)
    listed = itertools.islice(all_streams(store, category), limit)
    out = Output(as_json)
    if as_json:
        out.lines({"stream_id": s.stream_id, "category": s.category, "version": s.version} for s in listed)
        return
    table = Table("stream", "category", "version")
    for s in listed:
        table.add_row(s.stream_id, s.category, str(s.version))
    out.console.print(table)


def _show(events: Iterator[RecordedEvent] | list[RecordedEvent], as_json: bool, metadata: bool) -> int:
    out = Output(as_json)
    shown = 0
    for event in events:
        shown += 1
        if as_json:
            out.line(event_record(event))
        else:
            render_event(out.console, event, metadata=metadata)
    return shown


@click.command()
@click.argument("stream")
@click.option("--from", "from_version", type=click.IntRange(min=1), default=1, help="Lowest version.")
@click.option("--to", "to_version", type=click.IntRange(min=1), help="Highest version.")
@click.option("--backwards", is_flag=True, help="Highest version first.")
@click.option("--limit", type=click.IntRange(min=1), help="At most this many events.")
@click.option("--metadata", is_flag=True, help="Show each event's metadata and id too.")
@url_option
@json_option
@handle_errors
def read(
    stream: str,
    from_version: int,
    to_version: int | None,
    backwards: bool,
    limit: int | None,
    metadata: bool,
    url: str,
    as_json: bool,
) -> None:
    """The events of one stream."""
    store = open_store(url)
    events = store.read_stream(stream, from_version, to_version, backwards=backwards, limit=limit)
    if not events:
        found = store.stream_info(stream)
        if found.deleted is not None:
            how = {"soft": "deleted", "hard": "deleted for good", "archived": "archived"}[found.deleted]
            raise fail(f"stream {stream!r} was {how} in {url} (chronik metadata {stream} shows it)")
        if not found.exists:
            raise fail(f"stream {stream!r} does not exist in {url}")
    _show(events, as_json, metadata)


def _filters(category: tuple[str, ...], type_: tuple[str, ...]) -> dict[str, Any]:
    return {"categories": list(category) or None, "types": list(type_) or None}


@click.command()
@click.option("--after", type=checkpoint_type, help="Only events after this checkpoint.")
@click.option("--category", multiple=True, help="Only events of this category (repeatable).")
@click.option("--type", "type_", multiple=True, help="Only events of this type (repeatable).")
@click.option("--limit", type=click.IntRange(min=1), help="At most this many events.")
@click.option("--metadata", is_flag=True, help="Show each event's metadata and id too.")
@url_option
@json_option
@handle_errors
def log(
    after: Checkpoint | None,
    category: tuple[str, ...],
    type_: tuple[str, ...],
    limit: int | None,
    metadata: bool,
    url: str,
    as_json: bool,
) -> None:
    """The global log, in order, from the start or after a checkpoint."""
    store = open_store(url)
    _show(store.read_all(after, limit=limit, **_filters(category, type_)), as_json, metadata)


@click.command()
@click.option("--after", type=checkpoint_type, help="Start after this checkpoint (default: the head).")
@click.option("--from-start", is_flag=True, help="Start at the beginning of the log.")
@click.option("--category", multiple=True, help="Only events of this category (repeatable).")
@click.option("--type", "type_", multiple=True, help="Only events of this type (repeatable).")
@click.option("--metadata", is_flag=True, help="Show each event's metadata and id too.")
@url_option
@json_option
@handle_errors
def tail(
    after: Checkpoint | None,
    from_start: bool,
    category: tuple[str, ...],
    type_: tuple[str, ...],
    metadata: bool,
    url: str,
    as_json: bool,
) -> None:
    """Follow the global log live, until Ctrl-C."""
    store = open_store(url)
    if not isinstance(store, Subscribable):
        raise fail(f"{url} cannot be followed: its store has no subscriptions")
    if after is None and not from_start:
        after = store.head()
    out = Output(as_json)
    if not as_json:
        out.console.print(f"following {url} after {after or 'the start'} (Ctrl-C to stop)", style="dim")
    subscription = store.subscribe(after, **_filters(category, type_))
    try:
        while True:
            batch = subscription.next_batch(timeout=1.0)
            _show(batch, as_json, metadata)
            sys.stdout.flush()
    except KeyboardInterrupt:
        if not as_json:
            out.console.print(f"stopped after {subscription.checkpoint or 'nothing'}", style="dim")
    finally:
        subscription.close()


def _expected(value: str | None) -> Any:
    if value is None:
        return chronik.ANY
    named = {"any": chronik.ANY, "no-stream": chronik.NO_STREAM, "stream-exists": chronik.STREAM_EXISTS}
    if value.lower() in named:
        return named[value.lower()]
    try:
        number = int(value)
    except ValueError:
        raise click.BadParameter(
            f"{value!r}: give a version (0 for no stream), any, no-stream or stream-exists"
        ) from None
    if number < 0:
        raise click.BadParameter(f"{value!r}: a version is 0 or more")
    return number


def _json_value(text: str, what: str) -> Any:
    try:
        return msgspec.json.decode(text)
    except msgspec.DecodeError as err:
        raise fail(f"{what} is not JSON: {err}") from None


@click.command(short_help="Append an event, or many as JSON Lines on stdin.")
@click.argument("stream", required=False)
@click.argument("type_", metavar="[TYPE]", required=False)
@click.argument("data", required=False)
@click.option(
    "--expected-version",
    "expected",
    callback=lambda ctx, param, value: _expected(value),
    help="A version (0: no stream), any, no-stream or stream-exists.",
)
@click.option("--metadata", help="Metadata as a JSON object.")
@url_option
@app_option
@json_option
@handle_errors
def append(
    stream: str | None,
    type_: str | None,
    data: str | None,
    expected: Any,
    metadata: str | None,
    url: str,
    app_ref: str | None,
    as_json: bool,
) -> None:
    """Append an event: STREAM TYPE DATA (DATA '-': read it from stdin).

    With no arguments, reads JSON Lines from stdin, each {"stream_id", "type", "data"}
    (and optionally "metadata", "event_id", "expected_version"), one append a line.
    """
    expected_version = expected
    meta = _json_value(metadata, "--metadata") if metadata is not None else None
    if meta is not None and not isinstance(meta, dict):
        raise fail("--metadata must be a JSON object")
    app = load_app(app_ref)
    out = Output(as_json)
    if stream is None:
        store = open_store(url, app.registry, create=True, **app.store_options)
        for number, line in enumerate(sys.stdin, 1):
            if not line.strip():
                continue
            write = _line_write(line, number, meta, expected_version)
            try:
                result = store.append(write[0], [write[1]], write[2])
            except ChronikError as err:
                raise fail(f"line {number}: {err} (lines before it are appended)") from err
            _report(out, result)
        return
    if type_ is None or data is None:
        raise click.UsageError(
            "give STREAM TYPE DATA (DATA '-' reads stdin), or none of them to read JSON Lines"
        )
    payload = _json_value(sys.stdin.read() if data == "-" else data, "DATA")
    store = open_store(url, app.registry, create=True, **app.store_options)
    result = store.append(stream, [NewEvent(type_, payload, meta)], expected_version)
    _report(out, result)


def _line_write(line: str, number: int, meta: Any, expected: Any) -> tuple[str, NewEvent, Any]:
    try:
        record = msgspec.json.decode(line)
    except msgspec.DecodeError as err:
        raise fail(f"line {number} is not JSON: {err} (lines before it are appended)") from None
    if not isinstance(record, dict) or not isinstance(record.get("stream_id"), str) or not record.get("type"):
        raise fail(f'line {number} needs "stream_id", "type" and "data" (lines before it are appended)')
    event_id = record.get("event_id")
    try:
        new = NewEvent(
            record["type"],
            record.get("data"),
            record.get("metadata", meta),
            None if event_id is None else msgspec.convert(event_id, type=uuid.UUID),
            record.get("schema_version", 1),
        )
    except (msgspec.ValidationError, TypeError) as err:
        raise fail(f"line {number}: {err} (lines before it are appended)") from None
    line_expected = record.get("expected_version")
    return record["stream_id"], new, expected if line_expected is None else _expected(str(line_expected))


def _report(out: Output, result: chronik.AppendResult) -> None:
    record = {
        "stream_id": result.stream_id,
        "version": result.version,
        "position": result.position,
        "checkpoint": str(result.checkpoint),
    }
    if out.as_json:
        out.line(record)
    else:
        out.console.print(
            f"appended to {result.stream_id}: version {result.version}, position {result.position}",
            markup=False,
        )
