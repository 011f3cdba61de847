"""chronik: the account as an ``Aggregate`` with typed msgspec events, run by a ``CommandHandler``.

The store is opened with ``chronik.connect`` (SQLite: WAL and ``synchronous=FULL``,
unless the labelled NORMAL row asks otherwise; PostgreSQL: the job's schema).

Two adapters, chosen with ``CHRONIK_BENCH_API``:

- ``app`` (the default): the application layer. A command is ``handler.handle``
  (load the stream, from its snapshot when the handler has a ``SnapshotPolicy``;
  run the aggregate's method; append with the loaded version), or ``handler.start``
  for the command that opens a new account (nothing to load: append expecting no
  stream, as eventsourcing saves a new aggregate and raw inserts version 1); loading is
  ``handler.load``; a snapshot at the last version is ``handler.refresh_snapshot``.
  The handler has no way to save an aggregate the application holds in memory, nor
  several streams at once, so those workloads (2 and 3) use the ``Aggregate`` class
  to record events and the store's ``append`` / ``append_many`` with the expected
  version, and write snapshots as the handler would (same type and schema version,
  after the events commit).
- ``store``: the store API alone, with a hand-written fold; it shows what the
  application layer costs on top of the store.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any, Final

import msgspec

import chronik
import chronik.events
import chronik.store
from benchmarks.contenders import Options, category_name
from benchmarks.databases import Location
from benchmarks.domain import CATEGORY, MEMO, OWNER, amount_for
from chronik.projections import Projection, ProjectionRunner

__all__ = ["Account", "AppAccounts", "StoreAccounts", "open_contender"]

registry: Final = chronik.EventRegistry()


@registry.event("Opened")
class Opened(msgspec.Struct, frozen=True):
    owner: str


@registry.event("Deposited")
class Deposited(msgspec.Struct, frozen=True):
    amount: int
    memo: str


@dataclasses.dataclass
class Account(chronik.Aggregate):
    """The account, as the application layer's aggregate (its fields are its snapshot)."""

    category = CATEGORY
    owner: str = ""
    balance: int = 0

    def open(self, owner: str) -> None:
        self.record(Opened(owner))

    def deposit(self, amount: int, memo: str) -> None:
        self.record(Deposited(amount, memo))

    @chronik.applies(Opened)
    def _opened(self, event: Opened) -> None:
        self.owner = event.owner

    @chronik.applies(Deposited)
    def _deposited(self, event: Deposited) -> None:
        self.balance += event.amount


# What the handler names an Account snapshot: the model's name and its policy's schema version.
SNAPSHOT_TYPE: Final = "Account"
SNAPSHOT_SCHEMA: Final = 1
# A policy whose "every" never comes due: the handler looks for snapshots and can
# refresh one, but takes none by itself (workload 4 takes them explicitly).
_NEVER: Final = 2**62
_encoder: Final = msgspec.json.Encoder()


def _new_stream_id() -> str:
    return f"{CATEGORY}-{uuid.uuid4()}"


def _location_url(location: Location) -> str:
    if location.backend == "sqlite":
        return f"sqlite:///{location.sqlite_path}"
    if location.backend == "nats":
        separator = "&" if "?" in location.nats_url else "?"
        return f"{location.nats_url}{separator}stream={location.name}"
    separator = "&" if "?" in location.postgres_url else "?"
    return f"{location.postgres_url}{separator}schema={location.schema}"


class Held:
    """An aggregate the application holds between saves: its stream, version and saved count."""

    __slots__ = ("account", "saved", "stream_id", "version")

    def __init__(self, stream_id: str, account: Account) -> None:
        self.stream_id = stream_id
        self.account = account
        self.version = 0
        self.saved = 0  # how many of account.pending_events are stored already


class _Common:
    api: str = ""

    def __init__(self, location: Location, options: Options) -> None:
        kwargs: dict[str, Any] = {}
        if location.backend == "sqlite":
            kwargs["synchronous"] = options.synchronous
        if location.backend == "postgres" and options.writers > 10:
            kwargs["pool_max_size"] = options.writers  # a connection per writer, as raw has
        self.kwargs = kwargs
        self.url = _location_url(location)
        self.store = chronik.connect(self.url, registry=registry, **kwargs)
        self.log_lags_commits = location.backend == "postgres"
        # JetStream commits one stream per message: append_many takes one stream there,
        # so saving several streams is an append each (as raw's publish each).
        self.one_stream_per_call = location.backend == "nats"
        self.location = location
        self.options = options
        self.snapshot_every = options.snapshot_every
        self.snapshots: chronik.store.SnapshotStore | None = None
        if options.snapshots or options.snapshot_every:
            if not isinstance(self.store, chronik.store.SnapshotStore):
                raise RuntimeError(f"{self.store!r} does not keep snapshots")
            self.snapshots = self.store

    # -- aggregates held in memory (workloads 2 and 3) -----------------------------

    def create(self) -> Held:
        held = Held(_new_stream_id(), Account())
        held.account.open(OWNER)
        return held

    def deposit(self, account: Held, amount: int) -> None:
        account.account.deposit(amount, MEMO)

    def save(self, accounts: Sequence[Held]) -> None:
        if len(accounts) > 1 and self.one_stream_per_call:
            for held in accounts:
                self.save([held])
            return
        if len(accounts) == 1:
            held = accounts[0]
            events = held.account.pending_events[held.saved :]
            self.store.append(held.stream_id, events, held.version or chronik.NO_STREAM)
            counts = [len(events)]
        else:
            writes = []
            counts = []
            for held in accounts:
                events = held.account.pending_events[held.saved :]
                writes.append(chronik.StreamWrite(held.stream_id, events, held.version or chronik.NO_STREAM))
                counts.append(len(events))
            self.store.append_many(writes)
        for held, count in zip(accounts, counts, strict=True):
            before = held.version
            held.version += count
            held.saved += count
            every = self.snapshot_every
            if every and held.version // every > before // every:
                self._save_snapshot(held.stream_id, held.version, held.account)

    def _save_snapshot(self, stream_id: str, version: int, account: Account) -> None:
        assert self.snapshots is not None
        self.snapshots.save_snapshot(
            chronik.events.Snapshot(
                stream_id, version, SNAPSHOT_TYPE, SNAPSHOT_SCHEMA, _encoder.encode(account)
            )
        )

    def account_id(self, account: Held) -> str:
        return account.stream_id

    # -- the log, bulk set-up, checks --------------------------------------------

    def read_log(self, *, decode: bool, page_size: int) -> int:
        return self._read(None, decode=decode, page_size=page_size)

    def read_category(self, category: str, *, page_size: int) -> int:
        return self._read([category], decode=True, page_size=page_size)

    def _read(self, categories: list[str] | None, *, decode: bool, page_size: int) -> int:
        count = 0
        after: chronik.Checkpoint | None = None
        read_all = self.store.read_all
        while True:
            last = None
            if decode:
                for last in read_all(after, categories=categories, limit=page_size):
                    last.data  # noqa: B018 - decoding is what is measured
                    count += 1
            else:
                for last in read_all(after, categories=categories, limit=page_size):  # noqa: B007 - kept for its checkpoint
                    count += 1
            if last is None:
                return count
            after = last.checkpoint

    def bulk_build(self, streams: int, events_per_stream: int, chunk: int, categories: int = 1) -> list[str]:
        # The fastest path: append_many, many streams of typed events per transaction.
        ids: list[str] = []
        per_call = 1 if self.one_stream_per_call else max(1, chunk // events_per_stream)
        for start in range(0, streams, per_call):
            writes = []
            for n in range(start, min(start + per_call, streams)):
                sid = f"{category_name(n % categories)}-{uuid.uuid4()}"
                events: list[object] = [Opened(OWNER)]
                events.extend(Deposited(amount_for(i), MEMO) for i in range(1, events_per_stream))
                writes.append(chronik.StreamWrite(sid, events, chronik.NO_STREAM))
                ids.append(sid)
            self.store.append_many(writes)
        return ids

    def count_events(self) -> int:
        # Stream versions, not the global log: on PostgreSQL the log shows a commit
        # only once older transactions anywhere on the server have ended.
        total, after = 0, None
        while True:
            page = self.store.list_streams(after=after, limit=1000)
            if not page:
                return total
            total += sum(info.version for info in page)
            after = page[-1].stream_id

    def audit_log(self) -> tuple[int, int]:
        streams: set[str] = set()
        count = 0
        for event in self.store.read_all():
            streams.add(event.stream_id)
            count += 1
        return count, len(streams)

    def follow(self, on_deposit: Callable[[int], None]) -> Callable[[], None]:
        assert isinstance(self.store, chronik.store.Subscribable)
        subscription = self.store.subscribe(after=self.store.head())

        def run() -> None:
            for event in subscription:
                data = event.data
                if type(data) is Deposited:
                    on_deposit(data.amount)

        thread = threading.Thread(target=run, name="chronik-follower", daemon=True)
        thread.start()

        def close() -> None:
            subscription.close()  # from any thread: ends the blocked iteration
            thread.join()

        return close

    def project(self) -> int:
        return ProjectionRunner(self.store, BALANCES).run_until_caught_up()

    def balances(self) -> tuple[int, int]:
        with self.store.transaction() as tx:
            accounts, total = tx.execute(_BALANCES).fetchone()
        return int(accounts), int(total)

    def info(self) -> dict[str, Any]:
        info: dict[str, Any] = {
            "library": f"chronik {chronik.__version__}",
            "api": self.api,
            "store": repr(self.store),
        }
        synchronous = getattr(self.store, "synchronous", None)
        if synchronous is not None:
            info["synchronous"] = synchronous
        if self.location.backend == "sqlite":
            conn = sqlite3.connect(self.location.sqlite_path)
            info["journal_mode"] = conn.execute("PRAGMA journal_mode").fetchone()[0]
            conn.close()
        return info

    def close(self) -> None:
        self.store.close()


def _deposit_all(amounts: Sequence[int]) -> Any:
    def command(account: Account) -> None:
        for amount in amounts:
            account.deposit(amount, MEMO)

    return command


def _open(account: Account) -> None:
    account.open(OWNER)


# Workload e: a read model of balances in the store's own database, kept by a
# ProjectionRunner (its writes and the checkpoint commit together, a batch at a time).
_UPSERT: Final = (
    "INSERT INTO balances (id, balance) VALUES (:id, :amount) "
    "ON CONFLICT (id) DO UPDATE SET balance = balances.balance + excluded.balance"
)
_BALANCES: Final = "SELECT count(*), coalesce(sum(balance), 0) FROM balances"


def _create_balances(tx: chronik.store.StoreTransaction) -> None:
    tx.execute("CREATE TABLE IF NOT EXISTS balances (id TEXT PRIMARY KEY, balance BIGINT NOT NULL)")


def _on_opened(event: chronik.RecordedEvent[Opened], tx: chronik.store.StoreTransaction) -> None:
    tx.execute(_UPSERT, {"id": event.stream_id, "amount": 0})


def _on_deposited(event: chronik.RecordedEvent[Deposited], tx: chronik.store.StoreTransaction) -> None:
    tx.execute(_UPSERT, {"id": event.stream_id, "amount": event.data.amount})


BALANCES: Final = Projection(
    "balances", {"Opened": _on_opened, "Deposited": _on_deposited}, setup=_create_balances
)


class AppAccounts(_Common):
    """Through chronik's application layer: ``CommandHandler`` over the ``Account`` aggregate."""

    api = "application layer: CommandHandler + Aggregate (held aggregates: Aggregate + append/append_many)"

    def __init__(self, location: Location, options: Options) -> None:
        super().__init__(location, options)
        policy = None
        if self.snapshots is not None:
            policy = chronik.SnapshotPolicy(
                every=options.snapshot_every or _NEVER, schema_version=SNAPSHOT_SCHEMA
            )
        self.handler = chronik.CommandHandler(self.store, Account, snapshots=policy)
        # A hot stream (workload g): conflicts are the point, so many retries.
        self.hot = chronik.CommandHandler(self.store, Account, retries=10_000)

    def open_account(self) -> str:
        stream_id = _new_stream_id()
        self.handler.start(stream_id, _open)  # a new stream: appended expecting none, nothing read
        return stream_id

    def deposit_command(self, account_id: str, amounts: Sequence[int]) -> None:
        self.handler.handle(account_id, _deposit_all(amounts))

    def load(self, account_id: str) -> int:
        return self.handler.load(account_id).version

    def take_snapshot(self, account_id: str) -> None:
        self.handler.refresh_snapshot(account_id)

    def hot_command(self, account_id: str, amount: int) -> int:
        return self.hot.handle(account_id, _deposit_all([amount])).attempts

    def run_async(self, job: str, count: int, tasks: int, account_ids: Sequence[str]) -> float:
        async def main() -> float:
            store = chronik.connect_async(self.url, registry=registry, **self.kwargs)
            handler = chronik.AsyncCommandHandler(store, Account)
            queue = list(range(count))

            async def task() -> None:
                while queue:
                    i = queue.pop()
                    if job == "start":
                        await handler.start(_new_stream_id(), _open)
                    else:
                        await handler.handle(account_ids[i % len(account_ids)], _deposit_all([amount_for(i)]))

            try:
                started = time.perf_counter()
                await asyncio.gather(*(task() for _ in range(tasks)))
                return time.perf_counter() - started
            finally:
                await store.close()

        return asyncio.run(main())


class _State(msgspec.Struct):
    owner: str = ""
    balance: int = 0


_state_decoder: Final = msgspec.json.Decoder(_State)


class StoreAccounts(_Common):
    """The store API alone: snapshot + ``read_stream`` + a hand-written fold; ``append``."""

    api = "store API: append / append_many / read_stream / read_all / snapshots, hand-written fold"

    def _fold(self, account_id: str) -> tuple[_State, int]:
        state, version = _State(), 0
        if self.snapshots is not None:
            snapshot = self.snapshots.load_snapshot(account_id)
            if (
                snapshot is not None
                and snapshot.type == SNAPSHOT_TYPE
                and snapshot.schema_version == SNAPSHOT_SCHEMA
            ):
                state, version = _state_decoder.decode(snapshot.data), snapshot.version
        events = self.store.read_stream(account_id, version + 1)
        for event in events:
            data = event.data
            if type(data) is Deposited:
                state.balance += data.amount
            elif type(data) is Opened:
                state.owner = data.owner
        return state, events[-1].version if events else version

    def open_account(self) -> str:
        stream_id = _new_stream_id()
        self.store.append(stream_id, [Opened(OWNER)], chronik.NO_STREAM)
        return stream_id

    def deposit_command(self, account_id: str, amounts: Sequence[int]) -> None:
        state, version = self._fold(account_id)
        events = [Deposited(amount, MEMO) for amount in amounts]
        self.store.append(account_id, events, version)
        every = self.snapshot_every
        after = version + len(events)
        if every and after // every > version // every:
            state.balance += sum(amounts)
            assert self.snapshots is not None
            self.snapshots.save_snapshot(
                chronik.events.Snapshot(
                    account_id, after, SNAPSHOT_TYPE, SNAPSHOT_SCHEMA, _encoder.encode(state)
                )
            )

    def load(self, account_id: str) -> int:
        return self._fold(account_id)[1]

    def take_snapshot(self, account_id: str) -> None:
        state, version = self._fold(account_id)
        assert self.snapshots is not None
        self.snapshots.save_snapshot(
            chronik.events.Snapshot(
                account_id, version, SNAPSHOT_TYPE, SNAPSHOT_SCHEMA, _encoder.encode(state)
            )
        )


def open_contender(location: Location, options: Options) -> AppAccounts | StoreAccounts:
    api = os.environ.get("CHRONIK_BENCH_API", "app")
    if api == "store":
        return StoreAccounts(location, options)
    if api != "app":
        raise ValueError(f"CHRONIK_BENCH_API must be app or store, got {api!r}")
    return AppAccounts(location, options)
