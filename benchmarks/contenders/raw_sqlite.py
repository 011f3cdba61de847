"""Raw ``sqlite3``: the same writes and reads with no library, the floor to measure against.

One table of events with what a correct store needs and nothing more: the rowid as
the global position, and a unique index on (stream_id, version), which is what
makes an append with an expected version safe (a concurrent writer of the same
version fails on it). Snapshots go in a second table. WAL, ``synchronous=FULL``.

Payloads are encoded with the standard library's ``json``. Loading fetches the
stream's rows without decoding them (the "raw fetch of the same rows" of workload
4); the decoded read of the global log ``json.loads`` each payload into a dict.
Threads each use their own connection and take one process-wide lock around each
write transaction, as both libraries do, rather than spin in SQLite's busy handler.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Sequence
from typing import Any, Final

from benchmarks.contenders import Options
from benchmarks.databases import Location
from benchmarks.domain import CATEGORY, MEMO, OWNER, amount_for

__all__ = ["RawAccount", "RawSQLite", "open_contender"]

SCHEMA: Final = (
    """CREATE TABLE IF NOT EXISTS events (
        position    INTEGER PRIMARY KEY,
        stream_id   TEXT    NOT NULL,
        version     INTEGER NOT NULL,
        type        TEXT    NOT NULL,
        data        TEXT    NOT NULL,
        recorded_at INTEGER NOT NULL,
        UNIQUE (stream_id, version)
    )""",
    """CREATE TABLE IF NOT EXISTS snapshots (
        stream_id TEXT    PRIMARY KEY,
        version   INTEGER NOT NULL,
        data      TEXT    NOT NULL
    ) WITHOUT ROWID""",
)
INSERT: Final = "INSERT INTO events (stream_id, version, type, data, recorded_at) VALUES (?, ?, ?, ?, ?)"
SAVE_SNAPSHOT: Final = "INSERT OR REPLACE INTO snapshots (stream_id, version, data) VALUES (?, ?, ?)"
LOAD_SNAPSHOT: Final = "SELECT version, data FROM snapshots WHERE stream_id = ?"
READ_STREAM: Final = (
    "SELECT version, type, data FROM events WHERE stream_id = ? AND version > ? ORDER BY version"
)
READ_LOG: Final = (
    "SELECT position, stream_id, version, type, data FROM events WHERE position > ? ORDER BY position LIMIT ?"
)


class RawAccount:
    __slots__ = ("balance", "pending", "stream_id", "version")

    def __init__(self, stream_id: str, version: int = 0, balance: int = 0) -> None:
        self.stream_id = stream_id
        self.version = version
        self.balance = balance
        self.pending: list[tuple[str, str]] = []


class RawSQLite:
    def __init__(self, location: Location, options: Options) -> None:
        self.log_lags_commits = False
        self.path = location.sqlite_path
        self.snapshots = options.snapshots or bool(options.snapshot_every)
        self.snapshot_every = options.snapshot_every
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        conn = self._conn()
        conn.execute("PRAGMA journal_mode = WAL")
        for statement in SCHEMA:
            conn.execute(statement)

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
            conn.execute("PRAGMA synchronous = FULL")
            self._local.conn = conn
            with self._lock:
                self._conns.append(conn)
        return conn

    def create(self) -> RawAccount:
        account = RawAccount(f"{CATEGORY}-{uuid.uuid4()}")
        account.pending.append(("Opened", json.dumps({"owner": OWNER})))
        return account

    def deposit(self, account: RawAccount, amount: int) -> None:
        account.balance += amount
        account.pending.append(("Deposited", json.dumps({"amount": amount, "memo": MEMO})))

    def save(self, accounts: Sequence[RawAccount]) -> None:
        now = time.time_ns() // 1000
        rows = [
            (a.stream_id, a.version + i, kind, data, now)
            for a in accounts
            for i, (kind, data) in enumerate(a.pending, 1)
        ]
        snapshots = []
        every = self.snapshot_every
        if every:
            for a in accounts:
                after = a.version + len(a.pending)
                if after // every > a.version // every:
                    snapshots.append((a.stream_id, after, json.dumps({"owner": OWNER, "balance": a.balance})))
        conn = self._conn()
        with self._lock:
            if len(rows) == 1 and not snapshots:
                conn.execute(INSERT, rows[0])  # autocommit: the insert is its own transaction
            else:
                conn.execute("BEGIN")
                try:
                    conn.executemany(INSERT, rows)
                    if snapshots:
                        conn.executemany(SAVE_SNAPSHOT, snapshots)
                    conn.execute("COMMIT")
                except BaseException:
                    conn.rollback()
                    raise
        for a in accounts:
            a.version += len(a.pending)
            a.pending = []

    def account_id(self, account: RawAccount) -> str:
        return account.stream_id

    def open_account(self) -> str:
        account = self.create()
        self.save([account])
        return account.stream_id

    def deposit_command(self, account_id: str, amounts: Sequence[int]) -> None:
        # Load as an application must to decide: the snapshot and the later events, decoded.
        conn = self._conn()
        version, balance = 0, 0
        if self.snapshots:
            row = conn.execute(LOAD_SNAPSHOT, (account_id,)).fetchone()
            if row is not None:
                version, balance = row[0], json.loads(row[1])["balance"]
        for row_version, _, data in conn.execute(READ_STREAM, (account_id, version)).fetchall():
            balance += json.loads(data).get("amount", 0)
            version = row_version
        account = RawAccount(account_id, version, balance)
        for amount in amounts:
            self.deposit(account, amount)
        self.save([account])

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
        conn = self._conn()
        rows = conn.execute(READ_STREAM, (account_id, 0)).fetchall()
        balance = sum(json.loads(data).get("amount", 0) for _, _, data in rows)
        with self._lock:
            conn.execute(
                SAVE_SNAPSHOT, (account_id, rows[-1][0], json.dumps({"owner": OWNER, "balance": balance}))
            )

    def read_log(self, *, decode: bool, page_size: int) -> int:
        conn = self._conn()
        loads = json.loads
        count = 0
        position = 0
        while True:
            rows = conn.execute(READ_LOG, (position, page_size)).fetchall()
            if not rows:
                return count
            if decode:
                for row in rows:
                    loads(row[4])
            count += len(rows)
            position = rows[-1][0]

    def bulk_build(self, streams: int, events_per_stream: int, chunk: int) -> list[str]:
        # executemany in one transaction per chunk of rows.
        conn = self._conn()
        ids: list[str] = []
        rows: list[tuple[str, int, str, str, int]] = []
        now = time.time_ns() // 1000
        opened = json.dumps({"owner": OWNER})

        def flush() -> None:
            conn.execute("BEGIN")
            conn.executemany(INSERT, rows)
            conn.execute("COMMIT")
            rows.clear()

        for _ in range(streams):
            sid = f"{CATEGORY}-{uuid.uuid4()}"
            ids.append(sid)
            rows.append((sid, 1, "Opened", opened, now))
            for i in range(1, events_per_stream):
                data = json.dumps({"amount": amount_for(i), "memo": MEMO})
                rows.append((sid, i + 1, "Deposited", data, now))
            if len(rows) >= chunk:
                flush()
        if rows:
            flush()
        return ids

    def count_events(self) -> int:
        row = self._conn().execute("SELECT count(*) FROM events").fetchone()
        return int(row[0])

    def info(self) -> dict[str, Any]:
        conn = self._conn()
        synchronous = conn.execute("PRAGMA synchronous").fetchone()[0]
        return {
            "library": f"sqlite3 (SQLite {sqlite3.sqlite_version})",
            "api": "sqlite3: execute / executemany",
            "synchronous": {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}[synchronous],
            "journal_mode": conn.execute("PRAGMA journal_mode").fetchone()[0],
        }

    def close(self) -> None:
        with self._lock:
            for conn in self._conns:
                conn.close()
            self._conns.clear()


def open_contender(location: Location, options: Options) -> RawSQLite:
    return RawSQLite(location, options)
