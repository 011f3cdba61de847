"""``chronik demo``: a narrated tour of event sourcing with chronik, on a SQLite file.

It runs the three example domains of :mod:`chronik.examples` through a
:class:`~chronik.CommandHandler`: commands and the events they cause, a rule that
refuses a command, two commands racing for the last seats, a snapshot, an account's
balance at an earlier moment, and old events upcast as they are read. Each run
starts from a fresh file.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

import chronik
from chronik import CommandHandler, CommandResult, NewEvent, RecordedEvent, SnapshotPolicy
from chronik.examples import registry
from chronik.examples.bank import AccountOpened, BankAccount, InsufficientFunds, audit_trail
from chronik.examples.conference import (
    BookingError,
    Conference,
    ConferenceCommand,
    ConferenceEvent,
    ReserveSeats,
    ScheduleConference,
    conference_decider,
)
from chronik.examples.orders import AddItem, CreateOrder, OrderCommand, OrderError, SubmitOrder, order_decider
from chronik.examples.projection_demo import projection_demo
from chronik.store import EventStore, SnapshotStore

__all__ = ["run_demo"]


def run_demo(path: Path, console: Console | None = None) -> None:
    """Run the narrated demo, writing to the SQLite file at ``path``."""
    console = console or Console()
    path = Path(path)
    console.rule("[bold]chronik demo")
    _fresh(path, console)
    console.print(f"Event store: an embedded SQLite file at [bold]{path.resolve()}[/bold]\n")
    console.print(
        "In event sourcing the state of things is not stored; what [italic]happened[/italic] is, as "
        "events appended to streams. A command asks for a change: the application loads the "
        "stream's events, folds them into the current state, decides which new events follow "
        "(or refuses), and appends them, expecting the stream to be where it loaded it.\n"
    )
    store = chronik.connect(f"sqlite:///{path}", registry=registry)
    try:
        _orders(store, console)
        _conference(store, console)
        _bank(store, console)
        log = list(store.read_all())
        streams = store.list_streams()
        console.rule("[bold]The global log")
        console.print(
            f"The store now holds {len(log)} events in {len(streams)} streams "
            f"({', '.join(s.stream_id for s in streams)}), all in one global order that "
            "projections and subscriptions read from a checkpoint."
        )
        console.rule("[bold]4. Projections: read models built from the log")
        console.print(
            "A projection folds the global log into a read model, here an orders table in the "
            "same SQLite file, committing its checkpoint with its writes: catch up, follow, rebuild."
        )
        projection_demo(store, console)
        console.print(f"Look inside with [bold]sqlite3 {path}[/bold]; run the demo again to start afresh.")
    finally:
        store.close()
    console.rule("done")
    # The command on lines that fit a terminal, so that it can be copied whole.
    where = path.resolve().parent
    cd = "" if where == Path.cwd().resolve() else f"  [bold]cd {where}[/bold]\n"
    console.print(
        "See it in a browser (the web UI needs the web extra):\n"
        + cd
        + f"  [bold]chronik serve --url sqlite:///{path.name} --app chronik.examples.app[/bold]\n"
        "then open http://127.0.0.1:8000/ (Ctrl-C stops it).",
        soft_wrap=True,
    )


def _fresh(path: Path, console: Console) -> None:
    existing = [p for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")) if p.exists()]
    if existing:
        console.print(f"[dim]Starting afresh: removing the previous demo file {path}[/dim]")
        for p in existing:
            p.unlink()


# -- 1. orders: a decider --------------------------------------------------------------


def _orders(store: EventStore, console: Console) -> None:
    console.rule("[bold]1. Orders: a decider")
    console.print(
        "[bold]chronik.examples.orders[/bold] models an order as a [italic]decider[/italic]: a pure "
        "function decide(command, state) -> events, a pure evolve(state, event) -> state, and an "
        "initial state. A CommandHandler runs it against the store.\n"
    )
    orders = CommandHandler(store, order_decider)
    stream = "order-1001"
    commands: list[OrderCommand] = [
        CreateOrder(customer="ada"),
        AddItem(sku="notebook", quantity=2, unit_price=1250),
        AddItem(sku="fountain-pen", quantity=1, unit_price=4900),
        SubmitOrder(),
    ]
    table = _table(f"commands on {stream}", "command", "events it caused", "version")
    for command in commands:
        result = orders.handle(stream, command, metadata={"user": "ada"})
        table.add_row(repr(command), "\n".join(map(repr, result.events)), str(result.version))
    console.print(_fit(table, console.width))
    order = orders.load(stream).state
    console.print(
        f"Folding the four events gives the order: status [bold]{order.status}[/bold], "
        f"{len(order.lines)} lines, total [bold]{_money(order.total)}[/bold].\n"
    )

    console.print("A business rule refuses a command: adding an item to the submitted order.")
    try:
        orders.handle(stream, AddItem(sku="ink", quantity=1, unit_price=300))
    except OrderError as err:
        console.print(f"   [red]OrderError[/red]: {err}")
    console.print(
        f"   Nothing was written: {stream} is still at version {store.stream_info(stream).version}."
    )
    result = orders.handle(stream, SubmitOrder())
    console.print(
        f"Submitting it again decides nothing, so nothing is appended (appended={result.appended}, "
        f"version {result.version}).\n"
    )


# -- 2. conference booking: concurrency --------------------------------------------------


def _conference(store: EventStore, console: Console) -> None:
    console.rule("[bold]2. Conference booking: two commands race")
    console.print(
        "[bold]chronik.examples.conference[/bold] never oversells. Every reservation of a "
        "conference is decided against the seats left at the version its handler loaded, and "
        "is appended expecting that version. If another reservation got in first, the append "
        "fails with a conflict and the handler loads again and decides again.\n"
    )
    stream = "conference-pycon"
    bookings = CommandHandler(store, conference_decider)
    bookings.handle(stream, ScheduleConference(name="PyCon", capacity=3))
    bookings.handle(stream, ReserveSeats(booking_id="b-1", attendee="grace", seats=1))
    console.print("PyCon is scheduled with 3 seats, and grace has reserved one: 2 are left.")
    console.print(
        "Now linus and barbara each reserve a seat, from two threads at once. (The demo holds "
        "both commands until both have loaded the stream, so that they surely collide.)\n"
    )

    barrier = threading.Barrier(2, timeout=30)
    local = threading.local()

    def decide_after_both_loaded(
        command: ConferenceCommand, conference: Conference
    ) -> Iterable[ConferenceEvent]:
        local.decisions = getattr(local, "decisions", 0) + 1
        if local.decisions == 1:
            barrier.wait()
        return conference_decider.decide(command, conference)

    racing = CommandHandler(store, dataclasses.replace(conference_decider, decide=decide_after_both_loaded))
    outcomes: dict[str, CommandResult[Conference] | Exception] = {}

    def reserve(attendee: str) -> None:
        try:
            outcomes[attendee] = racing.handle(
                stream, ReserveSeats(booking_id=f"b-{attendee}", attendee=attendee, seats=1)
            )
        except Exception as err:
            outcomes[attendee] = err

    threads = [threading.Thread(target=reserve, args=(name,)) for name in ("linus", "barbara")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    table = _table("two reservations at the same time", "attendee", "attempts", "outcome")
    for attendee in ("linus", "barbara"):
        outcome = outcomes[attendee]
        if isinstance(outcome, Exception):
            table.add_row(attendee, "", f"[red]{type(outcome).__name__}[/red]: {outcome}")
        else:
            retried = " after a conflict" if outcome.attempts > 1 else ""
            table.add_row(attendee, str(outcome.attempts), f"reserved{retried}, version {outcome.version}")
    console.print(_fit(table, console.width))
    loaded_at = store.stream_info(stream).version - 2  # where both loaded, before either appended
    console.print(
        f"Both decided against version {loaded_at}. One append won; the other failed with "
        f"WrongExpectedVersionError, so its handler loaded version {loaded_at + 1}, decided again "
        "(one seat was still left) and appended.\n"
    )
    console.print("Then edsger asks for a seat:")
    try:
        bookings.handle(stream, ReserveSeats(booking_id="b-edsger", attendee="edsger", seats=1))
    except BookingError as err:
        console.print(f"   [red]{type(err).__name__}[/red]: {err}")
    conference = bookings.load(stream).state
    console.print(
        f"Seats reserved: {conference.capacity - conference.seats_left} of {conference.capacity}. "
        "However many commands race, a conference is never oversold.\n"
    )


# -- 3. bank account: an aggregate, upcasting, snapshots, time travel ----------------------


def _bank(store: EventStore, console: Console) -> None:
    console.rule("[bold]3. A bank account: aggregate, upcasting, snapshot, time travel")
    console.print(
        "[bold]chronik.examples.bank[/bold] models an account as an [italic]aggregate[/italic]: a "
        "class whose command methods check the rules and record events, and whose methods "
        "marked @applies apply each event to its fields.\n"
    )
    stream = "account-ada"
    # Written the way older versions of the application wrote them.
    store.append(
        stream,
        [
            AccountOpened(owner="ada", overdraft_limit=10_000),
            NewEvent("MoneyDeposited", {"amount": 120}, metadata={"user": "teller-2019"}, schema_version=1),
            NewEvent(
                "MoneyDeposited",
                {"amount": 80, "currency": "EUR"},
                metadata={"user": "teller-2021"},
                schema_version=2,
            ),
        ],
        chronik.NO_STREAM,
    )
    console.print(
        f"{stream} was opened years ago. MoneyDeposited has changed shape twice since: version 1 "
        "counted whole euros, version 2 added the currency, version 3 counts cents and has a "
        "reference. Old events stay as they were written; upcasters rewrite them as they are "
        "read, so BankAccount only knows version 3.\n"
    )
    table = _table("stored, and as read", "version", "schema", "stored JSON", "read as")
    for event in store.read_stream(stream):
        table.add_row(str(event.version), str(event.schema_version), _json(event.raw_data), repr(event.data))
    console.print(_fit(table, console.width))

    accounts = CommandHandler(store, BankAccount, snapshots=SnapshotPolicy(every=5))
    console.print(
        "\nThe account handler keeps a snapshot every 5 events, so loading never replays the "
        "whole history. Each command carries the acting user and a command id (req-salary, "
        "req-rent, ...), stamped on its events as correlation and causation ids.\n"
    )
    steps: list[tuple[str, Callable[[BankAccount], object], str]] = [
        ("ada", lambda account: account.deposit(250_000, "salary"), "req-salary"),
        ("ada", lambda account: account.withdraw(95_000, "rent"), "req-rent"),
        ("ada", lambda account: account.withdraw(4_550, "groceries"), "req-groceries"),
        ("bank", lambda account: account.deposit(312, "interest"), "req-interest"),
    ]
    table = _table(f"commands on {stream}", "user", "events", "version", "balance", "snapshot")
    for user, command, command_id in steps:
        result = accounts.handle(stream, command, command_id=command_id, metadata={"user": user})
        table.add_row(
            user,
            "\n".join(map(repr, result.events)),
            str(result.version),
            _money(result.state.balance),
            "saved" if result.snapshot_saved else "",
        )
    console.print(_fit(table, console.width))

    console.print("\nThe overdraft limit refuses a withdrawal:")
    try:
        accounts.handle(stream, lambda account: account.withdraw(500_000, "yacht"), metadata={"user": "ada"})
    except InsufficientFunds as err:
        console.print(f"   [red]InsufficientFunds[/red]: {err}")

    again = accounts.handle(
        stream, lambda account: account.deposit(250_000, "salary"), command_id="req-salary"
    )
    console.print(
        "The salary command is sent again with the same command id (a client retrying after a "
        f"timeout): already_handled={again.already_handled}, nothing appended, the balance stays "
        f"{_money(again.state.balance)}.\n"
    )

    assert isinstance(store, SnapshotStore)
    snapshot = store.load_snapshot(stream)
    if snapshot is not None:
        console.print(
            f"The snapshot: version {snapshot.version}, type {snapshot.type!r}, schema version "
            f"{snapshot.schema_version}, data {_json(snapshot.data)}"
        )
    loaded = accounts.load(stream)
    console.print(
        f"Loading {stream} now starts from that snapshot (version {loaded.snapshot_version}) and "
        f"applies the {loaded.version - (loaded.snapshot_version or 0)} event(s) after it: "
        f"balance [bold]{_money(loaded.state.balance)}[/bold] at version {loaded.version}.\n"
    )

    salary = _event_with(store, stream, "salary")
    then = accounts.load(stream, as_of=salary.recorded_at)
    console.print(
        f"Time travel: the state as of {salary.recorded_at:%H:%M:%S.%f} UTC, just after the salary "
        f"was paid, is version {then.version} with balance [bold]{_money(then.state.balance)}"
        f"[/bold] (the snapshot, being newer, is not used). As of version 2 the balance was "
        f"{_money(accounts.load(stream, version=2).state.balance)}.\n"
    )

    table = _table(f"audit trail of {stream}", "version", "recorded at", "type", "change", "balance", "user")
    for entry in audit_trail(store, stream):
        table.add_row(
            str(entry.version),
            f"{entry.recorded_at:%H:%M:%S.%f}",
            entry.type,
            _money(entry.change) if entry.change else "",
            _money(entry.balance),
            entry.user or "",
        )
    console.print(_fit(table, console.width))
    console.print(f"Each event's metadata says who and why; version 4's: {salary.metadata}")


def _table(title: str, *columns: str) -> Table:
    # No outer edge or padding: four more columns for the cells on an 80-column terminal.
    table = Table(
        title=title,
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        title_justify="left",
        title_style="bold",
    )
    for column in columns:
        # Short columns never break; long ones (events, JSON) wrap between words.
        short = column in (
            "version",
            "schema",
            "attempts",
            "user",
            "type",
            "change",
            "balance",
            "snapshot",
            "recorded at",
        )
        table.add_column(column, no_wrap=short, overflow="fold")
    return table


def _fit(table: Table, width: int) -> Table:
    """Fix the columns' widths so that ``table`` fits ``width``, breaking cells between words.

    rich narrows a table that is too wide by taking from its widest columns evenly,
    without looking at the words in them, and folds a word that no longer fits
    ("fountain-pe" / "n'"). Here each column gets at least its longest word (a short
    column its longest line), and what is left goes to the long columns in
    proportion to how much more they would take. A table that fits as it is, or
    cannot fit at all, is left to rich.
    """
    spacing = 3 * (len(table.columns) - 1)  # a separator and a space each side, between columns
    least: list[int] = []
    most: list[int] = []
    for column in table.columns:
        texts = [str(column.header), *(Text.from_markup(str(cell)).plain for cell in column.cells)]
        lines = [line for text in texts for line in text.splitlines()]
        longest_line = max(map(len, lines), default=0)
        most.append(longest_line)
        least.append(
            longest_line if column.no_wrap else max((len(w) for t in lines for w in t.split()), default=0)
        )
    room = width - spacing
    if sum(most) <= room or sum(least) > room:
        return table
    spare, wanted = room - sum(least), sum(most) - sum(least)
    for column, low, high in zip(table.columns, least, most, strict=True):
        column.width = low + (high - low) * spare // wanted
    return table


def _json(raw: bytes | str) -> str:
    """Stored JSON as stored, but with a space after each comma: where a line may break."""
    return json.dumps(json.loads(raw), separators=(", ", ":"), ensure_ascii=False)


def _event_with(store: EventStore, stream: str, reference: str) -> RecordedEvent:
    return next(e for e in store.read_stream(stream) if getattr(e.data, "reference", None) == reference)


def _money(cents: int) -> str:
    return f"{cents / 100:,.2f}"
