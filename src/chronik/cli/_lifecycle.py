"""Deleting, retaining and repairing from a terminal: ``delete``, ``metadata``,
``scavenge`` and ``repair`` (``docs/lifecycle.md`` says what each does)."""

from __future__ import annotations

import getpass
import re
import sys
from datetime import timedelta
from typing import Any

import click
import msgspec

from chronik._connect import find_backend
from chronik.cli._app import load_app
from chronik.cli._common import (
    Output,
    app_option,
    fail,
    handle_errors,
    json_option,
    open_store,
    plural,
    render_event,
    url_option,
)
from chronik.cli._inspect import _expected, _json_value
from chronik.events import NewEvent, StreamInfo
from chronik.lifecycle import REPAIRS_STREAM, RepairRecord, StreamMetadata
from chronik.store import EventRepair, EventStore, StreamDeletion, StreamRetention

__all__ = ["delete", "metadata", "repair", "scavenge"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhdw]?)")


def _duration(text: str) -> timedelta | None:
    """``30d``, ``12h``, ``90m``, ``45s``, ``2w`` or seconds; ``none`` clears."""
    if text.lower() == "none":
        return None
    match = _DURATION.fullmatch(text.strip().lower())
    if match is None:
        raise click.BadParameter(f"{text!r}: give a duration such as 30d, 12h, 90m, 45s, or none")
    return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2) or "s"])


def _shown(age: timedelta) -> str:
    """A duration as ``_duration`` reads it: 30d, 12h, 90m, 45s."""
    seconds = age.total_seconds()
    for unit in ("w", "d", "h", "m"):
        if seconds >= _UNITS[unit] and seconds % _UNITS[unit] == 0:
            return f"{seconds / _UNITS[unit]:g}{unit}"
    return f"{seconds:g}s"


def _count(text: str) -> int | None:
    if text.lower() == "none":
        return None
    try:
        return int(text)
    except ValueError:
        raise click.BadParameter(f"{text!r}: give a whole number, or none") from None


def on_a_terminal() -> bool:
    """Whether a person may be there to answer (stdin is a terminal)."""
    return sys.stdin.isatty()


def _confirm(question: str, yes: bool) -> None:
    """Ask on a terminal (``--yes`` does not); scripts are not asked."""
    if yes or not on_a_terminal():
        return
    if not click.confirm(question, default=False, err=True):
        raise fail("nothing was changed")


def _power(store: EventStore, power: type, url: str, what: str) -> Any:
    if not isinstance(store, power):
        raise fail(f"{url} cannot {what}: its store has no {power.__name__}")
    return store


def _state(info: StreamInfo) -> str:
    return {"soft": "deleted", "hard": "deleted for good", "archived": "archived"}.get(
        info.deleted or "", "live"
    )


@click.command(short_help="Delete a stream: it reads as not existing (--hard: its events go now).")
@click.argument("stream")
@click.option("--hard", is_flag=True, help="Remove its events now and forbid its id for good.")
@click.option(
    "--expected-version",
    "expected",
    callback=lambda ctx, param, value: _expected(value),
    help="Delete only if the stream is at this version (a version, any, no-stream or stream-exists).",
)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation on a terminal.")
@url_option
@json_option
@handle_errors
def delete(stream: str, hard: bool, expected: Any, yes: bool, url: str, as_json: bool) -> None:
    """Delete STREAM. A soft delete hides it (its events stay in the log until a
    scavenge; appending again brings it back); --hard removes its events now and
    forbids its id for good. Asks first on a terminal."""
    store = _power(open_store(url), StreamDeletion, url, "delete streams")
    info = store.stream_info(stream)
    how = "for good, removing its events now" if hard else "(its events stay in the log until a scavenge)"
    _confirm(f"delete stream {stream} at version {info.version} {how}?", yes)
    result = store.delete_stream(stream, expected, hard=hard)
    out = Output(as_json)
    record = {
        "stream_id": result.stream_id,
        "mode": result.mode,
        "version": result.version,
        "position": result.position,
        "checkpoint": None if result.checkpoint is None else str(result.checkpoint),
    }
    if as_json:
        out.line(record)
    elif result.position is None:
        out.console.print(f"{stream} is {_state(store.stream_info(stream))}: nothing to do", markup=False)
    else:
        out.console.print(
            f"deleted {stream} ({result.mode}): deletion event at version {result.version}, "
            f"position {result.position}",
            markup=False,
        )


def _metadata_record(stream: str, info: StreamInfo, metadata: StreamMetadata) -> dict[str, Any]:
    age = metadata.max_age
    return {
        "stream_id": stream,
        "version": info.version,
        "deleted": info.deleted,
        "max_count": metadata.max_count,
        "max_age": None if age is None else age.total_seconds(),
        "truncate_before": metadata.truncate_before,
    }


@click.command(short_help="Show a stream's metadata and state, or change what it keeps.")
@click.argument("stream")
@click.option("--max-count", metavar="N|none", help="Keep only the last N events.")
@click.option("--max-age", metavar="DURATION|none", help="Hide events older than this (30d, 12h, 90s).")
@click.option("--truncate-before", metavar="VERSION|none", help="Hide the versions before this one.")
@click.option("--clear", is_flag=True, help="Remove every limit.")
@url_option
@json_option
@handle_errors
def metadata(
    stream: str,
    max_count: str | None,
    max_age: str | None,
    truncate_before: str | None,
    clear: bool,
    url: str,
    as_json: bool,
) -> None:
    """Show STREAM's metadata (max count, max age, truncate before) and whether it is
    deleted; with options, change the limits given (the others stay). Reads of the
    stream respect them at once; chronik scavenge removes what they hide."""
    store = _power(open_store(url), StreamRetention, url, "keep stream metadata")
    current = StreamMetadata() if clear else store.get_stream_metadata(stream)
    changes: dict[str, Any] = {}
    if max_count is not None:
        changes["max_count"] = _count(max_count)
    if max_age is not None:
        changes["max_age"] = _duration(max_age)
    if truncate_before is not None:
        changes["truncate_before"] = _count(truncate_before)
    if changes or clear:
        store.set_stream_metadata(stream, msgspec.structs.replace(current, **changes))
    shown = store.get_stream_metadata(stream)
    info = store.stream_info(stream)
    record = _metadata_record(stream, info, shown)
    out = Output(as_json)
    if as_json:
        out.line(record)
        return
    limits = [f"max count {shown.max_count}"] if shown.max_count is not None else []
    if shown.max_age is not None:
        limits.append(f"max age {_shown(shown.max_age)}")
    if shown.truncate_before is not None:
        limits.append(f"truncate before {shown.truncate_before}")
    out.console.print(
        f"{stream}: version {info.version}, {_state(info)}; " + (", ".join(limits) or "no limits"),
        markup=False,
    )


@click.command(short_help="Remove what deletes and stream metadata hide, and give the space back.")
@url_option
@json_option
@handle_errors
def scavenge(url: str, as_json: bool) -> None:
    """Remove the events that deletes and stream metadata hide (each stream keeps its
    last event; archived streams keep everything), then give the space back: SQLite's
    incremental vacuum, PostgreSQL's VACUUM, JetStream's purge."""
    store = _power(open_store(url), StreamRetention, url, "scavenge")
    backend = find_backend(url.partition("://")[0]) if "://" in url else None
    measure = None if backend is None else backend.store_size
    before = None if measure is None else measure(url)
    result = store.scavenge()
    after = None if measure is None else measure(url)
    out = Output(as_json)
    if as_json:
        out.line(
            {"events": result.events, "streams": result.streams, "bytes_before": before, "bytes_after": after}
        )
        return
    size = "" if before is None or after is None else f"; the store takes {after:,} bytes (was {before:,})"
    removed = plural(result.events, "event")
    out.console.print(f"removed {removed} from {plural(result.streams, 'stream')}{size}", markup=False)


@click.group(short_help="Replace an event that does not decode, or archive a broken stream (audited).")
def repair() -> None:
    """Audited repairs (docs/lifecycle.md): each is recorded, with who, when, why and
    the digest of what was there, in the stream $repairs, in the same transaction."""


def _operator(value: str | None) -> str:
    if value:
        return value
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        raise fail("say who repairs with --operator (the login name is not known here)") from None


def _show_record(out: Output, record: RepairRecord) -> None:
    if out.as_json:
        out.line(msgspec.to_builtins(record))
        return
    what = f"{record.stream_id} v{record.version}" if record.action == "replace" else record.stream_id
    out.console.print(
        f"{record.action}d {what} (position {record.position}) for {record.operator}: {record.reason}; "
        f"digest of what was there {record.digest}",
        markup=False,
    )


@repair.command("event", short_help="Replace one event's payload in place.")
@click.argument("stream")
@click.argument("version", type=click.IntRange(min=1))
@click.argument("data")
@click.option("--type", "type_", help="The replacement's type (default: the event's).")
@click.option(
    "--schema-version", type=click.IntRange(min=1), help="Default: the registered one, else the event's."
)
@click.option("--metadata", "meta", help="Replace the metadata too (a JSON object; default: kept).")
@click.option("--reason", required=True, help="Why (kept in the audit trail).")
@click.option("--operator", help="Who (default: the login name).")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation on a terminal.")
@url_option
@app_option
@json_option
@handle_errors
def repair_event(
    stream: str,
    version: int,
    data: str,
    type_: str | None,
    schema_version: int | None,
    meta: str | None,
    reason: str,
    operator: str | None,
    yes: bool,
    url: str,
    app_ref: str | None,
    as_json: bool,
) -> None:
    """Replace the payload of STREAM's event at VERSION with DATA (JSON; '-' reads
    stdin), keeping its version, position, id, tags and time. It is checked against
    its registered type (the application's registry with --app)."""
    app = load_app(app_ref)
    store = _power(open_store(url, app.registry, **app.store_options), EventRepair, url, "repair events")
    old = store.read_stream(stream, version, version)
    found = old[0] if old else None
    kind = type_ or (found.type if found is not None else None)
    if kind is None:
        raise fail(f"stream {stream!r} shows no event at version {version}: give its --type")
    if schema_version is None:
        known = app.registry.decoder_of(kind) if app.registry is not None else None
        schema_version = known[0] if known is not None else (found.schema_version if found else 1)
    payload = _json_value(sys.stdin.read() if data == "-" else data, "DATA")
    metadata_value = _json_value(meta, "--metadata") if meta is not None else None
    if metadata_value is not None and not isinstance(metadata_value, dict):
        raise fail("--metadata must be a JSON object")
    _confirm(f"replace {stream} v{version} with a {kind} (schema version {schema_version})?", yes)
    event = NewEvent(kind, payload, metadata_value, schema_version=schema_version)
    record = store.repair_event(stream, version, event, reason=reason, operator=_operator(operator))
    _show_record(Output(as_json), record)


@repair.command("archive", short_help="Set a stream aside: it reads as not existing and is kept.")
@click.argument("stream")
@click.option("--reason", required=True, help="Why (kept in the audit trail).")
@click.option("--operator", help="Who (default: the login name).")
@click.option(
    "--expected-version",
    "expected",
    callback=lambda ctx, param, value: _expected(value),
    help="Archive only if the stream is at this version.",
)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation on a terminal.")
@url_option
@json_option
@handle_errors
def repair_archive(
    stream: str, reason: str, operator: str | None, expected: Any, yes: bool, url: str, as_json: bool
) -> None:
    """Archive STREAM: it reads as not existing and takes no more events, and a
    scavenge keeps its events (repair them with chronik repair event, or delete it)."""
    store = _power(open_store(url), EventRepair, url, "archive streams")
    _confirm(f"archive stream {stream}?", yes)
    record = store.archive_stream(stream, expected, reason=reason, operator=_operator(operator))
    _show_record(Output(as_json), record)


@repair.command("log", short_help="The audit trail: every repair, oldest first.")
@url_option
@json_option
@handle_errors
def repair_log(url: str, as_json: bool) -> None:
    """Every repair, oldest first: the events of the stream $repairs."""
    store = open_store(url)
    out = Output(as_json)
    for event in store.read_stream(REPAIRS_STREAM):
        if as_json:
            out.line(event.data)
        else:
            render_event(out.console, event, metadata=False)
