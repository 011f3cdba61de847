"""Fixtures for the tests that need a real server (PostgreSQL here).

PostgreSQL tests read the server from ``CHRONIK_TEST_POSTGRES_URL`` (default
``postgresql://postgres@127.0.0.1:5432/test``). When it is unreachable they skip,
saying how to run them; under ``CI=true`` they fail instead, so CI never passes by
skipping. Each test gets a schema of its own, dropped afterwards.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import NoReturn

import pytest

from chronik.testing.services import POSTGRES, unavailable


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
