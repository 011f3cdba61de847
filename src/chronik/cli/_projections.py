"""``projections list|status|run|rebuild|reset`` and ``dead-letters list|show|replay|skip``.

They run the application's projections and process managers (found with ``--app``)
with chronik's own runner, on the store's transactions, as the application does;
what is stored about them (state, checkpoints, dead letters) is read through the
store's ``ProjectionStateStore``, and what their runners are doing, in this process
or any other, through their heartbeats (``RunnerHeartbeats``). A dead letter is
named by its projection and the position of its event.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from chronik._operations import (
    find_letters,
    iso,
    letter_record,
    pretty_json,
    projection_row,
    projection_rows,
    replay_letter,
    seconds,
    skip_letter,
    states_of,
)
from chronik.cli._app import load_app
from chronik.cli._common import (
    Output,
    app_option,
    console,
    fail,
    handle_errors,
    json_option,
    open_store,
    url_option,
)
from chronik.errors import ChronikError
from chronik.events import DeadLetter
from chronik.projections import ProjectionRunner, RunnerStatus
from chronik.projections._common import DEFAULT_HEARTBEAT
from chronik.store import ProjectionStateStore, Store

__all__ = ["dead_letters", "projections"]


def _states(store: Store) -> ProjectionStateStore:
    try:
        return states_of(store)
    except ChronikError as err:
        raise fail(str(err)) from err


@click.group()
def projections() -> None:
    """List, inspect, run, rebuild and reset the application's projections."""


def _print_rows(out: Output, rows: list[dict[str, Any]]) -> None:
    if out.as_json:
        out.lines(rows)
        return
    table = Table(
        "projection",
        "kind",
        "version",
        "status",
        "active",
        "lag (events)",
        "lag (s)",
        "dead letters",
        "runners",
    )
    for r in rows:
        table.add_row(
            r["name"],
            r["kind"] or "(not in the app)",
            "" if r["version"] is None else str(r["version"]),
            r["status"],
            "yes" if r.get("active") else "",
            "" if r.get("lag_events") is None else f"{r['lag_events']:,}",
            "" if r.get("lag_seconds") is None else f"{r['lag_seconds']:.1f}",
            str(r["dead_letters"] or ""),
            ", ".join(_label(runner) for runner in r["runners"]),
        )
    out.console.print(table)


def _label(runner: dict[str, Any]) -> str:
    """A runner in a table cell: its state, and how long it has been silent when stale."""
    if runner["stale"]:
        return f"stale ({seconds(runner['heard_seconds_ago'])} silent)"
    return str(runner["label"])


@projections.command("list")
@url_option
@app_option
@json_option
@handle_errors
def list_(url: str, app_ref: str | None, as_json: bool) -> None:
    """The application's projections and those the store knows, with status and lag."""
    app = load_app(app_ref)
    store = open_store(url, app.registry, **app.store_options)
    _print_rows(Output(as_json), projection_rows(store, app))


@projections.command()
@click.argument("name")
@url_option
@app_option
@json_option
@handle_errors
def status(name: str, url: str, app_ref: str | None, as_json: bool) -> None:
    """One projection: status, checkpoint, lag, failure and dead letters."""
    app = load_app(app_ref)
    store = open_store(url, app.registry, **app.store_options)
    states = _states(store).projection_states(name)
    if not states and name not in app.names:
        app.find(name)  # raises: unknown projection
    record = projection_row(store, app, name, states)
    out = Output(as_json)
    if as_json:
        out.line(record)
        return
    for key, value in record.items():
        if value is not None and key != "runners":
            out.console.print(f"{key.replace('_', ' ')}: {value}", markup=False)
    if not record["runners"]:
        out.console.print("runners: none has written a heartbeat", markup=False)
    for runner in record["runners"]:
        where = f"{runner['host']} pid {runner['pid']}"
        member = f" (member {runner['partition']})" if runner["partition"] else ""
        out.console.print(
            f"runner {runner['runner_id']} on {where}{member}: {runner['summary']}", markup=False
        )
        facts = [f"checkpoint {runner['checkpoint']}", f"handled {runner['handled']:,}"]
        if runner["lag_events"] is not None:
            facts.append(f"lag {runner['lag_events']:,} events ({runner['lag_seconds']:.1f} s)")
        facts.append(f"started {runner['started_at']}")
        out.console.print(f"  {', '.join(facts)}", markup=False)


def _runner(url: str, app_ref: str | None, name: str, **options: Any) -> ProjectionRunner[Any]:
    app = load_app(app_ref, required=True)
    app.find(name)
    store = open_store(url, app.registry, **app.store_options)
    return app.runner(store, name, **options)


class _StateLines:
    """Prints a runner's changes of state as they happen: retrying (why), recovered."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.retrying = False

    def __call__(self, status: RunnerStatus) -> None:
        if status.state == "retrying" and status.retrying is not None and not self.retrying:
            self.retrying = True
            r = status.retrying
            click.echo(f"{self.name}: retrying since {iso(r.since)} ({r.error})")
        elif status.state != "retrying" and self.retrying:
            self.retrying = False
            back = status.recovered
            if back is not None:
                click.echo(
                    f"{self.name}: recovered at {iso(back.until)} after {back.attempts:,} failed "
                    f"attempt{'' if back.attempts == 1 else 's'} over {seconds(back.seconds)} "
                    f"(last: {back.error}); {status.state.replace('_', ' ')}"
                )


def _heartbeat_option(command: Any) -> Any:
    return click.option(
        "--heartbeat",
        type=click.FloatRange(min=0.1, max=86400),
        default=DEFAULT_HEARTBEAT,
        show_default=True,
        help="Seconds between the runner's heartbeat records (what projections status shows from elsewhere).",
    )(command)


@contextmanager
def _progress_bar(runner: ProjectionRunner[Any], what: str) -> Iterator[None]:
    """A bar of events handled out of the lag at the start, with events/s and time left."""
    total = runner.lag().events
    err = console(stderr=True)
    if not err.is_terminal:
        yield
        return
    columns = [
        TextColumn(f"{what} {runner.projection.name}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
    ]
    with Progress(*columns, console=err) as progress:
        task = progress.add_task(what, total=total or None, rate="")
        start, began = runner.handled + runner.parked, time.monotonic()

        def advance(r: ProjectionRunner[Any]) -> None:
            done = r.handled + r.parked - start  # parked events are behind it too
            elapsed = time.monotonic() - began
            rate = f"{done / elapsed:,.0f} events/s" if elapsed > 0 else ""
            progress.update(task, completed=done, rate=rate)

        runner.on_progress = advance
        yield


@projections.command(short_help="Catch projection NAME up (and follow live with --follow).")
@click.argument("name")
@click.option("--follow", is_flag=True, help="Then keep following new events until Ctrl-C (or SIGTERM).")
@_heartbeat_option
@url_option
@app_option
@handle_errors
def run(name: str, follow: bool, heartbeat: float, url: str, app_ref: str | None) -> None:
    """Catch projection NAME up from its checkpoint (and follow live with --follow).

    Changes of state are printed as they happen (retrying, and why; recovered), and
    written as the runner's heartbeat for `projections status` in other processes.
    SIGTERM stops it as Ctrl-C does, and its last heartbeat says it stopped."""
    runner = _runner(url, app_ref, name, heartbeat=heartbeat, on_state_change=_StateLines(name))
    with _Sigterm() as sigterm:
        try:
            with _progress_bar(runner, "running"):
                handled = runner.run_until_caught_up()
            parked = f", parked {runner.parked:,}" if runner.parked else ""
            click.echo(f"{name}: handled {handled:,} events{parked}, caught up at {runner.checkpoint}")
            if not follow:
                return
            click.echo(f"{name}: following (Ctrl-C to stop)")
            sigterm.following = True
        except _Terminated:
            click.echo(f"{name}: stopped by SIGTERM at {runner.checkpoint}")
            return
        try:
            runner.run_in_background()
            while not sigterm.done.is_set() and runner.status(lag=False).state != "stopped":
                sigterm.done.wait(0.2)
        except KeyboardInterrupt:
            pass
        finally:
            runner.stop(timeout=30)  # its last heartbeat says it stopped, rather than go stale
    click.echo(f"{name}: stopped at {runner.checkpoint}")
    if runner.error is not None:
        raise fail(f"{name} stopped: {type(runner.error).__name__}: {runner.error}")


class _Terminated(BaseException):
    """SIGTERM arrived while the runner ran in the foreground (not an Exception, so no
    handler or retry takes it for a failure of its own)."""


class _Sigterm:
    """While it is entered, SIGTERM ends a runner in the foreground with :class:`_Terminated`,
    and, once one is ``following`` in the background, sets ``done`` for it to be stopped."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.following = False

    def _received(self, signum: int, frame: FrameType | None) -> None:
        self.done.set()
        if not self.following:
            raise _Terminated("SIGTERM")

    def __enter__(self) -> _Sigterm:
        self._previous = signal.signal(signal.SIGTERM, self._received)
        return self

    def __exit__(self, *exc: object) -> None:
        signal.signal(signal.SIGTERM, self._previous)


@projections.command()
@click.argument("name")
@url_option
@app_option
@handle_errors
def rebuild(name: str, url: str, app_ref: str | None) -> None:
    """Tear NAME's read model down and build it again from the start of the log."""
    runner = _runner(url, app_ref, name)
    runner.reset()
    with _progress_bar(runner, "rebuilding"):
        handled = runner.run_until_caught_up()
    parked = f", parked {runner.parked:,}" if runner.parked else ""
    click.echo(f"{name}: rebuilt from {handled:,} events{parked}, caught up at {runner.checkpoint}")


@projections.command()
@click.argument("name")
@url_option
@app_option
@handle_errors
def reset(name: str, url: str, app_ref: str | None) -> None:
    """Tear NAME's read model down and forget its checkpoint and state (next run rebuilds)."""
    runner = _runner(url, app_ref, name)
    runner.reset()
    click.echo(f"{name}: reset (version {runner.projection.version})")


# -- dead letters ---------------------------------------------------------------------------------


@click.group("dead-letters")
def dead_letters() -> None:
    """The events projections parked after their handlers kept failing."""


@dead_letters.command("list")
@click.argument("projection", required=False)
@url_option
@json_option
@handle_errors
def list_letters(projection: str | None, url: str, as_json: bool) -> None:
    """Dead letters in the order they were parked, of one projection or of all."""
    store = open_store(url)
    letters = _states(store).dead_letters(projection)
    out = Output(as_json)
    if as_json:
        out.lines(letter_record(d) for d in letters)
        return
    table = Table("projection", "position", "stream", "version", "type", "attempts", "parked at", "error")
    for d in letters:
        e = d.event
        error = e.error.splitlines()[0] if e.error else ""
        table.add_row(
            f"{d.projection} v{d.projection_version}",
            str(e.position),
            e.stream_id,
            str(e.version),
            e.type,
            str(e.attempts),
            iso(d.parked_at),
            error[:80],
        )
    out.console.print(table)


def _find(store: Store, projection: str, positions: tuple[int, ...]) -> list[DeadLetter]:
    try:
        return find_letters(store, projection, positions)
    except ChronikError as err:
        raise fail(str(err)) from err


@dead_letters.command()
@click.argument("projection")
@click.argument("position", type=int)
@url_option
@json_option
@handle_errors
def show(projection: str, position: int, url: str, as_json: bool) -> None:
    """A dead letter in full: the error, and the event it is about."""
    store = open_store(url)
    [letter] = _find(store, projection, (position,))
    e = letter.event
    stored = store.read_stream(e.stream_id, e.version, e.version)
    record = letter_record(letter)
    if stored:
        event = stored[0]
        record["data"] = pretty_json(event.plain_data)
        record["metadata"] = pretty_json(event.plain_metadata)
    out = Output(as_json)
    if as_json:
        out.line(record)
        return
    for key in ("projection", "projection_version", "stream_id", "version", "type", "position", "event_id"):
        out.console.print(f"{key.replace('_', ' ')}: {record[key]}", markup=False)
    out.console.print(f"parked at: {record['parked_at']} after {e.attempts} attempts", markup=False)
    out.console.print(f"error: {e.error}", markup=False)
    for key in ("data", "metadata"):
        if key in record:
            out.console.print(f"{key}:\n{record[key]}", markup=False)


@dead_letters.command()
@click.argument("projection")
@click.argument("positions", type=int, nargs=-1, required=True)
@url_option
@handle_errors
def skip(projection: str, positions: tuple[int, ...], url: str) -> None:
    """Drop dead letters of PROJECTION (by position) without handling their events."""
    store = open_store(url)
    for letter in _find(store, projection, positions):
        skip_letter(store, letter)
        e = letter.event
        click.echo(f"skipped {e.stream_id} v{e.version} (position {e.position})")


@dead_letters.command(short_help="Handle parked events again; those that succeed are removed.")
@click.argument("projection")
@click.argument("positions", type=int, nargs=-1)
@click.option("--all", "every", is_flag=True, help="Every dead letter of PROJECTION.")
@url_option
@app_option
@handle_errors
def replay(projection: str, positions: tuple[int, ...], every: bool, url: str, app_ref: str | None) -> None:
    """Handle parked events again (by position, or --all); each one that succeeds is removed,
    in the same unit as the handler's writes."""
    app = load_app(app_ref, required=True)
    app.find(projection)
    store = open_store(url, app.registry, **app.store_options)
    runner = app.runner(store, projection)
    if every:
        positions = tuple(
            d.event.position
            for d in _states(store).dead_letters(projection)
            if d.projection_version == runner.projection.version
        )
    elif not positions:
        raise click.UsageError("give the positions of the dead letters to replay, or --all")
    failed = 0
    for letter in _find(store, projection, positions):
        e = letter.event
        try:
            replay_letter(store, runner, letter)
        except Exception as err:
            failed += 1
            where = f"{e.stream_id} v{e.version} (position {e.position})"
            console(stderr=True).print(f"still failing: {where}: {type(err).__name__}: {err}", markup=False)
            continue
        click.echo(f"replayed {e.stream_id} v{e.version} (position {e.position})")
    if failed:
        raise fail(f"{failed} of {len(positions)} dead letters still fail; they stay parked")
