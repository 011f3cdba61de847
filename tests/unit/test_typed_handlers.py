"""Handlers registered for an event class see that class: ``RecordedEvent[T]`` and
``EventHandlers.on``, at run time and under ``mypy --strict`` (run here on snippets)."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import msgspec
import pytest

import chronik
from chronik import EventRegistry, InvalidInputError, NewEvent, RecordedEvent
from chronik.errors import UnregisteredEventError
from chronik.process_managers import ProcessContext, ProcessManager, process_manager_runner
from chronik.projections import CheckpointedTarget, EventHandlers, Projection, ProjectionRunner
from tests._mypy import mypy_strict

registry = EventRegistry()


@registry.event("BookAdded")
class BookAdded(msgspec.Struct, frozen=True):
    isbn: str
    title: str


@registry.event("BookRemoved")
class BookRemoved(msgspec.Struct, frozen=True):
    isbn: str


class Unregistered(msgspec.Struct, frozen=True):
    isbn: str


Shelf = dict[str, str]


# -- at run time --------------------------------------------------------------------------


def test_handlers_registered_by_class_run_under_their_stored_type_names() -> None:
    handlers = EventHandlers[Shelf](registry)

    @handlers.on(BookAdded)
    def added(event: RecordedEvent[BookAdded], shelf: Shelf) -> None:
        shelf[event.data.isbn] = event.data.title

    @handlers.on(BookRemoved, "BookLost")  # a class and a stored name (an unregistered type)
    def gone(event: RecordedEvent[Any], shelf: Shelf) -> None:
        shelf.pop(event.data["isbn"] if isinstance(event.data, dict) else event.data.isbn, None)

    assert dict(handlers) == {"BookAdded": added, "BookRemoved": gone, "BookLost": gone}
    store = chronik.connect("memory://", registry=registry)
    store.append("book-1", [BookAdded("1", "Dune"), BookAdded("2", "Emma"), BookRemoved("1")])
    store.append("book-2", [NewEvent("BookLost", {"isbn": "2"}), BookAdded("3", "Ulysses")])
    shelf: Shelf = {}
    projection = Projection("shelf", handlers)
    assert projection.types == ("BookAdded", "BookRemoved", "BookLost")
    assert ProjectionRunner(store, projection, CheckpointedTarget(shelf, store)).run_until_caught_up() == 5
    assert shelf == {"3": "Ulysses"}


def test_a_process_manager_takes_handlers_registered_by_class() -> None:
    handlers = EventHandlers[ProcessContext](registry)

    @handlers.on(BookAdded)
    def catalogue(event: RecordedEvent[BookAdded], ctx: ProcessContext) -> None:
        ctx.append(f"catalogue-{event.data.isbn}", [NewEvent("Catalogued", {"title": event.data.title})])

    store = chronik.connect("memory://", registry=registry)
    store.append("book-1", [BookAdded("1", "Dune")])
    process_manager_runner(store, ProcessManager("cataloguer", handlers)).run_until_caught_up()
    assert [e.data for e in store.read_stream("catalogue-1")] == [{"title": "Dune"}]


def test_bad_registrations_are_refused_naming_the_problem() -> None:
    handlers = EventHandlers[Shelf](registry)

    @handlers.on(BookAdded)
    def added(event: RecordedEvent[BookAdded], shelf: Shelf) -> None: ...

    def again(event: RecordedEvent[BookAdded], shelf: Shelf) -> None: ...

    with pytest.raises(InvalidInputError, match=r"'BookAdded' has a handler already \(.*added\)"):
        handlers.on(BookAdded)(again)
    with pytest.raises(UnregisteredEventError, match="Unregistered is not a registered event type"):
        handlers.on(Unregistered)
    with pytest.raises(InvalidInputError, match="at least one event class"):
        handlers.on()
    with pytest.raises(InvalidInputError, match="takes event classes or stored type names, got 3"):
        handlers.on(3)  # type: ignore[call-overload]
    with pytest.raises(InvalidInputError, match="takes the EventRegistry"):
        EventHandlers({})  # type: ignore[arg-type]
    assert dict(handlers) == {"BookAdded": added}  # the refused ones left nothing behind


# -- under mypy --strict ------------------------------------------------------------------

_PRELUDE = """\
import msgspec

import chronik
from chronik import Aggregate, RecordedEvent, applies
from chronik.projections import EventHandlers, Projection
from chronik.store import StoreTransaction

registry = chronik.EventRegistry()


@registry.event("BookAdded")
class BookAdded(msgspec.Struct, frozen=True):
    isbn: str


@registry.event("BookRemoved")
class BookRemoved(msgspec.Struct, frozen=True):
    isbn: str


handlers = EventHandlers[StoreTransaction](registry)
"""

SNIPPETS = {
    # Everything here type-checks without a cast or an ignore.
    "clean": """
        @handlers.on(BookAdded)
        def added(event: RecordedEvent[BookAdded], tx: StoreTransaction) -> None:
            reveal_type(event.data)
            isbn: str = event.data.isbn
            tx.execute("INSERT INTO books VALUES (?)", (isbn,))

        @handlers.on(BookAdded, BookRemoved)
        def either(event: RecordedEvent[BookAdded | BookRemoved], tx: StoreTransaction) -> None:
            reveal_type(event.data)

        @handlers.on("BookLost")
        def untyped(event: RecordedEvent, tx: StoreTransaction) -> None:  # bare: RecordedEvent[Any]
            reveal_type(event.data)

        books = Projection("books", handlers)
        store = chronik.connect("memory://", registry=registry)
        with store.transaction() as tx:
            tx.save_checkpoint("books", store.append("book-1", [BookAdded("1")]).checkpoint)
        with store.subscribe() as subscription:
            subscription.next_batch(timeout=0)


        async def main() -> None:
            aio = chronik.connect_async("memory://", registry=registry)
            async with aio.transaction() as atx:
                await atx.append("book-2", [BookAdded("2")])
            async with aio.subscribe() as asubscription:
                await asubscription.next_batch(timeout=0)


        class Book(Aggregate):
            isbn: str = ""

            @applies(BookAdded)
            def _added(self, event: BookAdded) -> None:
                self.isbn = event.isbn
        """,
    # event.data is the registered type, not Any: assigning it to an int is an error.
    "data_is_typed": """
        @handlers.on(BookAdded)
        def added(event: RecordedEvent[BookAdded], tx: StoreTransaction) -> None:
            number: int = event.data
        """,
    # A handler annotated for another class than the one it is registered for.
    "wrong_handler": """
        @handlers.on(BookAdded)
        def added(event: RecordedEvent[BookRemoved], tx: StoreTransaction) -> None: ...
        """,
    # An aggregate method marked for one class but taking another.
    "wrong_applies": """
        class Book(Aggregate):
            @applies(BookAdded)
            def _added(self, event: BookRemoved) -> None: ...
        """,
}


@pytest.fixture(scope="module")
def mypy_output(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    """mypy --strict's messages for each snippet, run once on all of them."""
    folder = tmp_path_factory.mktemp("typed_handlers")
    for name, body in SNIPPETS.items():
        (folder / f"{name}.py").write_text(_PRELUDE + textwrap.dedent(body), encoding="utf-8")
    report, errors, _ = mypy_strict(folder, [folder / f"{name}.py" for name in SNIPPETS])
    assert not errors, errors
    lines: dict[str, list[str]] = {name: [] for name in SNIPPETS}
    for line in report.splitlines():
        name = Path(line.partition(":")[0]).stem
        if name in lines:
            lines[name].append(line.partition(": ")[2])
    return lines


def test_a_typed_handler_sees_its_event_type_and_needs_no_cast(mypy_output: dict[str, list[str]]) -> None:
    assert mypy_output["clean"] == [
        'note: Revealed type is "clean.BookAdded"',
        'note: Revealed type is "clean.BookAdded | clean.BookRemoved"',
        'note: Revealed type is "Any"',
    ]


def test_event_data_is_not_any_in_a_typed_handler(mypy_output: dict[str, list[str]]) -> None:
    assert mypy_output["data_is_typed"] == [
        'error: Incompatible types in assignment (expression has type "BookAdded", '
        'variable has type "int")  [assignment]'
    ]


def test_a_handler_for_another_type_is_flagged(mypy_output: dict[str, list[str]]) -> None:
    [message] = mypy_output["wrong_handler"]
    assert message.startswith("error: Argument 1 has incompatible type")
    assert 'expected "Callable[[RecordedEvent[BookAdded], StoreTransaction], None]"' in message


def test_an_aggregate_method_for_another_type_is_flagged(mypy_output: dict[str, list[str]]) -> None:
    [message] = mypy_output["wrong_applies"]
    assert message.startswith("error: Argument 1 has incompatible type")
    assert 'expected "Callable[[Book, BookAdded], None]"' in message
