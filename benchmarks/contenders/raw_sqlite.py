"""Raw ``sqlite3``: the same writes and reads with no library, the floor to measure against.

One table of events with what a correct store needs and nothing more: the rowid as
the global position, the stream's category, and a unique index on (stream_id,
version), which is what makes an append with an expected version safe (a
concurrent writer of the same version fails on it); an index on (category,
position) answers a read of one category. Snapshots go in a second table, a read
model's balances (workload e) in a third, its checkpoint in a fourth. WAL,
``synchronous=FULL``.

Payloads are encoded and decoded with msgspec into typed Structs (``_raw.py``).
Loading fetches the stream's rows without decoding them (the "raw fetch of the same
rows" of workload 4); the decoded reads decode each payload.

Writes from the threads of one process commit together, as chronik's do (group
commit): each thread queues its rows, and whichever holds the process's write lock
commits everything queued in one transaction, one fsync for all; a conflict in a
group sends each append of it through again on its own, so each fails alone. A
lone one-event append is a single autocommit ``INSERT``. When other processes write
the same file (workload b) every write takes the file's write lock up front
(``BEGIN IMMEDIATE``), as chronik does, so a writer waits in SQLite's busy handler
instead of failing on a snapshot that another process's commit made stale.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final

from benchmarks.contenders import Options, category_name
from benchmarks.contenders._raw import (
    OPENED_JSON,
    amount_of,
    decode,
    deposited_json,
    snapshot_json,
    snapshot_version_balance,
)
from benchmarks.databases import Location
from benchmarks.domain import CATEGORY, amount_for

__all__ = ["RawAccount", "RawSQLite", "open_contender"]

SCHEMA: Final = (
    """CREATE TABLE IF NOT EXISTS events (
        position    INTEGER PRIMARY KEY,
        stream_id   TEXT    NOT NULL,
        category    TEXT    NOT NULL,
        version     INTEGER NOT NULL,
        type        TEXT    NOT NULL,
        data        TEXT    NOT NULL,
        recorded_at INTEGER NOT NULL,
        UNIQUE (stream_id, version)
    )""",
    "CREATE INDEX IF NOT EXISTS events_category ON events (category, position)",
    """CREATE TABLE IF NOT EXISTS snapshots (
        stream_id TEXT    PRIMARY KEY,
        version   INTEGER NOT NULL,
        data      TEXT    NOT NULL
    ) WITHOUT ROWID""",
)
INSERT: Final = (
    "INSERT INTO events (stream_id, category, version, type, data, recorded_at) VALUES (?, ?, ?, ?, ?, ?)"
)
SAVE_SNAPSHOT: Final = "INSERT OR REPLACE INTO snapshots (stream_id, version, data) VALUES (?, ?, ?)"
LOAD_SNAPSHOT: Final = "SELECT version, data FROM snapshots WHERE stream_id = ?"
READ_STREAM: Final = (
    "SELECT version, type, data FROM events WHERE stream_id = ? AND version > ? ORDER BY version"
)
READ_LOG: Final = (
    "SELECT position, stream_id, version, type, data FROM events WHERE position > ? ORDER BY position LIMIT ?"
)
READ_CATEGORY: Final = (
    "SELECT position, stream_id, version, type, data FROM events "
    "WHERE category = ? AND position > ? ORDER BY position LIMIT ?"
)
AUDIT: Final = "SELECT count(*), count(DISTINCT stream_id) FROM events"
# Workload e: a read model of balances and its checkpoint, written in one transaction a page.
READ_MODEL: Final = (
    "CREATE TABLE IF NOT EXISTS balances (id TEXT PRIMARY KEY, balance INTEGER NOT NULL) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS checkpoints (name TEXT PRIMARY KEY, position INTEGER NOT NULL)",
)
UPSERT_BALANCE: Final = (
    "INSERT INTO balances (id, balance) VALUES (?, ?) "
    "ON CONFLICT (id) DO UPDATE SET balance = balance + excluded.balance"
)
SAVE_CHECKPOINT: Final = "INSERT OR REPLACE INTO checkpoints (name, position) VALUES ('balances', ?)"
LOAD_CHECKPOINT: Final = "SELECT position FROM checkpoints WHERE name = 'balances'"
BALANCES: Final = "SELECT count(*), coalesce(sum(balance), 0) FROM balances"
# How often a follower looks for commits of other processes: chronik's own interval
# (its SQLite reader polls PRAGMA data_version every 20 ms while it waits).
POLL_INTERVAL: Final = 0.02

Row = tuple[str, str, int, str, str, int]


class RawAccount:
    __slots__ = ("balance", "pending", "stream_id", "version")

    def __init__(self, stream_id: str, version: int = 0, balance: int = 0) -> None:
        self.stream_id = stream_id
        self.version = version
        self.balance = balance
        self.pending: list[tuple[str, str]] = []


class _Queued:
    """One append waiting for the group commit, and what became of it."""

    __slots__ = ("done", "error", "rows", "snapshots")

    def __init__(self, rows: list[Row], snapshots: list[tuple[str, int, str]]) -> None:
        self.rows = rows
        self.snapshots = snapshots
        self.done = False
        self.error: BaseException | None = None


class RawSQLite:
    def __init__(self, location: Location, options: Options) -> None:
        self.log_lags_commits = False
        self.path = location.sqlite_path
        self.snapshots = options.snapshots or bool(options.snapshot_every)
        self.snapshot_every = options.snapshot_every
        self.begin = "BEGIN IMMEDIATE" if options.processes else "BEGIN"
        self.single_autocommit = not options.processes
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._lock = threading.Lock()  # the process's write lock
        self._queue: list[_Queued] = []
        self._queue_lock = threading.Lock()
        self._committed = threading.Condition()  # followers in this process wait on it
        conn = self._conn()
        conn.execute("PRAGMA journal_mode = WAL")
        with self._lock:
            conn.execute("BEGIN IMMEDIATE")
            for statement in SCHEMA:
                conn.execute(statement)
            conn.execute("COMMIT")

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
        return conn

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
        conn.execute("PRAGMA synchronous = FULL")
        with self._lock:
            self._conns.append(conn)
        return conn

    # -- writing ----------------------------------------------------------------------

    def create(self) -> RawAccount:
        account = RawAccount(f"{CATEGORY}-{uuid.uuid4()}")
        account.pending.append(("Opened", OPENED_JSON))
        return account

    def deposit(self, account: RawAccount, amount: int) -> None:
        account.balance += amount
        account.pending.append(("Deposited", deposited_json(amount)))

    def _rows(self, accounts: Sequence[RawAccount]) -> tuple[list[Row], list[tuple[str, int, str]]]:
        now = time.time_ns() // 1000
        rows = [
            (a.stream_id, CATEGORY, a.version + i, kind, data, now)
            for a in accounts
            for i, (kind, data) in enumerate(a.pending, 1)
        ]
        snapshots = []
        every = self.snapshot_every
        if every:
            for a in accounts:
                after = a.version + len(a.pending)
                if after // every > a.version // every:
                    snapshots.append((a.stream_id, after, snapshot_json(a.balance)))
        return rows, snapshots

    def save(self, accounts: Sequence[RawAccount]) -> None:
        rows, snapshots = self._rows(accounts)
        self._commit(_Queued(rows, snapshots))
        for a in accounts:
            a.version += len(a.pending)
            a.pending = []

    def _commit(self, queued: _Queued) -> None:
        conn = self._conn()
        with self._queue_lock:
            self._queue.append(queued)
        with self._lock:
            if not queued.done:
                with self._queue_lock:
                    batch, self._queue = self._queue, []
                try:
                    self._write(conn, batch)
                finally:
                    for each in batch:
                        each.done = True
        with self._committed:
            self._committed.notify_all()
        if queued.error is not None:
            raise queued.error

    def _write(self, conn: sqlite3.Connection, batch: list[_Queued]) -> None:
        """Commit ``batch`` in one transaction; on a conflict, each append alone."""
        if len(batch) == 1:
            self._write_alone(conn, batch[0])
            return
        try:
            conn.execute(self.begin)
            try:
                for each in batch:
                    conn.executemany(INSERT, each.rows)
                    if each.snapshots:
                        conn.executemany(SAVE_SNAPSHOT, each.snapshots)
                conn.execute("COMMIT")
            except BaseException:
                conn.rollback()
                raise
        except sqlite3.IntegrityError:
            for each in batch:
                self._write_alone(conn, each)

    def _write_alone(self, conn: sqlite3.Connection, each: _Queued) -> None:
        try:
            if len(each.rows) == 1 and not each.snapshots and self.single_autocommit:
                conn.execute(INSERT, each.rows[0])  # autocommit: the insert is its own transaction
                return
            conn.execute(self.begin)
            try:
                conn.executemany(INSERT, each.rows)
                if each.snapshots:
                    conn.executemany(SAVE_SNAPSHOT, each.snapshots)
                conn.execute("COMMIT")
            except BaseException:
                conn.rollback()
                raise
        except Exception as err:
            each.error = err

    def account_id(self, account: RawAccount) -> str:
        return account.stream_id

    def open_account(self) -> str:
        account = self.create()
        self.save([account])
        return account.stream_id

    def _fold(self, account_id: str) -> RawAccount:
        """Load as an application must to decide: the snapshot and the later events, decoded."""
        conn = self._conn()
        version, balance = 0, 0
        if self.snapshots:
            row = conn.execute(LOAD_SNAPSHOT, (account_id,)).fetchone()
            if row is not None:
                version, balance = row[0], snapshot_version_balance(row[1])
        for row_version, type_, data in conn.execute(READ_STREAM, (account_id, version)).fetchall():
            balance += amount_of(type_, data)
            version = row_version
        return RawAccount(account_id, version, balance)

    def deposit_command(self, account_id: str, amounts: Sequence[int]) -> None:
        account = self._fold(account_id)
        for amount in amounts:
            self.deposit(account, amount)
        self.save([account])

    def hot_command(self, account_id: str, amount: int) -> int:
        attempts = 0
        while True:
            attempts += 1
            try:
                self.deposit_command(account_id, [amount])
            except sqlite3.IntegrityError:
                continue  # another writer took the version: load again, decide again
            return attempts

    # -- reading ----------------------------------------------------------------------

    def load(self, account_id: str) -> int:
        conn = self._conn()
        version = 0
        if self.snapshots:
            row = conn.execute(LOAD_SNAPSHOT, (account_id,)).fetchone()
            if row is not None:
                version = row[0]
        rows = conn.execute(READ_STREAM, (account_id, version)).fetchall()
        return int(rows[-1][0]) if rows else version

    def take_snapshot(self, account_id: str) -> None:
        account = self._fold(account_id)
        with self._lock:
            self._conn().execute(SAVE_SNAPSHOT, (account_id, account.version, snapshot_json(account.balance)))

    def read_log(self, *, decode: bool, page_size: int) -> int:
        return self._read(READ_LOG, (), decode=decode, page_size=page_size)

    def read_category(self, category: str, *, page_size: int) -> int:
        return self._read(READ_CATEGORY, (category,), decode=True, page_size=page_size)

    def _read(self, statement: str, head: tuple[str, ...], *, decode: bool, page_size: int) -> int:
        conn = self._conn()
        count = 0
        position = 0
        while True:
            rows = conn.execute(statement, (*head, position, page_size)).fetchall()
            if not rows:
                return count
            if decode:
                for row in rows:
                    _decode(row[3], row[4])
            count += len(rows)
            position = rows[-1][0]

    def follow(self, on_deposit: Callable[[int], None]) -> Callable[[], None]:
        reader = self._connect()
        stop = threading.Event()
        position = reader.execute("SELECT coalesce(max(position), 0) FROM events").fetchone()[0]

        def run() -> None:
            nonlocal position
            data_version = reader.execute("PRAGMA data_version").fetchone()[0]
            while not stop.is_set():
                rows = reader.execute(READ_LOG, (position, 1000)).fetchall()
                for row in rows:
                    event = decode(row[3], row[4])
                    amount = getattr(event, "amount", None)
                    if amount is not None:
                        on_deposit(amount)
                if rows:
                    position = rows[-1][0]
                    continue
                # Caught up: a commit of this process wakes us at once; another
                # process's shows in PRAGMA data_version, looked at every interval.
                while not stop.is_set():
                    with self._committed:
                        self._committed.wait(POLL_INTERVAL)
                    seen = reader.execute("PRAGMA data_version").fetchone()[0]
                    if seen != data_version or reader.execute(READ_LOG, (position, 1)).fetchone():
                        data_version = seen
                        break

        thread = threading.Thread(target=run, name="raw-follower", daemon=True)
        thread.start()

        def close() -> None:
            stop.set()
            with self._committed:
                self._committed.notify_all()
            thread.join()

        return close

    # -- workload e: a projection -----------------------------------------------------

    def project(self) -> int:
        conn = self._connect()
        with self._lock:
            conn.execute("BEGIN IMMEDIATE")
            for statement in READ_MODEL:
                conn.execute(statement)
            conn.execute("COMMIT")
        row = conn.execute(LOAD_CHECKPOINT).fetchone()
        position = 0 if row is None else row[0]
        handled = 0
        while True:
            rows = conn.execute(READ_LOG, (position, 500)).fetchall()
            if not rows:
                return handled
            balances = [(row[1], amount_of(row[3], row[4])) for row in rows]
            position = rows[-1][0]
            with self._lock:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    conn.executemany(UPSERT_BALANCE, balances)
                    conn.execute(SAVE_CHECKPOINT, (position,))
                    conn.execute("COMMIT")
                except BaseException:
                    conn.rollback()
                    raise
            handled += len(rows)

    def balances(self) -> tuple[int, int]:
        accounts, total = self._conn().execute(BALANCES).fetchone()
        return int(accounts), int(total)

    # -- workload i: asyncio ----------------------------------------------------------

    def run_async(self, job: str, count: int, tasks: int, account_ids: Sequence[str]) -> float:
        # sqlite3 has no asyncio API: its calls run on a thread of their own, as
        # chronik's asyncio face runs its SQLite store's writes on one worker thread.
        async def main() -> float:
            loop = asyncio.get_running_loop()
            writer = ThreadPoolExecutor(1, thread_name_prefix="raw-sqlite-writer")
            queue = list(range(count))

            def one(i: int) -> None:
                if job == "start":
                    self.open_account()
                else:
                    self.deposit_command(account_ids[i % len(account_ids)], [amount_for(i)])

            async def task() -> None:
                while queue:
                    i = queue.pop()
                    await loop.run_in_executor(writer, one, i)

            started = time.perf_counter()
            await asyncio.gather(*(task() for _ in range(tasks)))
            elapsed = time.perf_counter() - started
            writer.shutdown()
            return elapsed

        return asyncio.run(main())

    # -- bulk set-up and checks -------------------------------------------------------

    def bulk_build(self, streams: int, events_per_stream: int, chunk: int, categories: int = 1) -> list[str]:
        # executemany in one transaction per chunk of rows.
        conn = self._conn()
        ids: list[str] = []
        rows: list[Row] = []
        now = time.time_ns() // 1000

        def flush() -> None:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(INSERT, rows)
            conn.execute("COMMIT")
            rows.clear()

        deposits = [deposited_json(amount_for(i)) for i in range(1, events_per_stream)]
        for n in range(streams):
            category = category_name(n % categories)
            sid = f"{category}-{uuid.uuid4()}"
            ids.append(sid)
            rows.append((sid, category, 1, "Opened", OPENED_JSON, now))
            for i, data in enumerate(deposits, 2):
                rows.append((sid, category, i, "Deposited", data, now))
            if len(rows) >= chunk:
                flush()
        if rows:
            flush()
        return ids

    def count_events(self) -> int:
        row = self._conn().execute("SELECT count(*) FROM events").fetchone()
        return int(row[0])

    def audit_log(self) -> tuple[int, int]:
        events, streams = self._conn().execute(AUDIT).fetchone()
        return int(events), int(streams)

    def info(self) -> dict[str, Any]:
        conn = self._conn()
        synchronous = conn.execute("PRAGMA synchronous").fetchone()[0]
        return {
            "library": f"sqlite3 (SQLite {sqlite3.sqlite_version})",
            "api": "sqlite3: execute / executemany, group commit across threads; msgspec",
            "synchronous": {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}[synchronous],
            "journal_mode": conn.execute("PRAGMA journal_mode").fetchone()[0],
        }

    def close(self) -> None:
        with self._lock:
            for conn in self._conns:
                conn.close()
            self._conns.clear()


_decode: Final = decode


def open_contender(location: Location, options: Options) -> RawSQLite:
    return RawSQLite(location, options)
