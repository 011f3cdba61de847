"""Fresh databases for each repetition: a new SQLite file, a new PostgreSQL schema, or a
new JetStream stream (NATS: the contender creates it; its buckets go with it).

The runner creates a location before a job and removes it afterwards, so no run
sees another's data and nothing is left behind (also when a job fails).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import re
import socket
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from benchmarks.spec import Backend

__all__ = [
    "DEFAULT_NATS_URL",
    "DEFAULT_POSTGRES_URL",
    "Location",
    "analyze",
    "create_location",
    "drop_location",
    "nats_reachable",
    "nats_server_version",
    "postgres_reachable",
    "postgres_server_version",
]

DEFAULT_POSTGRES_URL: Final = "postgresql://postgres@127.0.0.1:5432/test"
DEFAULT_NATS_URL: Final = "nats://127.0.0.1:4222"
_SAFE: Final = re.compile(r"[^a-z0-9_]")


@dataclasses.dataclass(frozen=True)
class Location:
    """Where one contender's store lives for one job."""

    backend: Backend
    name: str  # unique within the run: a file stem, a schema or a JetStream stream name
    sqlite_path: str = ""
    postgres_url: str = ""
    nats_url: str = ""

    @property
    def schema(self) -> str:
        return self.name

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Location:
        return cls(**data)


def create_location(
    backend: Backend, name: str, *, workdir: Path, postgres_url: str, nats_url: str = DEFAULT_NATS_URL
) -> Location:
    """A fresh, empty place for a store: nothing exists there yet."""
    name = _SAFE.sub("_", name.lower())[:60]
    if backend == "nats":
        location = Location("nats", name, nats_url=nats_url)
        drop_location(location)
        return location
    if backend == "sqlite":
        path = workdir / f"{name}.db"
        _remove_sqlite(path)
        return Location("sqlite", name, sqlite_path=str(path))
    import psycopg
    from psycopg import sql

    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
    return Location("postgres", name, postgres_url=postgres_url)


def drop_location(location: Location) -> None:
    """Remove the store at ``location`` and everything in it."""
    if location.backend == "sqlite":
        _remove_sqlite(Path(location.sqlite_path))
        return
    if location.backend == "nats":
        asyncio.run(_delete_streams(location.nats_url, nats_streams(location.name)))
        return
    import psycopg
    from psycopg import sql

    with psycopg.connect(location.postgres_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(location.schema)))


def analyze(location: Location) -> None:
    """Refresh the planner's statistics after a bulk build (PostgreSQL), for every contender alike."""
    if location.backend != "postgres":
        return
    import psycopg
    from psycopg import sql

    with psycopg.connect(location.postgres_url, autocommit=True) as conn:
        tables = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = %s", (location.schema,)
        ).fetchall()
        for (table,) in tables:
            conn.execute(
                sql.SQL("ANALYZE {}.{}").format(sql.Identifier(location.schema), sql.Identifier(table))
            )


def nats_streams(name: str) -> list[str]:
    """The JetStream streams a store named ``name`` may have made: chronik's stream and
    its two buckets, or raw's stream and its snapshot bucket."""
    return [name, f"KV_{name}-ids", f"KV_{name}-state", f"KV_{name}-snapshots"]


async def _delete_streams(url: str, names: list[str]) -> None:
    import nats
    import nats.js.errors

    nc = await nats.connect(url, connect_timeout=5, max_reconnect_attempts=1)
    try:
        js = nc.jetstream()
        for name in names:
            try:
                await js.delete_stream(name)
            except nats.js.errors.NotFoundError:
                pass
    finally:
        await nc.close()


def nats_reachable(url: str) -> str | None:
    """None when a NATS server with JetStream answers at ``url``, else why not."""
    try:
        import nats  # noqa: F401
    except ImportError:
        return "nats-py is not installed (pip install 'chronik[nats]')"
    try:
        nats_server_version(url)
    except Exception as err:
        return f"NATS with JetStream at {url} is not reachable: {type(err).__name__}: {err}"
    return None


def nats_server_version(url: str) -> str:
    import nats

    async def ask() -> str:
        nc = await nats.connect(url, connect_timeout=3, max_reconnect_attempts=1)
        try:
            await nc.jetstream().account_info()
            return f"nats-server {nc.connected_server_version}"
        finally:
            await nc.close()

    return asyncio.run(ask())


def _remove_sqlite(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        try:
            os.unlink(f"{path}{suffix}")
        except FileNotFoundError:
            pass


def postgres_reachable(url: str) -> str | None:
    """None when the server at ``url`` accepts a connection, else why not."""
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 5432), timeout=2):
            pass
    except OSError as err:
        return f"PostgreSQL at {parts.hostname}:{parts.port or 5432} is not reachable: {err}"
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed (pip install -r benchmarks/requirements.txt)"
    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as err:
        return f"cannot connect to {url}: {err}"
    return None


def postgres_server_version(url: str) -> str:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SHOW server_version").fetchone()
        sync = conn.execute("SHOW synchronous_commit").fetchone()
        fsync = conn.execute("SHOW fsync").fetchone()
    assert row is not None
    assert sync is not None
    assert fsync is not None
    return f"{row[0]} (synchronous_commit={sync[0]}, fsync={fsync[0]})"
