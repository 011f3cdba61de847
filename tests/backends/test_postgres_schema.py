"""Opening a PostgreSQL store: migrations, and bad input refused before any write."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from psycopg import sql

import chronik
from chronik import ConfigurationError, NewEvent, OperationalError
from chronik.errors import NotAChronikStoreError, PendingMigrationsError, SchemaVersionError
from chronik.stores.postgres import PostgresEventStore, check_schema
from chronik.stores.postgres._common import MIGRATIONS, check_server

pytestmark = pytest.mark.postgres

ALL_MIGRATIONS = [m.name for m in MIGRATIONS]


def _schema_exists(url: str, schema: str) -> bool:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone()
    return row is not None and row[0] == 1


def _query(url: str, statement: sql.Composed) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        cursor = conn.execute(statement)
        return cursor.fetchall() if cursor.description else []


def _recorded(url: str, schema: str) -> list[str]:
    rows = _query(
        url, sql.SQL("SELECT name FROM {} ORDER BY name").format(sql.Identifier(schema, "migrations"))
    )
    return [r[0] for r in rows]


def test_migrations_are_named_recorded_and_applied_once(postgres_url: str, postgres_schema: str) -> None:
    assert check_schema(postgres_url, schema=postgres_schema) == ALL_MIGRATIONS
    with contextlib.closing(chronik.connect(postgres_url, schema=postgres_schema)) as store:
        store.append("order-1", [NewEvent("Created", {})])
    with contextlib.closing(chronik.connect(postgres_url, schema=postgres_schema)) as store:
        assert isinstance(store, PostgresEventStore)
        assert store.check_schema() == []
        assert store.stream_info("order-1").version == 1
    assert _recorded(postgres_url, postgres_schema) == ALL_MIGRATIONS
    assert check_schema(postgres_url, schema=postgres_schema) == []


def test_check_schema_only_reads(postgres_url: str, postgres_schema: str) -> None:
    assert check_schema(postgres_url, schema=postgres_schema) == ALL_MIGRATIONS
    assert not _schema_exists(postgres_url, postgres_schema)


def test_concurrent_opens_migrate_once(postgres_url: str, postgres_schema: str) -> None:
    errors: list[BaseException] = []
    barrier = threading.Barrier(6)

    def open_() -> None:
        try:
            barrier.wait()
            chronik.connect(postgres_url, schema=postgres_schema).close()
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=open_) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert _recorded(postgres_url, postgres_schema) == ALL_MIGRATIONS


def test_schema_from_a_newer_chronik_is_refused_before_any_write(
    postgres_url: str, postgres_schema: str
) -> None:
    with contextlib.closing(chronik.connect(postgres_url, schema=postgres_schema)) as store:
        store.append("order-1", [NewEvent("Created", {})])
    _query(
        postgres_url,
        sql.SQL("INSERT INTO {} (name) VALUES ('9999_from_the_future')").format(
            sql.Identifier(postgres_schema, "migrations")
        ),
    )
    with pytest.raises(SchemaVersionError, match="newer chronik"):
        chronik.connect(postgres_url, schema=postgres_schema)
    with pytest.raises(SchemaVersionError, match="9999_from_the_future"):
        check_schema(postgres_url, schema=postgres_schema)
    async_store = chronik.connect_async(postgres_url, schema=postgres_schema)
    with pytest.raises(SchemaVersionError):
        asyncio.run(async_store.append("order-1", [NewEvent("Created", {})]))
    asyncio.run(async_store.close())
    count = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(postgres_schema, "events"))
    assert _query(postgres_url, count) == [(1,)]
    assert _recorded(postgres_url, postgres_schema) == [*ALL_MIGRATIONS, "9999_from_the_future"]


def test_a_schema_holding_something_else_is_refused(postgres_url: str, postgres_schema: str) -> None:
    schema = sql.Identifier(postgres_schema)
    _query(postgres_url, sql.SQL("CREATE SCHEMA {}").format(schema))
    _query(postgres_url, sql.SQL("CREATE TABLE {}.accounts (id int)").format(schema))
    with pytest.raises(NotAChronikStoreError, match="accounts"):
        chronik.connect(postgres_url, schema=postgres_schema)
    with pytest.raises(NotAChronikStoreError):
        check_schema(postgres_url, schema=postgres_schema)
    tables = _query(
        postgres_url,
        sql.SQL("SELECT tablename FROM pg_tables WHERE schemaname = {}").format(sql.Literal(postgres_schema)),
    )
    assert tables == [("accounts",)]


def test_pending_migrations_with_migrate_false(postgres_url: str, postgres_schema: str) -> None:
    with pytest.raises(PendingMigrationsError, match="0001_initial"):
        chronik.connect(postgres_url, schema=postgres_schema, migrate=False)
    assert not _schema_exists(postgres_url, postgres_schema)
    with pytest.raises(PendingMigrationsError):
        chronik.connect(f"{postgres_url}?schema={postgres_schema}&migrate=false")
    chronik.connect(postgres_url, schema=postgres_schema).close()
    chronik.connect(postgres_url, schema=postgres_schema, migrate=False).close()


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("postgresql://[::1/test", "cannot parse"),
        ("postgresql://postgres@127.0.0.1:notaport/test", "invalid port"),
        ("postgresql://postgres@127.0.0.1/test?no_such_parameter=1", "no_such_parameter"),
        ("postgresql://postgres@127.0.0.1/test?schema=Not-Valid", "schema must be"),
        ("postgresql://postgres@127.0.0.1/test?schema=pg_catalog", "schema must be"),
        ("postgresql://postgres@127.0.0.1/test?pool_max_size=0", "pool_max_size"),
        ("postgresql://postgres@127.0.0.1/test?pool_min_size=5&pool_max_size=2", "pool_max_size"),
        ("postgresql://postgres@127.0.0.1/test?migrate=perhaps", "migrate"),
        ("postgresql://postgres@127.0.0.1/test?visibility_timeout=-1", "visibility_timeout"),
    ],
)
def test_bad_urls_are_refused_before_connecting(url: str, match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        chronik.connect(url)
    with pytest.raises(ConfigurationError, match=match):
        chronik.connect_async(url)


def test_unknown_keyword_option_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="synchronous"):
        chronik.connect("postgresql://postgres@127.0.0.1/test", synchronous="FULL")


def test_password_is_not_shown_in_errors() -> None:
    with pytest.raises(ConfigurationError) as info:
        chronik.connect("postgresql://ada:s3cret@127.0.0.1:notaport/test")
    assert "s3cret" not in str(info.value)


def test_a_database_that_does_not_exist(postgres_url: str) -> None:
    url = postgres_url.rsplit("/", 1)[0] + "/chronik_no_such_database"
    with pytest.raises(OperationalError, match="chronik_no_such_database") as info:
        chronik.connect(url)
    assert "does not exist" in str(info.value)  # the server's own words, passed on
    store = chronik.connect_async(url)
    with pytest.raises(OperationalError, match="chronik_no_such_database"):
        asyncio.run(store.head())
    asyncio.run(store.close())


def test_an_unreachable_server_is_an_operational_error() -> None:
    with pytest.raises(OperationalError, match="127.0.0.1:1"):
        chronik.connect("postgresql://postgres@127.0.0.1:1/test?connect_timeout=5")


class _Info:
    def __init__(self, version: int, encoding: str = "UTF8") -> None:
        self.server_version = version
        self._encoding = encoding

    def parameter_status(self, name: str) -> str | None:
        return self._encoding if name == "server_encoding" else None


@pytest.mark.parametrize(("version", "shown"), [(120012, "12.12"), (90624, "9.6"), (110000, "11.0")])
def test_a_server_too_old_is_refused_saying_what_is_needed(version: int, shown: str) -> None:
    with pytest.raises(ConfigurationError, match="PostgreSQL 13 or newer") as info:
        check_server(_Info(version), "somewhere")  # type: ignore[arg-type]
    assert shown in str(info.value)


def test_a_database_not_in_utf8_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="UTF8"):
        check_server(_Info(150000, "SQL_ASCII"), "somewhere")  # type: ignore[arg-type]
    check_server(_Info(130000), "somewhere")  # type: ignore[arg-type]


def test_schema_fixture_names_are_fresh(new_postgres_schema: Callable[[], str]) -> None:
    assert new_postgres_schema() != new_postgres_schema()
