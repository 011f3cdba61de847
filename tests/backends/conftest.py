"""Fixtures for the tests that need a real server (PostgreSQL, NATS).

PostgreSQL tests read the server from ``CHRONIK_TEST_POSTGRES_URL`` (default
``postgresql://postgres@127.0.0.1:5432/test``). When it is unreachable they skip,
saying how to run them; under ``CI=true`` they fail instead, so CI never passes by
skipping. Each test gets a schema of its own, dropped afterwards.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, NoReturn

import pytest

from chronik.testing.services import NATS, POSTGRES, reachable, unavailable

if TYPE_CHECKING:
    from tests.backends._outage import Outage


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The test server's URL, after checking that it answers (skip or fail if not)."""
    url = POSTGRES.url
    try:
        import psycopg
    except ModuleNotFoundError:  # pragma: no cover - the dev install has it
        _unavailable(url, "psycopg is not installed (pip install 'chronik[postgres]')")
    try:
        with psycopg.connect(url, connect_timeout=5, autocommit=True) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as err:
        _unavailable(url, str(err).strip().splitlines()[0])
    return url


def _unavailable(url: str, why: str) -> NoReturn:
    unavailable(
        f"PostgreSQL is not reachable at {url} ({why}). Start a PostgreSQL 13+ server and "
        f"set {POSTGRES.variable}=postgresql://user@host:port/db to run these tests "
        "(.ci/run starts the local one)."
    )


def drop_schema(url: str, schema: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture
def postgres_schema(postgres_url: str) -> Iterator[str]:
    """A schema name no other test uses; the schema is dropped after the test."""
    schema = f"chronik_test_{uuid.uuid4().hex[:12]}"
    yield schema
    drop_schema(postgres_url, schema)


@pytest.fixture
def new_postgres_schema(postgres_url: str) -> Iterator[Callable[[], str]]:
    """Makes schema names no other test uses; every schema made is dropped after the test."""
    made: list[str] = []

    def new() -> str:
        made.append(f"chronik_test_{uuid.uuid4().hex[:12]}")
        return made[-1]

    yield new
    for schema in made:
        drop_schema(postgres_url, schema)


@pytest.fixture
def postgres_store_url(postgres_url: str, postgres_schema: str) -> str:
    """A URL naming a fresh, empty chronik store on the test server."""
    separator = "&" if "?" in postgres_url else "?"
    return f"{postgres_url}{separator}schema={postgres_schema}"


@pytest.fixture
def outage(postgres_url: str, postgres_schema: str) -> Iterator[tuple[Outage, str]]:
    """(the switch, a store URL as the role): the store's schema is the test's."""
    import psycopg
    from psycopg import sql

    from tests.backends._outage import Outage

    role = f"chronik_outage_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        database = conn.info.dbname
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
        conn.execute(
            sql.SQL("GRANT CREATE ON DATABASE {} TO {}").format(
                sql.Identifier(database), sql.Identifier(role)
            )
        )
    info = psycopg.conninfo.conninfo_to_dict(postgres_url)
    host, port = info.get("host", "127.0.0.1"), info.get("port", 5432)
    url = f"postgresql://{role}@{host}:{port}/{database}?schema={postgres_schema}&pool_timeout=1&connect_timeout=2"
    switch = Outage(postgres_url, role)
    try:
        yield switch, url
    finally:
        switch.end()
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = {}").format(
                    sql.Literal(role)
                )
            )
            conn.execute(sql.SQL("DROP OWNED BY {} CASCADE").format(sql.Identifier(role)))
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


# -- NATS JetStream --------------------------------------------------------------------------


@pytest.fixture(scope="session")
def nats_url() -> str:
    """The NATS server's URL, after checking that it answers (skip or fail if not)."""
    try:
        import nats  # noqa: F401
    except ModuleNotFoundError:  # pragma: no cover - the dev install has it
        unavailable("nats-py is not installed (pip install 'chronik[nats]')")
    url = NATS.url
    if not reachable(url, NATS.port):
        unavailable(
            f"NATS is not reachable at {url}. Start nats-server with JetStream (nats-server -js) "
            f"and set {NATS.variable}=nats://host:port to run these tests."
        )
    return url


def delete_nats_store(url: str, stream: str) -> None:
    """Delete the JetStream stream ``stream`` and its buckets (what the store made), if there."""
    import asyncio

    import nats
    import nats.js.errors

    async def delete() -> None:
        nc = await nats.connect(url, connect_timeout=5, max_reconnect_attempts=1)
        try:
            js = nc.jetstream()
            for name in (stream, f"KV_{stream}-ids", f"KV_{stream}-state", f"KV_{stream}-keys"):
                try:
                    await js.delete_stream(name)
                except nats.js.errors.NotFoundError:
                    pass
        finally:
            await nc.close()

    asyncio.run(delete())


@pytest.fixture
def nats_stream(nats_url: str) -> Iterator[str]:
    """A JetStream stream name no other test uses; the store made under it is deleted after."""
    stream = f"chronik_test_{uuid.uuid4().hex[:12]}"
    yield stream
    delete_nats_store(nats_url, stream)


@pytest.fixture
def nats_store_url(nats_url: str, nats_stream: str) -> str:
    """A URL naming a fresh, empty NATS store on the test server."""
    separator = "&" if "?" in nats_url else "?"
    return f"{nats_url}{separator}stream={nats_stream}"
