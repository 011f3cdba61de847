"""Raw psycopg 3: the same writes and reads with no library, the floor to measure against.

One table of events in the job's schema with what a store needs: a bigint identity
as the position, the stream's category, a unique index on (stream_id, version) for
safe appends, an index on (category, position) for reads of one category, payloads
as ``json`` (chronik's column type); snapshots in a second table, a read model's
balances and its checkpoint (workload e) in two more.

Every save is one statement in autocommit, so one round trip and its own
transaction: a single event is an ``INSERT ... VALUES``, several go as parallel
arrays through ``unnest`` in binary (``%b``), and a save that also snapshots writes
the snapshot in the same statement (a data-modifying ``WITH``). The bulk build uses
``COPY``. Payloads are encoded and decoded with msgspec into typed Structs
(``_raw.py``); loading fetches the stream's rows with the JSON as text, not decoded.

This floor does not give the global log chronik's ordering guarantee (a reader can
miss an event whose position was taken by a transaction that commits later); it
measures what the driver can do, not a correct subscription. For workload d its
saves also notify a channel in the same statement, and a follower LISTENs on it.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from importlib.metadata import version as dist_version
from typing import Any, Final

import psycopg
from psycopg.types.string import TextLoader

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

__all__ = ["RawPostgres", "open_contender"]

SCHEMA: Final = (
    """CREATE TABLE IF NOT EXISTS events (
        position    bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        stream_id   text        NOT NULL,
        category    text        NOT NULL,
        version     bigint      NOT NULL,
        type        text        NOT NULL,
        data        json        NOT NULL,
        recorded_at timestamptz NOT NULL DEFAULT now(),
        UNIQUE (stream_id, version)
    )""",
    "CREATE INDEX IF NOT EXISTS events_category ON events (category, position)",
    """CREATE TABLE IF NOT EXISTS snapshots (
        stream_id text   PRIMARY KEY,
        version   bigint NOT NULL,
        data      json   NOT NULL
    )""",
)
INSERT: Final = "INSERT INTO events (stream_id, category, version, type, data) VALUES (%s, %s, %s, %s, %s)"
_MANY: Final = """INSERT INTO events (stream_id, category, version, type, data)
SELECT s, c, v, t, d::json
FROM unnest(%(streams)b::text[], %(categories)b::text[], %(versions)b::bigint[], %(types)b::text[],
    %(data)b::text[]) AS e (s, c, v, t, d)"""
INSERT_MANY: Final = _MANY
INSERT_MANY_SNAPSHOTS: Final = f"""WITH e AS ({_MANY})
INSERT INTO snapshots (stream_id, version, data)
SELECT s, v, d::json FROM unnest(%(s_streams)b::text[], %(s_versions)b::bigint[], %(s_data)b::text[])
    AS s (s, v, d)
ON CONFLICT (stream_id) DO UPDATE SET version = excluded.version, data = excluded.data"""
CHANNEL: Final = "raw_events"
INSERT_NOTIFY: Final = f"""WITH e AS (
    INSERT INTO events (stream_id, category, version, type, data) VALUES (%s, %s, %s, %s, %s)
) SELECT pg_notify('{CHANNEL}', '')"""
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
READ_CATEGORY: Final = (
    "SELECT position, stream_id, version, type, data FROM events "
    "WHERE category = %s AND position > %s ORDER BY position LIMIT %s"
)
HEAD: Final = "SELECT coalesce(max(position), 0) FROM events"
AUDIT: Final = "SELECT count(*), count(DISTINCT stream_id) FROM events"
COPY: Final = "COPY events (stream_id, category, version, type, data) FROM STDIN"
READ_MODEL: Final = (
    "CREATE TABLE IF NOT EXISTS balances (id text PRIMARY KEY, balance bigint NOT NULL)",
    "CREATE TABLE IF NOT EXISTS checkpoints (name text PRIMARY KEY, position bigint NOT NULL)",
)
UPSERT_BALANCES: Final = """INSERT INTO balances (id, balance)
SELECT id, sum(amount) FROM unnest(%(ids)b::text[], %(amounts)b::bigint[]) AS b (id, amount) GROUP BY id
ON CONFLICT (id) DO UPDATE SET balance = balances.balance + excluded.balance"""
SAVE_CHECKPOINT: Final = """INSERT INTO checkpoints (name, position) VALUES ('balances', %s)
ON CONFLICT (name) DO UPDATE SET position = excluded.position"""
LOAD_CHECKPOINT: Final = "SELECT position FROM checkpoints WHERE name = 'balances'"
BALANCES: Final = "SELECT count(*), coalesce(sum(balance), 0) FROM balances"


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
        self.insert_one = INSERT_NOTIFY if options.notify else INSERT
        self._local = threading.local()
        self._conns: list[psycopg.Connection[Any]] = []
        self._lock = threading.Lock()
        conn = self._conn()
        for statement in SCHEMA:
            conn.execute(statement)

    def _conn(self) -> psycopg.Connection[Any]:
        conn: psycopg.Connection[Any] | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
        return conn

    def _connect(self) -> psycopg.Connection[Any]:
        conn = psycopg.connect(self.url, autocommit=True, options=f"-c search_path={self.schema}")
        # Payloads come back as the JSON text; decoding is a separate, measured step.
        conn.adapters.register_loader("json", TextLoader)
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

    def save(self, accounts: Sequence[RawAccount]) -> None:
        conn = self._conn()
        every = self.snapshot_every
        snapshots = []
        if every:
            for a in accounts:
                after = a.version + len(a.pending)
                if after // every > a.version // every:
                    snapshots.append((a.stream_id, after, snapshot_json(a.balance)))
        if len(accounts) == 1 and len(accounts[0].pending) == 1 and not snapshots:
            a = accounts[0]
            kind, data = a.pending[0]
            # autocommit: one round trip, its own transaction
            conn.execute(self.insert_one, (a.stream_id, CATEGORY, a.version + 1, kind, data))
        else:
            params: dict[str, list[Any]] = {
                "streams": [],
                "categories": [],
                "versions": [],
                "types": [],
                "data": [],
            }
            for a in accounts:
                for i, (kind, data) in enumerate(a.pending, 1):
                    params["streams"].append(a.stream_id)
                    params["versions"].append(a.version + i)
                    params["types"].append(kind)
                    params["data"].append(data)
            params["categories"] = [CATEGORY] * len(params["streams"])
            if snapshots:
                params["s_streams"] = [s[0] for s in snapshots]
                params["s_versions"] = [s[1] for s in snapshots]
                params["s_data"] = [s[2] for s in snapshots]
                conn.execute(INSERT_MANY_SNAPSHOTS, params)
            else:
                conn.execute(INSERT_MANY, params)
        for a in accounts:
            a.version += len(a.pending)
            a.pending = []

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
            except psycopg.errors.UniqueViolation:
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
        listener = self._connect()
        reader = self._connect()
        listener.execute(f"LISTEN {CHANNEL}")
        stop = threading.Event()
        head = reader.execute(HEAD).fetchone()
        position = 0 if head is None else head[0]

        def run() -> None:
            nonlocal position
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
                for _ in listener.notifies(timeout=0.1, stop_after=1):
                    pass

        thread = threading.Thread(target=run, name="raw-follower", daemon=True)
        thread.start()

        def close() -> None:
            stop.set()
            thread.join()

        return close

    # -- workload e: a projection -----------------------------------------------------

    def project(self) -> int:
        conn = self._connect()
        for statement in READ_MODEL:
            conn.execute(statement)
        row = conn.execute(LOAD_CHECKPOINT).fetchone()
        position = 0 if row is None else row[0]
        handled = 0
        while True:
            rows = conn.execute(READ_LOG, (position, 500)).fetchall()
            if not rows:
                return handled
            ids = [row[1] for row in rows]
            amounts = [amount_of(row[3], row[4]) for row in rows]
            position = rows[-1][0]
            with conn.transaction():
                conn.execute(UPSERT_BALANCES, {"ids": ids, "amounts": amounts})
                conn.execute(SAVE_CHECKPOINT, (position,))
            handled += len(rows)

    def balances(self) -> tuple[int, int]:
        row = self._conn().execute(BALANCES).fetchone()
        assert row is not None
        return int(row[0]), int(row[1])

    # -- workload i: asyncio ----------------------------------------------------------

    def run_async(self, job: str, count: int, tasks: int, account_ids: Sequence[str]) -> float:
        async def main() -> float:
            conns = [
                await psycopg.AsyncConnection.connect(
                    self.url, autocommit=True, options=f"-c search_path={self.schema}"
                )
                for _ in range(tasks)
            ]
            for conn in conns:
                conn.adapters.register_loader("json", TextLoader)
            queue = list(range(count))

            async def task(conn: psycopg.AsyncConnection[Any]) -> None:
                while queue:
                    i = queue.pop()
                    if job == "start":
                        await conn.execute(
                            INSERT, (f"{CATEGORY}-{uuid.uuid4()}", CATEGORY, 1, "Opened", OPENED_JSON)
                        )
                        continue
                    account_id = account_ids[i % len(account_ids)]
                    cursor = await conn.execute(READ_STREAM, (account_id, 0))
                    version, balance = 0, 0
                    for row_version, type_, data in await cursor.fetchall():
                        balance += amount_of(type_, data)
                        version = row_version
                    data = deposited_json(amount_for(i))
                    await conn.execute(INSERT, (account_id, CATEGORY, version + 1, "Deposited", data))

            try:
                started = time.perf_counter()
                await asyncio.gather(*(task(conn) for conn in conns))
                return time.perf_counter() - started
            finally:
                for conn in conns:
                    await conn.close()

        return asyncio.run(main())

    # -- bulk set-up and checks -------------------------------------------------------

    def bulk_build(self, streams: int, events_per_stream: int, chunk: int, categories: int = 1) -> list[str]:
        # COPY, one transaction per chunk of rows.
        conn = self._conn()
        ids: list[str] = []
        per_copy = max(1, chunk // events_per_stream)
        deposits = [deposited_json(amount_for(i)) for i in range(1, events_per_stream)]
        for start in range(0, streams, per_copy):
            with conn.transaction(), conn.cursor() as cursor, cursor.copy(COPY) as copy:
                for n in range(start, min(start + per_copy, streams)):
                    category = category_name(n % categories)
                    sid = f"{category}-{uuid.uuid4()}"
                    ids.append(sid)
                    copy.write_row((sid, category, 1, "Opened", OPENED_JSON))
                    for i, data in enumerate(deposits, 2):
                        copy.write_row((sid, category, i, "Deposited", data))
        return ids

    def count_events(self) -> int:
        row = self._conn().execute("SELECT count(*) FROM events").fetchone()
        assert row is not None
        return int(row[0])

    def audit_log(self) -> tuple[int, int]:
        row = self._conn().execute(AUDIT).fetchone()
        assert row is not None
        return int(row[0]), int(row[1])

    def info(self) -> dict[str, Any]:
        conn = self._conn()
        row = conn.execute("SHOW synchronous_commit").fetchone()
        assert row is not None
        return {
            "library": f"psycopg {dist_version('psycopg')}",
            "api": "psycopg 3: one autocommit statement a save (unnest arrays in binary) / COPY; msgspec",
            "synchronous_commit": row[0],
        }

    def close(self) -> None:
        with self._lock:
            for conn in self._conns:
                conn.close()
            self._conns.clear()


_decode: Final = decode


def open_contender(location: Location, options: Options) -> RawPostgres:
    return RawPostgres(location, options)
