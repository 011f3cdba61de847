"""SQLite specifics of deleting and scavenging: the space goes back to the file system,
deleted events leave no bytes behind, old files are converted, positions stay unique."""

import sqlite3
from pathlib import Path

import chronik
from chronik import NewEvent, StreamMetadata


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())


def _raw(path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in (path, Path(f"{path}-wal")) if p.exists())


def _fill(store: chronik.Store, stream: str, n: int, text: str) -> None:
    for start in range(0, n, 100):
        store.append(
            stream, [NewEvent("Noted", {"text": f"{text} {i}" * 20}) for i in range(start, start + 100)]
        )


def test_a_scavenge_gives_the_space_back_to_the_file_system(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    with chronik.connect(f"sqlite:///{path}") as store:
        _fill(store, "big-1", 2000, "filler")
        store.append("small-1", [NewEvent("Noted", {"text": "kept"})])
        store.delete_stream("big-1")
        store.set_stream_metadata("small-1", StreamMetadata(max_count=1))
        before = _size(path)
        result = store.scavenge()
        assert (result.events, result.streams) == (2000, 1)
        after = _size(path)
        assert after < before / 4, (before, after)
        assert [e.stream_id for e in store.read_all()] == ["small-1", "big-1"]  # B, then the deletion event


def test_a_hard_delete_and_a_scavenge_leave_no_bytes_of_the_events(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    with chronik.connect(f"sqlite:///{path}") as store:
        _fill(store, "person-1", 300, "ada-lovelace-secret")
        _fill(store, "other-1", 300, "unrelated")
        store.delete_stream("person-1", hard=True)
        store.set_stream_metadata("other-1", StreamMetadata(max_count=1))
        store.scavenge()
        raw = _raw(path)
        assert b"ada-lovelace-secret" not in raw
        assert b"unrelated 299" in raw  # the last event of other-1 stays


def test_a_file_made_before_incremental_vacuum_is_converted_by_its_first_scavenge(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    with chronik.connect(f"sqlite:///{path}") as store:
        _fill(store, "big-1", 1000, "filler")
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA auto_vacuum = NONE")
    conn.execute("VACUUM")
    assert conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 0
    conn.close()
    with chronik.connect(f"sqlite:///{path}") as store:
        store.delete_stream("big-1", hard=True)
        before = _size(path)
        assert store.scavenge().events == 0  # a hard delete removed them already
        store.append("other-1", [NewEvent("Noted", {"n": 1}), NewEvent("Noted", {"n": 2})])
        store.set_stream_metadata("other-1", StreamMetadata(max_count=1))
        assert store.scavenge().events == 1
        assert _size(path) < before / 4
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2  # incremental from now on
    conn.close()


def test_a_new_file_vacuums_incrementally(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    chronik.connect(f"sqlite:///{path}").close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2
    conn.close()


def test_positions_are_never_given_out_twice(tmp_path: Path) -> None:
    # SQLite gives a new row the highest rowid + 1: were the log's last event removed,
    # its position would be given out again, and a subscriber that had read it would
    # skip the next event. The last event of the log is its stream's last, never removed.
    path = tmp_path / "events.db"
    with chronik.connect(f"sqlite:///{path}") as store:
        store.append("a-1", [NewEvent("Noted", {"n": i}) for i in range(3)])
        store.set_stream_metadata("a-1", StreamMetadata(truncate_before=99))
        head = store.head()
        assert store.scavenge().events == 2
        assert store.head() == head
        result = store.append("b-1", [NewEvent("Noted", {})])
        assert head is not None and result.position > head.parts[0]


def test_a_store_without_the_lifecycle_table_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    with chronik.connect(f"sqlite:///{path}") as store:
        store.append("a-1", [NewEvent("Noted", {})])
    conn = sqlite3.connect(path)
    conn.execute("DROP TABLE chronik_streams")
    conn.execute("DELETE FROM chronik_migrations WHERE name = '0006_lifecycle'")
    conn.commit()
    conn.close()
    with chronik.connect(f"sqlite:///{path}") as store:
        store.delete_stream("a-1")
        assert store.stream_info("a-1").deleted == "soft"
