"""The DCB contenders behind one small interface: read by query, append on a condition.

- ``chronik``: ``store.read_query`` and ``store.append_if`` (``chronik.connect``, its
  defaults: SQLite in WAL with ``synchronous=FULL``; PostgreSQL with the server's
  ``synchronous_commit``).
- ``chronik-handler``: the same store through ``DCBCommandHandler`` and a ``DCBDecider``
  with typed (msgspec) events, as ``docs/dcb.md`` shows: a labelled row.
- ``eventsourcing``: ``eventsourcing.dcb``'s recorder (``DCBRecorder.read`` and
  ``append``), got as its docs configure it, ``DCBApplication(env=...)`` with
  ``PERSISTENCE_MODULE=eventsourcing.dcb.postgres_tt`` (PostgreSQL) or
  ``eventsourcing.dcb.popo`` (memory). Its recorder is its fastest path: the
  application's ``DCBRepository`` and perspectives add a mapper and the domain
  machinery on top. eventsourcing 9.5 ships no SQLite DCB recorder; that column says so.

Both libraries get the same events (type, tags, a small JSON object encoded with
msgspec) and the same decision (``workloads.decide``); only the calls differ.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from importlib.metadata import version as dist_version
from typing import Any, Final, Protocol
from urllib.parse import unquote, urlsplit

import msgspec

__all__ = [
    "CONTENDERS",
    "DCBContender",
    "Event",
    "Item",
    "Where",
    "missing",
    "open_contender",
]

# The columns, and the labelled row under chronik's column.
CONTENDERS: Final = ("chronik", "eventsourcing")
HANDLER: Final = "chronik-handler"
ES_BACKENDS: Final = {"memory": "eventsourcing.dcb.popo", "postgres": "eventsourcing.dcb.postgres_tt"}


@dataclasses.dataclass(frozen=True)
class Item:
    """A query item: any of ``types`` with all of ``tags``."""

    types: tuple[str, ...]
    tags: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Event:
    """An event as the decision sees it: type, tags and its decoded data."""

    type: str
    tags: tuple[str, ...]
    data: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class Where:
    """Where one job's store lives: ``memory``, a SQLite file, or a PostgreSQL schema."""

    backend: str
    sqlite_path: str = ""
    postgres_url: str = ""
    schema: str = ""

    def to_json(self) -> dict[str, str]:
        return dataclasses.asdict(self)


class DCBContender(Protocol):
    def read(self, items: Sequence[Item]) -> tuple[list[Event], int | None]:
        """The events matching ``items`` and the head to decide on."""
        ...

    def append(self, events: Sequence[Event], items: Sequence[Item], after: int | None) -> bool:
        """Append unless an event matching ``items`` came after ``after``; False on a conflict."""
        ...

    def append_plain(self, events: Sequence[Event]) -> None:
        """Append with no condition (the untimed set-up)."""
        ...

    def backend_pid(self) -> int | None:
        """The PostgreSQL backend serving this contender's writes (for its CPU time)."""
        ...

    def info(self) -> dict[str, Any]: ...

    def close(self) -> None: ...


def missing(contender: str, backend: str) -> str | None:
    """Why ``contender`` cannot run on ``backend``, or None when it can."""
    if contender == "eventsourcing" and backend not in ES_BACKENDS:
        return (
            f"eventsourcing {dist_version('eventsourcing')} has no {backend} DCB recorder "
            f"(eventsourcing.dcb ships {', '.join(ES_BACKENDS.values())})"
        )
    return None


def open_contender(name: str, where: Where, shared: Any = None, *, create: bool = True) -> DCBContender:
    """Open ``name`` at ``where``; ``shared`` is the in-process store of a memory job.
    ``create=False``: the tables exist (a writer of a job whose set-up made them)."""
    if name == "eventsourcing":
        return _Eventsourcing(where, shared, create=create)
    if name == HANDLER:
        from benchmarks.dcb.handler import ChronikHandler

        return ChronikHandler(where, shared)
    return Chronik(where, shared)


def chronik_url(where: Where) -> str:
    if where.backend == "memory":
        return "memory://"
    if where.backend == "sqlite":
        return f"sqlite:///{where.sqlite_path}"
    separator = "&" if "?" in where.postgres_url else "?"
    return f"{where.postgres_url}{separator}schema={where.schema}"


class Chronik:
    """chronik's store: ``read_query`` and ``append_if``."""

    label = "chronik: store.read_query / store.append_if"

    def __init__(self, where: Where, shared: Any = None) -> None:
        import chronik
        from chronik.errors import AppendConditionFailedError
        from chronik.query import AppendCondition, Query, QueryItem

        self._chronik = chronik
        self._conflict = AppendConditionFailedError
        self._condition, self._query, self._item = AppendCondition, Query, QueryItem
        self.where = where
        self.owned = shared is None
        self.store: Any = chronik.connect(chronik_url(where)) if shared is None else shared
        self._queries: dict[tuple[Item, ...], Any] = {}

    def query(self, items: Sequence[Item]) -> Any:
        return self._query(*(self._item(i.types, i.tags) for i in items))

    def read(self, items: Sequence[Item]) -> tuple[list[Event], int | None]:
        read = self.store.read_query(self.query(items))
        return [Event(e.type, e.tags, e.data) for e in read.events], read.head

    def append(self, events: Sequence[Event], items: Sequence[Item], after: int | None) -> bool:
        new = [self._chronik.NewEvent(e.type, e.data, tags=e.tags) for e in events]
        try:
            self.store.append_if(new, self._condition(self.query(items), after))
        except self._conflict:
            return False
        return True

    def append_plain(self, events: Sequence[Event]) -> None:
        self.store.append_if([self._chronik.NewEvent(e.type, e.data, tags=e.tags) for e in events], None)

    def backend_pid(self) -> int | None:
        if self.where.backend != "postgres":
            return None
        with self.store.transaction() as tx:
            row = tx.execute("SELECT pg_backend_pid()").fetchone()
        return int(row[0])

    def info(self) -> dict[str, Any]:
        info: dict[str, Any] = {"library": f"chronik {dist_version('chronik')}", "api": self.label}
        synchronous = getattr(self.store, "synchronous", None)
        if synchronous is not None:
            info["synchronous"] = synchronous
        if self.where.backend == "postgres":
            with self.store.transaction() as tx:
                info["synchronous_commit"] = tx.execute("SHOW synchronous_commit").fetchone()[0]
        return info

    def close(self) -> None:
        if self.owned:
            self.store.close()


class _Eventsourcing:
    """eventsourcing.dcb's recorder: ``read`` and ``append``."""

    def __init__(self, where: Where, shared: Any = None, *, create: bool = True) -> None:
        from eventsourcing.dcb.api import DCBAppendCondition, DCBEvent, DCBQuery, DCBQueryItem
        from eventsourcing.dcb.application import DCBApplication
        from eventsourcing.persistence import IntegrityError

        self._event, self._query, self._item = DCBEvent, DCBQuery, DCBQueryItem
        self._condition, self._conflict = DCBAppendCondition, IntegrityError
        self.where = where
        self.app: Any = None
        if shared is not None:  # a memory job: the recorder is shared by the threads
            self.recorder: Any = shared
            return
        env = {"PERSISTENCE_MODULE": ES_BACKENDS[where.backend]}
        if where.backend == "postgres":
            # Its tags table REFERENCES the events table without the schema's name,
            # so the schema must be on the search path when the tables are made
            # (libpq reads PGOPTIONS; a job process runs one contender only).
            os.environ["PGOPTIONS"] = f"-c search_path={where.schema}"
            url = urlsplit(where.postgres_url)
            env.update(
                POSTGRES_DBNAME=url.path.lstrip("/"),
                POSTGRES_HOST=url.hostname or "127.0.0.1",
                POSTGRES_PORT=str(url.port or 5432),
                POSTGRES_USER=unquote(url.username or "postgres"),
                POSTGRES_PASSWORD=unquote(url.password or ""),
                POSTGRES_SCHEMA=where.schema,
                # The job's set-up made the tables; sixteen writers replacing its
                # functions at once would only collide.
                CREATE_TABLE="yes" if create else "no",
            )
        self.app = DCBApplication(env=env)
        self.recorder = self.app.recorder

    def _dcb_query(self, items: Sequence[Item]) -> Any:
        return self._query(items=[self._item(types=list(i.types), tags=list(i.tags)) for i in items])

    def read(self, items: Sequence[Item]) -> tuple[list[Event], int | None]:
        response = self.recorder.read(self._dcb_query(items))
        decode = msgspec.json.decode
        events = [Event(s.event.type, tuple(s.event.tags), decode(s.event.data)) for s in response]
        return events, response.head

    def _events(self, events: Sequence[Event]) -> list[Any]:
        encode = msgspec.json.encode
        return [self._event(type=e.type, data=encode(e.data), tags=list(e.tags)) for e in events]

    def append(self, events: Sequence[Event], items: Sequence[Item], after: int | None) -> bool:
        condition = self._condition(fail_if_events_match=self._dcb_query(items), after=after)
        try:
            self.recorder.append(self._events(events), condition)
        except self._conflict:
            return False
        return True

    def append_plain(self, events: Sequence[Event]) -> None:
        self.recorder.append(self._events(events))

    def backend_pid(self) -> int | None:
        if self.where.backend != "postgres":
            return None
        with self.recorder.datastore.transaction(commit=False) as cursor:
            cursor.execute("SELECT pg_backend_pid() AS pid")
            return int(cursor.fetchone()["pid"])

    def info(self) -> dict[str, Any]:
        info: dict[str, Any] = {
            "library": f"eventsourcing {dist_version('eventsourcing')}",
            "api": f"eventsourcing.dcb recorder ({ES_BACKENDS[self.where.backend]}): read / append",
        }
        if self.where.backend == "postgres":
            with self.recorder.datastore.transaction(commit=False) as cursor:
                cursor.execute("SHOW synchronous_commit")
                info["synchronous_commit"] = cursor.fetchone()["synchronous_commit"]
        return info

    def close(self) -> None:
        if self.app is not None:
            self.app.close()


def new_shared(name: str, where: Where) -> Any:
    """The in-process store a memory job's threads share."""
    if name == "eventsourcing":
        from eventsourcing.dcb.popo import InMemoryDCBRecorder

        return InMemoryDCBRecorder()
    import chronik

    return chronik.connect("memory://", registry=_registry() if name == HANDLER else None)


def _registry() -> Any:
    from benchmarks.dcb.handler import registry

    return registry
