"""``chronik demo``: a short narrated run of the store on an embedded SQLite file."""

from __future__ import annotations

from pathlib import Path

import msgspec
from rich.console import Console
from rich.table import Table

import chronik
from chronik import NO_STREAM, EventRegistry, RecordedEvent, WrongExpectedVersionError

__all__ = ["run_demo"]

registry = EventRegistry()


@registry.event("AccountOpened")
class AccountOpened(msgspec.Struct, frozen=True):
    owner: str


@registry.event("Deposited")
class Deposited(msgspec.Struct, frozen=True):
    amount: int
    memo: str = ""


def _events_table(title: str, events: list[RecordedEvent]) -> Table:
    table = Table(title=title)
    for column in ("position", "stream", "version", "type", "data"):
        table.add_column(column)
    for e in events:
        table.add_row(str(e.position), e.stream_id, str(e.version), e.type, repr(e.data))
    return table


def _fresh(path: Path, console: Console) -> None:
    existing = [p for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")) if p.exists()]
    if existing:
        console.print(f"[dim]Starting afresh: removing the previous demo file {path}[/dim]")
        for p in existing:
            p.unlink()


def run_demo(path: Path, console: Console | None = None) -> None:
    """Run the narrated demo, writing to the SQLite file at ``path``."""
    console = console or Console()
    _fresh(path, console)
    console.rule("[bold]chronik demo")
    console.print(f"Event store: an embedded SQLite file at [bold]{path.resolve()}[/bold]\n")
    store = chronik.connect(f"sqlite:///{path}", registry=registry)
    try:
        stream = "account-1"
        console.print(f"1. Open account [bold]{stream}[/bold]: the stream must not exist yet (NO_STREAM).")
        result = store.append(stream, [AccountOpened("Ada")], NO_STREAM)
        console.print(
            f"   -> stream is now at version {result.version}, event at position {result.position}\n"
        )

        console.print("2. Two deposits in one atomic append, expecting version 1.")
        result = store.append(stream, [Deposited(100, "salary"), Deposited(25, "refund")], 1)
        console.print(f"   -> version {result.version}\n")

        console.print("3. A writer that still believes the stream is at version 1 is refused:")
        try:
            store.append(stream, [Deposited(5)], 1)
        except WrongExpectedVersionError as err:
            console.print(f"   [red]WrongExpectedVersionError[/red]: {err}\n")

        store.append("account-2", [AccountOpened("Grace"), Deposited(40, "gift")], NO_STREAM)
        console.print("4. Reading the stream back gives typed events:")
        console.print(_events_table(stream, store.read_stream(stream)))
        balance = sum(e.data.amount for e in store.read_stream(stream) if isinstance(e.data, Deposited))
        console.print(f"   Folding them: Ada's balance is [bold]{balance}[/bold]\n")

        console.print("5. The global log orders every event of every stream; each carries a checkpoint:")
        log = list(store.read_all())
        console.print(_events_table("read_all()", log))
        middle = log[1].checkpoint
        rest = list(store.read_all(after=middle))
        console.print(f"   Resuming after checkpoint {middle} gives the {len(rest)} events after it.\n")
        info = store.list_streams(category="account")
        console.print(
            f"6. Streams in category 'account': {', '.join(f'{i.stream_id}@{i.version}' for i in info)}"
        )
    finally:
        store.close()
    console.rule("done")
