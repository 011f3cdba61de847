"""The SQLite store and its transactions meet the core Protocols (at run time and under mypy)."""

from collections.abc import Sequence
from pathlib import Path

import chronik
from chronik import NewEvent
from chronik.events import RecordedEvent, Snapshot
from chronik.store import HookTransaction, StoreTransaction, Transactional
from chronik.stores.sqlite import SQLiteEventStore, SQLiteTransaction


def test_the_store_is_a_chronik_store(tmp_path: Path) -> None:
    with SQLiteEventStore(tmp_path / "events.db") as store:
        assert isinstance(store, chronik.Store)
        transactional: Transactional = store  # mypy checks transaction()'s type, no cast
        with transactional.transaction() as tx:
            assert isinstance(tx, StoreTransaction)


def test_a_transaction_offers_what_portable_read_models_and_hooks_use(tmp_path: Path) -> None:
    with SQLiteEventStore(tmp_path / "events.db") as store:
        with store.transaction() as tx:
            as_hook: HookTransaction = tx
            as_store: StoreTransaction = tx
            assert tx.paramstyle == "qmark"
            tx.execute("CREATE TABLE totals (id TEXT PRIMARY KEY, n INTEGER)")
            tx.executemany("INSERT INTO totals VALUES (?, ?)", [("a", 1), ("b", 2)])
            added = [NewEvent("Added", {})]
            results = tx.append_many([chronik.StreamWrite("s-1", added), chronik.StreamWrite("s-2", added)])
            assert [r.version for r in results] == [1, 1]
            as_store.save_snapshot(Snapshot("s-1", 1, "Total", 1, b"{}"))
            snapshot = tx.load_snapshot("s-1")
            assert snapshot is not None and snapshot.version == 1
            assert [e.stream_id for e in as_hook.read_page(None, 10, None, None).events] == ["s-1", "s-2"]
            assert results[0].checkpoint is not None
            as_hook.save_checkpoint("cp", results[0].checkpoint)
            assert as_hook.load_checkpoint("cp") == results[0].checkpoint
            as_store.delete_checkpoint("cp")
            assert tx.load_checkpoint("cp") is None
        assert store.load_snapshot("s-1") is not None
        assert store._conn().execute("SELECT sum(n) FROM totals").fetchone()[0] == 3


class _Counter:
    """An append hook typed against the core's HookTransaction."""

    name = "counter"

    def __init__(self) -> None:
        self.seen: list[tuple[bool, int]] = []

    def installed(self, tx: HookTransaction) -> None:
        self.seen.append((isinstance(tx, SQLiteTransaction), 0))

    def appended(self, tx: HookTransaction, events: Sequence[RecordedEvent]) -> None:
        self.seen.append((isinstance(tx, SQLiteTransaction), len(events)))


def test_append_hooks_get_the_sqlite_transaction(tmp_path: Path) -> None:
    with SQLiteEventStore(tmp_path / "events.db") as store:
        hook = _Counter()
        store.add_append_hook(hook)
        store.append("s-1", [NewEvent("Added", {}), NewEvent("Added", {})])
        assert hook.seen == [(True, 0), (True, 2)]
