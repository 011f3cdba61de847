"""SQLite specifics: the file, its schema, durability settings, transactions, bad files."""

import sqlite3
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest

import chronik
from chronik import NewEvent
from chronik.errors import NotAChronikStoreError, PendingMigrationsError, SchemaVersionError
from chronik.events import DeadLetter, FailedEvent
from chronik.stores.sqlite import SQLiteEventStore, check_schema
from chronik.stores.sqlite.schema import MIGRATIONS


def _open(path: Path, **options: Any) -> SQLiteEventStore:
    store = chronik.connect(f"sqlite:///{path}", **options)
    assert isinstance(store, SQLiteEventStore)
    return store


def test_new_file_is_created_in_wal_mode_with_recorded_migrations(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    every = [m.name for m in MIGRATIONS]
    assert every[0] == "0001_initial"
    assert check_schema(path) == every
    assert not path.exists(), "checking must not create the file"
    with _open(path) as store:
        assert store.check_schema() == []
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert [r[0] for r in conn.execute("SELECT name FROM chronik_migrations ORDER BY name")] == every
    conn.close()
    assert check_schema(path) == []


def test_synchronous_full_by_default_normal_on_request(tmp_path: Path) -> None:
    with _open(tmp_path / "a.db") as store:
        assert store._conn().execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    with _open(tmp_path / "a.db", synchronous="NORMAL") as store:
        assert store._conn().execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL


def test_a_file_that_is_not_sqlite(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_bytes(b"these are my notes, not a database" * 100)
    with pytest.raises(NotAChronikStoreError, match="not a SQLite database"):
        _open(path)
    assert path.read_bytes().startswith(b"these are my notes")


def test_a_sqlite_file_of_another_application(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY)")
    conn.commit()
    conn.close()
    with pytest.raises(NotAChronikStoreError, match="tables customers and no chronik_migrations"):
        _open(path)
    with pytest.raises(NotAChronikStoreError):
        check_schema(path)
    conn = sqlite3.connect(path)
    assert [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")] == ["customers"]
    conn.close()


def test_a_store_migrated_by_a_newer_chronik(tmp_path: Path) -> None:
    path = tmp_path / "newer.db"
    _open(path).close()
    conn = sqlite3.connect(path)
    conn.execute("INSERT INTO chronik_migrations VALUES ('0099_from_the_future', 0)")
    conn.commit()
    conn.close()
    with pytest.raises(SchemaVersionError, match="newer chronik.*0099_from_the_future"):
        _open(path)
    with pytest.raises(SchemaVersionError):
        check_schema(path)


def test_dead_letters_parked_before_0003_keep_their_order(tmp_path: Path) -> None:
    # A file of the previous schema (0002) with dead letters, upgraded on open: the
    # letters are numbered in the order they were listed, later ones follow them.
    path = tmp_path / "v2.db"
    store = _open(path)
    store.append("acc-1", [NewEvent("Added", {"n": n}) for n in range(3)])
    one, two, three = store.read_stream("acc-1")
    for event, projection in ((two, "b"), (one, "a")):
        failure = FailedEvent.of(event, ValueError("no"), 1)
        store.park_event(DeadLetter(projection, 1, failure, datetime(2030, 1, 1 + event.version, tzinfo=UTC)))
    store.close()
    conn = sqlite3.connect(path)
    conn.execute("DROP INDEX chronik_dead_letters_by_parked_seq")
    conn.execute("ALTER TABLE chronik_dead_letters DROP COLUMN parked_seq")
    conn.execute("DELETE FROM chronik_migrations WHERE name = '0003_dead_letter_order'")
    conn.commit()
    conn.close()
    assert check_schema(path) == ["0003_dead_letter_order"]
    store = _open(path)
    store.park_event(
        DeadLetter("c", 1, FailedEvent.of(three, ValueError("no"), 1), datetime(2029, 1, 1, tzinfo=UTC))
    )
    assert [(d.projection, d.event.version) for d in store.dead_letters()] == [("a", 1), ("b", 2), ("c", 3)]
    store.close()


def test_migrate_false_refuses_a_file_that_needs_migrations(tmp_path: Path) -> None:
    with pytest.raises(PendingMigrationsError, match="0001_initial"):
        _open(tmp_path / "fresh.db", migrate=False)
    _open(tmp_path / "fresh.db").close()
    _open(tmp_path / "fresh.db", migrate=False).close()


def test_a_directory_is_an_operational_error(tmp_path: Path) -> None:
    with pytest.raises(chronik.OperationalError, match="unable to open"):
        _open(tmp_path)


def test_a_stored_payload_that_no_longer_decodes(tmp_path: Path) -> None:
    with _open(tmp_path / "c.db", registry=chronik.EventRegistry()) as store:
        store.append("order-1", [NewEvent("Created", {"a": 1})])
        store._conn().execute("UPDATE chronik_events SET data = '{broken'")
        [event] = store.read_stream("order-1")
        with pytest.raises(chronik.EventDecodeError, match="'Created' at 'order-1' version 1"):
            _ = event.data


class BookAdded(msgspec.Struct, frozen=True):
    isbn: str


def test_an_event_written_unchecked_by_another_program_is_named_as_such(tmp_path: Path) -> None:
    # Another program (here: a store without the type registered) writes a payload
    # that never fitted the type; the reader says so, not that an upcaster is missing.
    with _open(tmp_path / "u.db") as other_program:
        other_program.append("book-1", [NewEvent("BookAdded", {"isbn": 5})])
    registry = chronik.EventRegistry()
    registry.register(BookAdded, "BookAdded")
    with _open(tmp_path / "u.db", registry=registry) as store:
        [event] = store.read_stream("book-1")
        with pytest.raises(chronik.EventDecodeError) as info:
            _ = event.data
    assert str(info.value).startswith(
        "event 'BookAdded' at 'book-1' version 1 was stored with a payload that never fitted "
        "BookAdded v1: Expected `str`, got `int` - at `$.isbn`; it was written unchecked"
    )


def test_bad_input_never_corrupts_the_file(tmp_path: Path) -> None:
    path = tmp_path / "i.db"
    with _open(path, max_event_size=100) as store:
        store.append("a-1", [NewEvent("X", {})])
        bad_appends: list[Callable[[], object]] = [
            lambda: store.append("", [NewEvent("X", {})]),
            lambda: store.append("a-1", [NewEvent("X", {"s": "x" * 200})]),
            lambda: store.append("a-1", [NewEvent("X", {"o": object()})]),
            lambda: store.append("a-1", [NewEvent("X", {})], -1),
        ]
        for bad in bad_appends:
            with pytest.raises(chronik.InvalidInputError):
                bad()
        assert store._conn().execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert [e.version for e in store.read_all()] == [1]


def test_threads_share_one_store(tmp_path: Path) -> None:
    with _open(tmp_path / "th.db") as store:

        def work(i: int) -> None:
            for k in range(20):
                store.append(f"t-{i}", [NewEvent("X", {"k": k})])

        threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert [e.position for e in store.read_all()] == list(range(1, 121))
    with pytest.raises(chronik.StoreClosedError):
        store.stream_info("t-1")


def test_grouped_commits_keep_each_append_all_or_nothing(tmp_path: Path) -> None:
    """Concurrent appends share transactions, yet each succeeds or fails on its own."""
    with _open(tmp_path / "group.db") as store:
        taken = NewEvent("Taken", {}, event_id=chronik.uuid7())
        store.append("taken-1", [taken])
        outcomes: dict[str, str] = {}
        barrier = threading.Barrier(12)

        def work(i: int) -> None:
            barrier.wait()
            stream = f"g-{i}"
            try:
                if i % 3 == 0:  # a conflict: the stream does not exist yet
                    store.append(stream, [NewEvent("X", {"i": i})], 5)
                elif i % 3 == 1:  # an event id already stored elsewhere
                    store.append(stream, [NewEvent("X", {"i": i}), taken])
                else:
                    store.append(
                        stream, [NewEvent("X", {"i": i}), NewEvent("Y", {"i": i})], chronik.NO_STREAM
                    )
                outcomes[stream] = "ok"
            except chronik.ChronikError as err:
                outcomes[stream] = type(err).__name__

        for _ in range(5):
            outcomes.clear()
            threads = [threading.Thread(target=work, args=(i,)) for i in range(12)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            for i in range(12):
                expected = ["WrongExpectedVersionError", "DuplicateEventError", "ok"][i % 3]
                assert outcomes[f"g-{i}"] == expected
            store._conn().execute("DELETE FROM chronik_events WHERE stream_id LIKE 'g-%'")
        log = list(store.read_all())
        assert [e.stream_id for e in log][:1] == ["taken-1"]
        positions = [e.position for e in log]
        assert positions == sorted(set(positions))


def test_a_failing_inline_projection_fails_only_its_own_append(tmp_path: Path) -> None:
    from chronik.projections import Projection, add_inline_projection

    with _open(tmp_path / "inline.db") as store:

        def handle(event: chronik.RecordedEvent, tx: object) -> None:
            if event.data["bad"]:
                raise ValueError(f"cannot project {event.stream_id}")

        add_inline_projection(store, Projection("picky", {"X": handle}))
        outcomes: dict[int, str] = {}
        barrier = threading.Barrier(8)

        def work(i: int) -> None:
            barrier.wait()
            try:
                store.append(f"p-{i}", [NewEvent("X", {"bad": i % 4 == 0})])
                outcomes[i] = "ok"
            except chronik.ProjectionFailedError as err:
                assert isinstance(err.__cause__, ValueError)
                outcomes[i] = "refused"

        threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert outcomes == {i: "refused" if i % 4 == 0 else "ok" for i in range(8)}
        assert sorted(i.stream_id for i in store.list_streams()) == sorted(
            f"p-{i}" for i in range(8) if i % 4
        )


_CLOSE_WHILE_READING = """
import sys
import threading

import chronik
from chronik import NewEvent
from chronik.errors import StoreClosedError

folder, rounds = sys.argv[1], int(sys.argv[2])
for n in range(rounds):
    store = chronik.connect(f"sqlite:///{folder}/events-{n}.db")
    store.append("order-1", [NewEvent("OrderPlaced", {"n": i}) for i in range(50)])
    errors = []

    def read() -> None:
        while True:
            try:
                list(store.read_all())
            except StoreClosedError:
                return
            except Exception as error:  # anything but "closed" is the bug
                errors.append(error)
                return

    readers = [threading.Thread(target=read) for _ in range(2)]
    for reader in readers:
        reader.start()
    store.close()
    for reader in readers:
        reader.join()
    if errors:
        raise errors[0]
print("clean")
"""


def test_closing_a_store_while_other_threads_read_it(tmp_path: Path) -> None:
    # Closing a sqlite3 connection under another thread's running statement crashed
    # the interpreter (a segmentation fault, seen in the suite). In a process of its
    # own, so that a crash fails this test rather than ending the run.
    import subprocess
    import sys

    run = subprocess.run(
        [sys.executable, "-c", _CLOSE_WHILE_READING, str(tmp_path), "100"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (run.returncode, run.stdout.strip()) == (0, "clean"), run.stderr[-2000:]
