"""eventsourcing 9.5: the account as an ``Aggregate`` in an ``Application``, as its docs show.

Configured through the application's environment, as its docs say:
``PERSISTENCE_MODULE=eventsourcing.sqlite`` with ``SQLITE_DBNAME``, or
``eventsourcing.postgres`` with the ``POSTGRES_*`` settings (``POSTGRES_SCHEMA`` for
the job's schema); snapshots with ``snapshotting_intervals`` (or
``IS_SNAPSHOTTING_ENABLED`` and ``take_snapshot``). With ``Options.on_chronik`` the same
application persists through chronik instead (issue 20), configured as
``docs/eventsourcing.md`` says: ``PERSISTENCE_MODULE=chronik.compat.eventsourcing`` and
``CHRONIK_URL`` naming the job's database and schema. Reading the global log uses the
application's notification log with ``log_section_size = 1000`` and its mapper.

With ``Options.fast``, the application runs on the fastest settings its
documentation gives: the orjson transcoder of its examples (``TRANSCODER_TOPIC``;
the packaged ``eventsourcing-orjsontranscoder`` pins an orjson that has no build for
this Python) and, on PostgreSQL, ``POSTGRES_ENABLE_DB_FUNCTIONS``, which inserts a
save's events through one stored function call.

eventsourcing has no stream categories: the "other categories" of a store built with
several (workload f) are accounts of a second aggregate class, ``Ledger``, and one
category is read by filtering the notification log on the ``Account`` event topics.
Subscriptions (workload d) and its projection runner (workload e) exist for
PostgreSQL only: its SQLite recorder has no ``subscribe``.

Durability on SQLite: eventsourcing sets ``journal_mode=WAL`` and leaves
``synchronous`` at SQLite's compiled default, which is FULL in the standard build.
``info()`` reads the value back from one of eventsourcing's own connections; where
SQLite was compiled with another default, :func:`_ensure_full_sync` makes every new
connection of eventsourcing's pool run ``PRAGMA synchronous = FULL`` (and says so).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Sequence
from datetime import datetime
from functools import singledispatchmethod
from importlib.metadata import version as dist_version
from typing import Any, Final, cast
from urllib.parse import unquote, urlsplit
from uuid import UUID, uuid4

import orjson
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event
from eventsourcing.persistence import IntegrityError, StoredEvent, Tracking, Transcoder
from eventsourcing.postgres import PostgresTrackingRecorder
from eventsourcing.projection import ApplicationSubscription, Projection, ProjectionRunner
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteConnection, SQLiteConnectionPool
from eventsourcing.utils import get_topic
from psycopg.sql import SQL, Identifier

from benchmarks.contenders import Options
from benchmarks.databases import Location
from benchmarks.domain import MEMO, OWNER, amount_for

__all__ = ["Account", "Bank", "EventsourcingAccounts", "open_contender"]

_SQLITE_FULL: Final = 2


class Account(Aggregate):
    """The account: ``Opened`` by its constructor, ``Deposited`` by ``deposit``."""

    @event("Opened")
    def __init__(self, owner: str) -> None:
        self.owner = owner
        self.balance = 0

    @event("Deposited")
    def deposit(self, amount: int, memo: str) -> None:
        self.balance += amount


class Ledger(Aggregate):
    """The same account under another class: the other categories of workload f."""

    @event("Opened")
    def __init__(self, owner: str) -> None:
        self.owner = owner
        self.balance = 0

    @event("Deposited")
    def deposit(self, amount: int, memo: str) -> None:
        self.balance += amount


class Bank(Application[UUID]):
    # Pages of the notification log may be as long as the workloads' pages.
    log_section_size = 1_000


class OrjsonTranscoder(Transcoder):
    """The orjson transcoder of eventsourcing's documentation (examples/aggregate7),
    which also turns an event's timestamp back into a datetime (nested datetimes, as
    in a snapshot's state, stay strings: less work than its default transcoder does)."""

    def encode(self, obj: Any) -> bytes:
        return orjson.dumps(obj)

    def decode(self, data: bytes) -> Any:
        state = orjson.loads(data)
        stamp = state.get("timestamp")
        if type(stamp) is str:
            state["timestamp"] = datetime.fromisoformat(stamp)
        return state


# -- workload e: its projection into a read model, on PostgreSQL ------------------------


class BalancesView(PostgresTrackingRecorder):
    """A read model of balances with the tracking record, as its docs build views."""

    def __init__(self, datastore: Any, **kwargs: Any) -> None:
        super().__init__(datastore, **kwargs)
        schema = Identifier(self.datastore.schema)
        self.sql_create_statements.append(
            SQL(
                "CREATE TABLE IF NOT EXISTS {0}.balances (id uuid PRIMARY KEY, balance bigint NOT NULL)"
            ).format(schema)
        )
        self.upsert = SQL(
            "INSERT INTO {0}.balances (id, balance) VALUES (%s, %s) "
            "ON CONFLICT (id) DO UPDATE SET balance = {0}.balances.balance + excluded.balance"
        ).format(schema)
        self.totals = SQL("SELECT count(*), coalesce(sum(balance), 0) FROM {0}.balances").format(schema)

    def add(self, account_id: UUID, amount: int, tracking: Tracking) -> None:
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(self.upsert, (account_id, amount))
            self._insert_tracking(curs, tracking)

    def balances(self) -> tuple[int, int]:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(self.totals)
            row = cast(dict[str, int], curs.fetchone())
        count, total = row.values()
        return int(count), int(total)


class BalancesProjection(Projection[BalancesView]):
    name = "balances"

    @singledispatchmethod
    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        self.view.insert_tracking(tracking)

    @process_event.register
    def _opened(self, domain_event: Account.Opened, tracking: Tracking) -> None:  # type: ignore[name-defined]
        self.view.add(domain_event.originator_id, 0, tracking)

    @process_event.register
    def _deposited(self, domain_event: Account.Deposited, tracking: Tracking) -> None:  # type: ignore[name-defined]
        self.view.add(domain_event.originator_id, domain_event.amount, tracking)


_patched = False


def _ensure_full_sync() -> str:
    """Make eventsourcing's SQLite connections use synchronous=FULL; say how it came to be."""
    global _patched
    probe = sqlite3.connect(":memory:")
    default = probe.execute("PRAGMA synchronous").fetchone()[0]
    probe.close()
    if default == _SQLITE_FULL:
        return "FULL (SQLite's compiled default; eventsourcing does not change it)"
    if not _patched:
        original = SQLiteConnectionPool._create_connection

        def create_connection(self: SQLiteConnectionPool) -> SQLiteConnection:
            connection = original(self)
            connection._sqlite_conn.execute("PRAGMA synchronous = FULL")
            return connection

        SQLiteConnectionPool._create_connection = create_connection  # type: ignore[method-assign]
        _patched = True
    return f"FULL (set by the harness on each new connection; SQLite's default here is {default})"


class EventsourcingAccounts:
    def __init__(self, location: Location, options: Options) -> None:
        self.log_lags_commits = False
        env: dict[str, str] = {}
        self.sync_note = ""
        if options.on_chronik:
            if location.backend != "postgres":
                raise RuntimeError(
                    f"eventsourcing on chronik is measured on postgres, not {location.backend}"
                )
            # chronik's reader of the global log may see a commit later than it happened.
            self.log_lags_commits = True
            separator = "&" if "?" in location.postgres_url else "?"
            env.update(
                PERSISTENCE_MODULE="chronik.compat.eventsourcing",
                CHRONIK_URL=f"{location.postgres_url}{separator}schema={location.schema}",
            )
        elif location.backend == "sqlite":
            self.sync_note = _ensure_full_sync()
            env.update(PERSISTENCE_MODULE="eventsourcing.sqlite", SQLITE_DBNAME=location.sqlite_path)
        else:
            url = urlsplit(location.postgres_url)
            env.update(
                PERSISTENCE_MODULE="eventsourcing.postgres",
                POSTGRES_DBNAME=url.path.lstrip("/"),
                POSTGRES_HOST=url.hostname or "127.0.0.1",
                POSTGRES_PORT=str(url.port or 5432),
                POSTGRES_USER=unquote(url.username or "postgres"),
                POSTGRES_PASSWORD=unquote(url.password or ""),
                POSTGRES_SCHEMA=location.schema,
            )
        if options.fast:
            env["TRANSCODER_TOPIC"] = get_topic(OrjsonTranscoder)
            if location.backend == "postgres":
                env["POSTGRES_ENABLE_DB_FUNCTIONS"] = "y"
        if location.backend == "postgres" and options.writers > 5:
            # a connection per writer (its pool: 5 and an overflow of 10 by default)
            env["POSTGRES_POOL_SIZE"] = str(options.writers)
        self.env = env
        app_class: type[Bank] = Bank
        if options.snapshot_every:
            app_class = type(
                "SnapshottingBank", (Bank,), {"snapshotting_intervals": {Account: options.snapshot_every}}
            )
        elif options.snapshots:
            env["IS_SNAPSHOTTING_ENABLED"] = "y"
        self.app = app_class(env=env)
        self.backend = location.backend

    def open_account(self) -> str:
        account = Account(OWNER)
        self.app.save(account)
        return str(account.id)

    def deposit_command(self, account_id: str, amounts: Sequence[int]) -> None:
        account: Account = self.app.repository.get(UUID(account_id))
        for amount in amounts:
            account.deposit(amount, MEMO)
        self.app.save(account)

    def create(self) -> Account:
        return Account(OWNER)

    def deposit(self, account: Account, amount: int) -> None:
        account.deposit(amount, MEMO)

    def save(self, accounts: Sequence[Account]) -> None:
        self.app.save(*accounts)

    def account_id(self, account: Account) -> str:
        return str(account.id)

    def hot_command(self, account_id: str, amount: int) -> int:
        attempts = 0
        while True:
            attempts += 1
            try:
                self.deposit_command(account_id, [amount])
            except IntegrityError:
                continue  # another writer saved that version first: get it again, decide again
            return attempts

    def load(self, account_id: str) -> int:
        account: Account = self.app.repository.get(UUID(account_id))
        return account.version

    def take_snapshot(self, account_id: str) -> None:
        self.app.take_snapshot(UUID(account_id))

    def read_log(self, *, decode: bool, page_size: int) -> int:
        return self._read((), decode=decode, page_size=page_size)

    def read_category(self, category: str, *, page_size: int) -> int:
        topics = (get_topic(Account.Opened), get_topic(Account.Deposited))  # type: ignore[attr-defined]
        return self._read(topics, decode=True, page_size=page_size)

    def _read(self, topics: Sequence[str], *, decode: bool, page_size: int) -> int:
        log = self.app.notification_log
        to_domain_event = self.app.mapper.to_domain_event
        count = 0
        start = 1
        while True:
            notifications = log.select(start, page_size, topics=topics)
            if not notifications:
                return count
            if decode:
                for notification in notifications:
                    to_domain_event(notification)
            count += len(notifications)
            start = notifications[-1].id + 1

    def bulk_build(self, streams: int, events_per_stream: int, chunk: int, categories: int = 1) -> list[str]:
        # Its fastest path: one real aggregate's events, turned into stored events by
        # the application's own mapper, written for each new aggregate id by the
        # application's own recorder, many aggregates per insert (one transaction
        # each). The rows are exactly what app.save would write (only the event
        # timestamps repeat), without paying for the domain machinery a million times.
        templates = []
        for cls in (Account, Ledger):
            template = cls(OWNER)
            for i in range(1, events_per_stream):
                template.deposit(amount_for(i), MEMO)
            templates.append([self.app.mapper.to_stored_event(e) for e in template.collect_events()])
        ids: list[str] = []
        per_call = max(1, chunk // events_per_stream)
        for start in range(0, streams, per_call):
            batch: list[StoredEvent] = []
            for n in range(start, min(start + per_call, streams)):
                stored = templates[0 if n % categories == 0 else 1]
                originator_id = uuid4()
                ids.append(str(originator_id))
                batch.extend(
                    StoredEvent(originator_id, s.originator_version, s.topic, s.state) for s in stored
                )
            # At most ``chunk`` rows a call: eventsourcing.postgres stalls inserting one
            # batch of more than about 30,000 rows (workload h's aggregate is 100,000).
            for first in range(0, len(batch), chunk):
                self.app.recorder.insert_events(batch[first : first + chunk])
        return ids

    def count_events(self) -> int:
        return int(self.app.recorder.max_notification_id() or 0)

    def audit_log(self) -> tuple[int, int]:
        log = self.app.notification_log
        count, start = 0, 1
        originators: set[UUID] = set()
        while True:
            notifications = log.select(start, 1000)
            if not notifications:
                return count, len(originators)
            count += len(notifications)
            originators.update(cast(UUID, n.originator_id) for n in notifications)
            start = notifications[-1].id + 1

    def follow(self, on_deposit: Callable[[int], None]) -> Callable[[], None]:
        subscription = ApplicationSubscription(self.app, gt=self.app.recorder.max_notification_id())

        def run() -> None:
            for domain_event, _ in subscription:
                amount = getattr(domain_event, "amount", None)
                if amount is not None:
                    on_deposit(amount)

        thread = threading.Thread(target=run, name="eventsourcing-follower", daemon=True)
        thread.start()

        def close() -> None:
            subscription.stop()
            thread.join()

        return close

    def project(self) -> int:
        if self.backend != "postgres":
            raise RuntimeError("eventsourcing's projection runner needs a subscription (PostgreSQL)")
        last = int(self.app.recorder.max_notification_id() or 0)
        runner = ProjectionRunner(
            application_class=Bank, projection_class=BalancesProjection, view_class=BalancesView, env=self.env
        )
        with runner:
            runner.wait(last, timeout=600)
        self.view = runner.view
        return last

    def balances(self) -> tuple[int, int]:
        return self.view.balances()

    def run_async(self, job: str, count: int, tasks: int, account_ids: Sequence[str]) -> float:
        raise RuntimeError("eventsourcing has no asyncio API")

    def info(self) -> dict[str, Any]:
        info: dict[str, Any] = {
            "library": f"eventsourcing {dist_version('eventsourcing')}",
            "api": "Application / Aggregate / repository / notification log",
            "persistence": self.app.env.get("PERSISTENCE_MODULE"),
        }
        if self.backend == "sqlite":
            recorder = cast(SQLiteApplicationRecorder, self.app.recorder)
            with recorder.datastore.transaction(commit=False) as cursor:
                cursor.execute("PRAGMA synchronous")
                synchronous = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}[cursor.fetchone()[0]]
                cursor.execute("PRAGMA journal_mode")
                journal = cursor.fetchone()[0]
            info["synchronous"] = synchronous
            info["synchronous_note"] = self.sync_note
            info["journal_mode"] = journal
        return info

    def close(self) -> None:
        self.app.close()


def open_contender(location: Location, options: Options) -> EventsourcingAccounts:
    return EventsourcingAccounts(location, options)
