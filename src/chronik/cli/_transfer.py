"""Moving events: ``export`` and ``import`` (JSON Lines), and ``copy`` between stores.

An import keeps each event's stream, version, type, schema version, data, metadata
and id: every stream is appended expecting the version before its first event, so
the versions come out as they went in, and the ids make it idempotent (an event
already stored at its place is not written again). Events are appended in batches
across streams (``append_many``: one transaction a batch), in the order of the
file, so the global log keeps its order too. ``recorded_at`` and positions are the
destination's own.
"""

from __future__ import annotations

import io
import os
import stat
import sys
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import IO, Any

import click
import msgspec
from rich.progress import (
    BarColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from chronik.cli._app import load_app
from chronik.cli._common import (
    app_option,
    checkpoint_type,
    console,
    encode_line,
    event_record,
    fail,
    handle_errors,
    open_store,
    plural,
    url_option,
)
from chronik.errors import ChronikError
from chronik.events import Checkpoint, NewEvent, RecordedEvent, StreamWrite
from chronik.store import EventStore, Subscribable

__all__ = ["Importer", "copy", "export", "import_"]

DEFAULT_BATCH = 1000


class _Line(msgspec.Struct):
    """One exported event, as ``import`` reads it (other fields are ignored)."""

    stream_id: str
    version: int
    type: str
    event_id: uuid.UUID
    data: msgspec.Raw = msgspec.Raw(b"null")
    metadata: dict[str, Any] | None = None
    schema_version: int = 1
    tags: list[str] = []


_line_decoder = msgspec.json.Decoder(_Line)


@dataclass
class _Run:
    """Consecutive events of one stream, from line ``first_line`` on."""

    stream_id: str
    first_version: int
    first_line: int
    events: list[NewEvent] = field(default_factory=list)

    @property
    def last_version(self) -> int:
        return self.first_version + len(self.events) - 1


class ImportStopped(Exception):
    def __init__(self, line: int, why: str) -> None:
        super().__init__(why)
        self.line = line
        self.why = why


class Importer:
    """Appends events with their versions and ids, in batches, in the order given."""

    def __init__(self, store: EventStore, batch_size: int = DEFAULT_BATCH) -> None:
        self.store = store
        self.batch_size = batch_size
        self.runs: list[_Run] = []
        self.streams: set[str] = set()
        self.pending = 0
        self.done = 0
        """Events appended (or found already stored at their place)."""

    def add(self, line: int, stream_id: str, version: int, event: NewEvent) -> None:
        if version < 1:
            raise ImportStopped(line, f"version must be 1 or more, got {version}")
        last = self.runs[-1] if self.runs else None
        if last is not None and last.stream_id == stream_id:
            if version != last.last_version + 1:
                raise ImportStopped(
                    line,
                    f"stream {stream_id!r} version {version} follows version {last.last_version}: "
                    "a stream's versions must be contiguous and in order",
                )
            last.events.append(event)
        else:
            if stream_id in self.streams:  # a stream may appear once per append_many
                self.flush()
            self.runs.append(_Run(stream_id, version, line, [event]))
            self.streams.add(stream_id)
        self.pending += 1
        if self.pending >= self.batch_size:
            self.flush()

    def flush(self) -> None:
        runs, self.runs, self.streams, self.pending = self.runs, [], set(), 0
        if not runs:
            return
        writes = [StreamWrite(r.stream_id, r.events, r.first_version - 1) for r in runs]
        try:
            self.store.append_many(writes)
        except ChronikError:
            # A stream already partly there (an import resumed after a fix), or a bad
            # event: stream by stream, to write what is missing or name the line.
            for run in runs:
                self._careful(run)
        self.done += sum(len(r.events) for r in runs)

    def _careful(self, run: _Run) -> None:
        stream = run.stream_id
        try:
            at = self.store.stream_info(stream).version
            skip = 0
            if at >= run.first_version:
                stored = self.store.read_stream(stream, run.first_version, run.last_version)
                for offset, event in enumerate(stored):
                    if event.event_id != run.events[offset].event_id:
                        raise ImportStopped(
                            run.first_line + offset,
                            f"stream {stream!r} version {event.version} holds another event "
                            f"({event.event_id}) than the one imported ({run.events[offset].event_id})",
                        )
                skip = len(stored)
            elif at < run.first_version - 1:
                raise ImportStopped(
                    run.first_line,
                    f"stream {stream!r} is at version {at}, and the import continues it at "
                    f"version {run.first_version}: the events before are missing",
                )
            if skip < len(run.events):
                self.store.append(stream, run.events[skip:], run.first_version - 1 + skip)
        except ChronikError as err:
            raise ImportStopped(run.first_line, str(err)) from err


def _decode_line(text: bytes, number: int) -> _Line:
    try:
        return _line_decoder.decode(text)
    except (msgspec.DecodeError, msgspec.ValidationError) as err:
        raise ImportStopped(number, f"not an exported event: {err}") from None


def _progress(what: str) -> AbstractContextManager[Progress | None]:
    """A progress bar on a terminal (nothing when stderr is not one): the percentage and
    the time left when the task has a total, the events so far and their rate always."""
    if not sys.stderr.isatty():
        return nullcontext()
    columns: list[Any] = [
        TextColumn(what),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TextColumn("elapsed,"),
        TimeRemainingColumn(),
        TextColumn("left"),
    ]
    return Progress(*columns, console=console(stderr=True), transient=False)


class _Meter:
    """Feeds a progress bar: events done, their rate, and how far along the total is."""

    def __init__(self, progress: Progress | None, total: int | None) -> None:
        self.progress = progress
        self.began = time.monotonic()
        self.task = progress.add_task("", total=total, rate="") if progress is not None else None

    def update(self, events: int, completed: int | None = None) -> None:
        if self.progress is None or self.task is None:
            return
        elapsed = time.monotonic() - self.began
        rate = f"{events:,} events" + (f", {events / elapsed:,.0f}/s" if elapsed > 0 else "")
        self.progress.update(self.task, completed=events if completed is None else completed, rate=rate)


def _count(
    store: EventStore, after: Checkpoint | None, categories: list[str] | None, types: list[str] | None
) -> int | None:
    """How many events a read of the log will give, counted by the store's log reader
    (one query on SQL stores), for the progress bar; None when the store cannot say."""
    if not isinstance(store, Subscribable):
        return None
    reader = store.log_reader()
    try:
        return reader.count_events(
            after, None if categories is None else tuple(categories), None if types is None else tuple(types)
        )
    finally:
        reader.close()


def _file_size(file: IO[bytes]) -> int | None:
    """The size of a regular file (None for stdin and pipes): an import's progress is in bytes."""
    try:
        info = os.fstat(file.fileno())
    except (OSError, ValueError, io.UnsupportedOperation):
        return None
    return info.st_size if stat.S_ISREG(info.st_mode) and info.st_size > 0 else None


def import_lines(
    importer: Importer, lines: Iterable[bytes], progress: Progress | None = None, size: int | None = None
) -> int:
    """Import JSON Lines; returns the number of lines read. Raises :class:`ImportStopped`.

    ``size``: the bytes of the file, when known, for the progress bar's percentage."""
    meter = _Meter(progress, size)
    number = read = 0
    for number, text in enumerate(lines, 1):
        read += len(text)
        if not text.strip():
            continue
        try:
            line = _decode_line(text, number)
            event = NewEvent(
                line.type, line.data, line.metadata or None, line.event_id, line.schema_version, line.tags
            )
            importer.add(number, line.stream_id, line.version, event)
        except ImportStopped:
            importer.flush()  # every line before the bad one is imported
            raise
        if number % 1000 == 0:
            meter.update(importer.done, read if size else None)
    importer.flush()
    meter.update(importer.done, read if size else None)
    return number


def _stopped(err: ImportStopped, source: str) -> click.ClickException:
    again = f"chronik import {source}" if source != "-" else "the same import"
    return fail(
        f"line {err.line}: {err.why}. Every line before it is imported; fix line {err.line} and run "
        f"{again} again (events already imported are skipped), or resume from it with "
        f"tail -n +{err.line}"
    )


@click.command("import", short_help="Append the events of a JSON Lines file, keeping versions and ids.")
@click.argument("file", type=click.File("rb"))
@click.option("--batch-size", type=click.IntRange(min=1), default=DEFAULT_BATCH, show_default=True)
@url_option
@app_option
@handle_errors
def import_(file: IO[bytes], batch_size: int, url: str, app_ref: str | None) -> None:
    """Append the events of a JSON Lines FILE (- for stdin), keeping versions and ids.

    Importing the same file twice writes nothing the second time. A bad line stops the
    import at that line; everything before it is imported.
    """
    app = load_app(app_ref)
    store = open_store(url, app.registry, create=True, **app.store_options)
    importer = Importer(store, batch_size)
    with _progress("importing") as progress:
        try:
            lines = import_lines(importer, file, progress, _file_size(file))
        except ImportStopped as err:
            raise _stopped(err, file.name if file.name != "<stdin>" else "-") from None
    console(stderr=True).print(
        f"imported {plural(importer.done, 'event')} from {plural(lines, 'line')} into {url}", markup=False
    )


def _records(events: Iterable[RecordedEvent]) -> Iterator[bytes]:
    for event in events:
        yield encode_line(event_record(event))


@click.command(short_help="Write the global log, or part of it, to a JSON Lines file.")
@click.argument("file", type=click.File("wb", lazy=True))
@click.option("--after", type=checkpoint_type, help="Only events after this checkpoint.")
@click.option("--category", multiple=True, help="Only events of this category (repeatable).")
@click.option("--type", "type_", multiple=True, help="Only events of this type (repeatable).")
@url_option
@handle_errors
def export(
    file: IO[bytes], after: Checkpoint | None, category: tuple[str, ...], type_: tuple[str, ...], url: str
) -> None:
    """Write the global log (or part of it) to FILE (- for stdout) as JSON Lines."""
    store = open_store(url)
    categories, types = list(category) or None, list(type_) or None
    count = 0
    last: Checkpoint | None = None
    with _progress("exporting") as progress:
        meter = _Meter(progress, _count(store, after, categories, types) if progress is not None else None)
        for event in store.read_all(after, categories=categories, types=types):
            file.write(encode_line(event_record(event)))
            count += 1
            last = event.checkpoint
            if count % 1000 == 0:
                meter.update(count)
        meter.update(count)
    file.flush()
    upto = f", up to checkpoint {last}" if last is not None else ""
    console(stderr=True).print(f"exported {plural(count, 'event')}{upto}", markup=False)


@click.command(short_help="Copy every event of one store into another, keeping versions and ids.")
@click.argument("src_url")
@click.argument("dst_url")
@click.option("--after", type=checkpoint_type, help="Only events after this checkpoint of SRC_URL.")
@click.option("--batch-size", type=click.IntRange(min=1), default=DEFAULT_BATCH, show_default=True)
@app_option
@handle_errors
def copy(src_url: str, dst_url: str, after: Checkpoint | None, batch_size: int, app_ref: str | None) -> None:
    """Copy every event of SRC_URL into DST_URL, keeping streams, versions and ids.

    The way from an embedded SQLite file to PostgreSQL: chronik copy
    sqlite:///app.db postgresql://host/db. Running it again copies only what is missing.

    Events are copied as the application wrote them and sealed again in DST_URL: with
    its cipher, and personal data with its subjects' keys there, which needs the
    application's registry (--app); an event with personal data stops the copy
    without it.
    """
    app = load_app(app_ref)
    source = open_store(src_url, app.registry, **app.store_options)
    target = open_store(dst_url, app.registry, create=True, **app.store_options)
    importer = Importer(target, batch_size)
    personal = target.codec.registry.personal_fields
    with _progress("copying") as progress:
        meter = _Meter(progress, _count(source, after, None, None) if progress is not None else None)
        for n, event in enumerate(source.read_all(after), 1):
            if not personal(event.type) and source.codec.subjects_to_unlock(event):
                importer.flush()
                raise fail(
                    f"event {n} of {src_url} ({event.type!r} at {event.stream_id!r} version "
                    f"{event.version}) holds personal data: copy with --app naming the application "
                    "whose registry declares it (PersonalData), so that it is sealed again in "
                    f"{dst_url}; everything before it is copied"
                )
            plain_metadata = event.plain_metadata
            metadata = msgspec.json.decode(plain_metadata) if plain_metadata else None
            plain = event.plain_data
            data = msgspec.Raw(plain.encode() if isinstance(plain, str) else plain)
            new = NewEvent(event.type, data, metadata, event.event_id, event.schema_version, event.tags)
            try:
                importer.add(n, event.stream_id, event.version, new)
            except ImportStopped as err:
                importer.flush()
                raise fail(f"event {n} of {src_url}: {err.why}") from None
            if n % 1000 == 0:
                meter.update(importer.done)
        try:
            importer.flush()
        except ImportStopped as err:
            raise fail(f"event {err.line} of {src_url}: {err.why}") from None
        meter.update(importer.done)
    console(stderr=True).print(
        f"copied {plural(importer.done, 'event')} from {src_url} to {dst_url}", markup=False
    )
