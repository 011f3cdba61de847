"""Keeping a store sound: ``verify`` reads everything and reports what is wrong;
``migrate`` applies (or, with ``--check``, reports) pending schema migrations."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import click

import chronik
from chronik._connect import find_backend
from chronik._operations import all_streams
from chronik.cli._app import load_app
from chronik.cli._common import (
    Output,
    app_option,
    fail,
    handle_errors,
    json_option,
    open_store,
    plural,
    url_option,
)
from chronik.codec import EventRegistry
from chronik.errors import ChronikError
from chronik.lifecycle import StreamMetadata
from chronik.store import EventStore, StreamRetention

__all__ = ["migrate", "verify"]

SHOWN = 1000


def _problems(store: EventStore, registry: EventRegistry | None) -> Iterator[dict[str, Any]]:
    """Every problem found, as a record; the counts come last, as ``None``-free totals."""
    last: dict[str, tuple[int, int]] = {}  # stream -> (version, position)
    positions: set[int] = set()
    previous = None
    for event in store.read_all():
        where = {"stream_id": event.stream_id, "version": event.version, "position": event.position}
        seen = last.get(event.stream_id)
        expected = 1 if seen is None else seen[0] + 1
        if event.version != expected and not (seen is None and _trimmed(store, event.stream_id)):
            yield {**where, "problem": f"version {event.version} follows version {expected - 1}"}
        if seen is not None and event.position <= seen[1]:
            yield {**where, "problem": f"position {event.position} is not after the stream's {seen[1]}"}
        if event.position in positions:
            yield {**where, "problem": f"position {event.position} is taken by another event"}
        positions.add(event.position)
        if previous is not None and not event.checkpoint > previous:
            yield {**where, "problem": f"checkpoint {event.checkpoint} is not after {previous}"}
        previous = event.checkpoint
        last[event.stream_id] = (event.version, event.position)
        try:
            event.data  # noqa: B018 - decoding is the check
            event.metadata  # noqa: B018
        except ChronikError as err:
            yield {**where, "problem": f"{event.type!r} does not decode: {err}"}
    streams = 0
    for stream in all_streams(store):
        streams += 1
        read = last.pop(stream.stream_id, (0, 0))[0]
        if read != stream.version:
            yield {
                "stream_id": stream.stream_id,
                "version": stream.version,
                "position": None,
                "problem": f"the stream says version {stream.version}, its events end at {read}",
            }
    for stream_id, (version, _) in sorted(last.items()):
        if store.stream_info(stream_id).deleted is not None:
            continue  # deleted streams are not listed
        yield {
            "stream_id": stream_id,
            "version": version,
            "position": None,
            "problem": "not listed as a stream",
        }
    yield {"events": len(positions), "streams": streams}


def _trimmed(store: EventStore, stream_id: str) -> bool:
    """Whether a stream's first events may be gone: it was deleted, or its metadata
    hides some (a scavenge removes those; docs/lifecycle.md)."""
    if store.stream_info(stream_id).deleted is not None:
        return True
    return isinstance(store, StreamRetention) and store.get_stream_metadata(stream_id) != StreamMetadata()


@click.command(short_help="Check every stream and event; print what is wrong and exit 1.")
@url_option
@app_option
@json_option
@handle_errors
def verify(url: str, app_ref: str | None, as_json: bool) -> None:
    """Check every stream and event: versions contiguous (a stream whose first events
    a delete or its metadata hides may start later), positions unique and in order,
    payloads decodable (under the application's registry with --app), upcaster chains
    complete. Prints what is wrong and exits 1."""
    app = load_app(app_ref)
    out = Output(as_json)
    found: list[dict[str, Any]] = []
    registry = app.registry
    if registry is not None:
        try:
            registry.validate()
        except ChronikError as err:
            found.append({"stream_id": None, "version": None, "position": None, "problem": str(err)})
            out.line(found[-1]) if as_json else out.console.print(str(err), markup=False)
            registry = None  # the store would refuse to open with it; the rest is checked without
    store = open_store(url, registry, **app.store_options)
    totals: dict[str, Any] = {}
    for record in _problems(store, registry):
        if "problem" not in record:
            totals = record
            continue
        found.append(record)
        if len(found) <= SHOWN:
            if as_json:
                out.line(record)
            else:
                at = f"{record['stream_id']} v{record['version']}: " if record["stream_id"] else ""
                out.console.print(f"{at}{record['problem']}", markup=False)
    events, streams = plural(totals.get("events", 0), "event"), plural(totals.get("streams", 0), "stream")
    checked = f"checked {events} in {streams}"
    if len(found) > SHOWN and not as_json:
        out.console.print(f"... and {len(found) - SHOWN:,} more", markup=False)
    if found:
        raise fail(f"{checked} of {url}: {plural(len(found), 'problem')}")
    click.echo(f"{checked} of {url}: no problems", err=as_json)


@click.command(short_help="Apply pending schema migrations, or report them with --check.")
@click.option("--check", is_flag=True, help="Only report pending migrations (exit 1 if there are any).")
@url_option
@json_option
@handle_errors
def migrate(check: bool, url: str, as_json: bool) -> None:
    """Apply pending schema migrations (a new store is created), or report them with --check."""
    backend = find_backend(url.partition("://")[0]) if "://" in url else None
    if backend is None:
        raise fail(f"cannot open store URL {url!r}")
    out = Output(as_json)
    if backend.check_schema is None:
        message = f"the {backend.name} backend has no schema migrations"
        out.line({"applied": [], "pending": [], "message": message}) if as_json else click.echo(message)
        return
    status = backend.check_schema(url)
    if check:
        if as_json:
            out.line({"applied": status.applied, "pending": status.pending})
        elif status.pending:
            click.echo(f"{url} needs migrations: {', '.join(status.pending)}")
        else:
            click.echo(f"{url} is up to date ({status.applied[-1]})")
        if status.pending:
            raise click.exceptions.Exit(1)
        return
    if status.pending:
        chronik.connect(url, migrate=True).close()
    after = backend.check_schema(url)
    if as_json:
        out.line({"applied": status.pending, "pending": after.pending})
    elif status.pending:
        click.echo(f"applied {', '.join(status.pending)} to {url}")
    else:
        click.echo(f"{url} is up to date ({after.applied[-1]})")
