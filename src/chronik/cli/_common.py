"""What every command shares: the store URL, JSON Lines or tables, one-line errors.

Errors: anything chronik raises (and a few errors of the operating system) ends
the command with one line on stderr and exit status 1, never a traceback; wrong
usage is click's, exit status 2.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, ParamSpec, TypeVar

import click
import msgspec
from rich.console import Console
from rich.markup import escape

import chronik
from chronik._connect import DEFAULT_URL, find_backend
from chronik._operations import event_record, operator_options, pretty_json
from chronik.codec import EventRegistry
from chronik.errors import ChronikError
from chronik.events import Checkpoint, RecordedEvent
from chronik.store import Store

__all__ = [
    "DEFAULT_URL",
    "Output",
    "app_option",
    "checkpoint_type",
    "console",
    "event_record",
    "fail",
    "json_option",
    "open_store",
    "plural",
    "url_option",
]

P = ParamSpec("P")
R = TypeVar("R")

_encoder = msgspec.json.Encoder()


def console(stderr: bool = False) -> Console:
    """A rich console on stdout (or stderr), plain when not a terminal."""
    return Console(stderr=stderr, highlight=False, soft_wrap=True)


def fail(message: str) -> click.ClickException:
    """The error a command raises to stop with ``message`` (exit status 1)."""
    return click.ClickException(message)


def one_line(err: BaseException) -> str:
    text = str(err).strip() or type(err).__name__
    return " ".join(text.split("\n")[0].split()) if "\n" in text else text


def handle_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Turn chronik's errors (and bad files) into one line and exit status 1."""

    @functools.wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except click.ClickException:
            raise
        except (ChronikError, OSError, msgspec.MsgspecError) as err:
            raise fail(one_line(err)) from err

    return run


def url_option(command: Callable[P, R]) -> Callable[P, R]:
    return click.option(
        "--url",
        envvar="CHRONIK_URL",
        default=DEFAULT_URL,
        show_default="$CHRONIK_URL, else " + DEFAULT_URL,
        help="The store to open.",
    )(command)


def json_option(command: Callable[P, R]) -> Callable[P, R]:
    return click.option(
        "--json", "as_json", is_flag=True, help="JSON Lines on stdout (one object a line) instead of tables."
    )(command)


def app_option(command: Callable[P, R]) -> Callable[P, R]:
    return click.option(
        "--app",
        "app_ref",
        metavar="MODULE[:ATTRIBUTE]",
        help="Where the application's registry, projections and process managers are "
        "(default: [tool.chronik] app in ./pyproject.toml).",
    )(command)


def open_store(
    url: str, registry: EventRegistry | None = None, *, create: bool = False, **options: Any
) -> Store:
    """The store at ``url``, closed when the command ends.

    Personal data reads as the application wrote it (or redacted, its subject
    forgotten) whatever the registry declares, and sealed payloads open with the keys
    of ``$CHRONIK_CIPHER_KEYS`` (``chronik._operations.operator_options``); ``options``
    (an application's ``store_options``) come first. Unless ``create``, a URL where no
    chronik store exists yet is refused rather than made into an empty store (a
    mistyped file name would otherwise become one).
    """
    if not create:
        backend = find_backend(url.partition("://")[0]) if "://" in url else None
        check = backend.check_schema if backend is not None else None
        if check is not None and not check(url).applied:
            raise fail(f"no chronik store at {url} (chronik migrate --url ... creates one)")
    store = chronik.connect(url, registry=registry, **operator_options(options))
    click.get_current_context().call_on_close(store.close)
    return store


class _CheckpointType(click.ParamType):  # type: ignore[type-arg]
    name = "CHECKPOINT"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Checkpoint:
        if isinstance(value, Checkpoint):
            return value
        try:
            return Checkpoint.parse(str(value))
        except (ChronikError, ValueError) as err:
            self.fail(f"{value!r} is not a checkpoint ({one_line(err)})", param, ctx)


checkpoint_type = _CheckpointType()


def _iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def encode_line(record: Any) -> bytes:
    return _encoder.encode(record) + b"\n"


class Output:
    """Where a command writes: JSON Lines with ``--json``, rich otherwise."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json
        self.console = console()

    def lines(self, records: Iterable[Any]) -> None:
        out = sys.stdout.buffer
        for record in records:
            out.write(encode_line(record))
        out.flush()

    def line(self, record: Any) -> None:
        self.lines([record])


def render_event(out: Console, event: RecordedEvent, *, metadata: bool) -> None:
    """An event for people: a header line, then its data as indented JSON."""
    out.print(
        f"[bold]{event.stream_id}[/bold] v{event.version}  [cyan]{event.type}[/cyan]"
        f"  position {event.position}  {_iso(event.recorded_at)}"
        + (f"  schema v{event.schema_version}" if event.schema_version != 1 else "")
        + (f"  tags {escape(' '.join(event.tags))}" if event.tags else ""),
        markup=True,
    )
    out.print(_indent(pretty_json(event.plain_data)), markup=False)
    if metadata:
        out.print(f"  metadata (event id {event.event_id}):", style="dim", markup=False)
        out.print(_indent(pretty_json(event.plain_metadata)), markup=False)


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())


def plural(n: int, what: str) -> str:
    """``1 event``, ``2,000 events``."""
    return f"{n:,} {what}{'' if n == 1 else 's'}"
