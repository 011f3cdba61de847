"""Raw psycopg 3: the same writes and reads with no library, the floor to measure against.

One table of events in the job's schema with what a store needs: a bigint identity
as the position, a unique index on (stream_id, version) for safe appends, payloads
as ``jsonb``; snapshots in a second table. A single-event save is one autocommit
``INSERT`` (one round trip, its own transaction); several events go through
``executemany`` (psycopg pipelines it) inside one transaction; the bulk build uses
``COPY``. Loading fetches the stream's rows with ``jsonb`` read as text, not
decoded; the decoded log read runs ``json.loads`` on each payload.

This floor does not give the global log chronik's ordering guarantee (a reader can
miss an event whose position was taken by a transaction that commits later); it
measures what the driver can do, not a correct subscription.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Sequence
from importlib.metadata import version as dist_version
from typing import Any, Final

import psycopg
from psycopg.types.string import TextLoader

from benchmarks.contenders import Options
from benchmarks.databases import Location
from benchmarks.domain import CATEGORY, MEMO, OWNER, amount_for

__all__ = ["RawPostgres", "open_contender"]

SCHEMA: Final = (
    """CREATE TABLE IF NOT EXISTS events (
        position    bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        stream_id   text        NOT NULL,
        version     bigint      NOT NULL,
        type        text        NOT NULL,
        data        jsonb       NOT NULL,
        recorded_at timestamptz NOT NULL DEFAULT now(),
        UNIQUE (stream_id, version)
    )""",
    """CREATE TABLE IF NOT EXISTS snapshots (
        stream_id text   PRIMARY KEY,
        version   bigint NOT NULL,
        data      jsonb  NOT NULL
    )""",
)
INSERT: Final = "INSERT INTO events (stream_id, version, type, data) VALUES (%s, %s, %s, %s)"
SAVE_SNAPSHOT: Final = """INSERT INTO snapshots (stream_id, version, data) VALUES (%s, %s, %s)
ON CONFLICT (stream_id) DO UPDATE SET version = excluded.version, data = excluded.data"""
LOAD_SNAPSHOT: Final = "SELECT version, data FROM snapshots WHERE stream_id = %s"
READ_STREAM: Final = (
    "SELECT version, type, data FROM events WHERE stream_id = %s AND version > %s ORDER BY version"
)
READ_LOG: Final = (
    "SELECT position, stream_id, version, type, data FROM events "
    "WHERE position > %s ORDER BY position LIMIT %s"
)
COPY: Final = "COPY events (stream_id, version, type, data) FROM STDIN"


class RawAccount:
    __slots__ = ("balance", "pending", "stream_id", "version")

    def __init__(self, stream_id: str, version: int = 0, balance: int = 0) -> None:
        self.stream_id = stream_id
        self.version = version
        self.balance = balance
        self.pending: list[tuple[str, str]] = []


class RawPostgres:
    def __init__(self, location: Location, options: Options) -> None:
        self.log_lags_commits = False
        self.url = location.postgres_url
        self.schema = location.schema
        self.snapshots = options.snapshots or bool(options.snapshot_every)
        self.snapshot_every = options.snapshot_every
        self._local = threading.local()
        self._conns: list[psycopg.Connection[Any]] = []
        self._lock = threading.Lock()
        conn = self._conn()
        for statement in SCHEMA:
            conn.execute(statement)

    def _conn(self) -> psycopg.Connection[Any]:
        conn: psycopg.Connection[Any] | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = psycopg.connect(self.url, autocommit=True, options=f"-c search_path={self.schema}")
            # Payloads come back as the JSON text; decoding is a separate, measured step.
            conn.adapters.register_loader("jsonb", TextLoader)
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
        rows = [
            (a.stream_id, a.version + i, kind, data)
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
        if len(rows) == 1 and not snapshots:
            conn.execute(INSERT, rows[0])  # autocommit: one round trip, its own transaction
        else:
            with conn.transaction(), conn.cursor() as cursor:
                cursor.executemany(INSERT, rows)
                if snapshots:
                    cursor.executemany(SAVE_SNAPSHOT, snapshots)
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
        # COPY, one transaction per chunk of rows.
        conn = self._conn()
        ids: list[str] = []
        opened = json.dumps({"owner": OWNER})
        per_copy = max(1, chunk // events_per_stream)
        for start in range(0, streams, per_copy):
            with conn.transaction(), conn.cursor() as cursor, cursor.copy(COPY) as copy:
                for _ in range(min(per_copy, streams - start)):
                    sid = f"{CATEGORY}-{uuid.uuid4()}"
                    ids.append(sid)
                    copy.write_row((sid, 1, "Opened", opened))
                    for i in range(1, events_per_stream):
                        data = json.dumps({"amount": amount_for(i), "memo": MEMO})
                        copy.write_row((sid, i + 1, "Deposited", data))
        return ids

    def count_events(self) -> int:
        row = self._conn().execute("SELECT count(*) FROM events").fetchone()
        assert row is not None
        return int(row[0])

    def info(self) -> dict[str, Any]:
        conn = self._conn()
        row = conn.execute("SHOW synchronous_commit").fetchone()
        assert row is not None
        return {
            "library": f"psycopg {dist_version('psycopg')}",
            "api": "psycopg 3: execute / executemany (pipelined) / COPY",
            "synchronous_commit": row[0],
        }

    def close(self) -> None:
        with self._lock:
            for conn in self._conns:
                conn.close()
            self._conns.clear()


def open_contender(location: Location, options: Options) -> RawPostgres:
    return RawPostgres(location, options)
