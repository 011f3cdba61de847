"""Opening the sync PostgreSQL store: checking the server and the schema, migrating.

GENERATED from ``_async/schema.py`` by ``tools/unasync.py``: do not edit; edit
the async module and run the script. The design is described there.
"""

from __future__ import annotations

from typing import Any, TypeAlias

import psycopg

from chronik.backend import Migration, pending_migrations
from chronik.errors import NotAChronikStoreError, OperationalError, PendingMigrationsError, is_transient
from chronik.stores.postgres import sql
from chronik.stores.postgres._common import ADAPTERS, MIGRATIONS, check_server, translate
from chronik.stores.postgres._config import PostgresConfig, parse_config

__all__ = ["applied_migrations", "check_schema", "connect", "prepare_schema"]

Conn: TypeAlias = psycopg.Connection[tuple[Any, ...]]


def connect(config: PostgresConfig) -> Conn:
    """One connection outside the pool, for checks and migrations; checks the server."""
    try:
        conn = psycopg.Connection.connect(config.conninfo, autocommit=True, context=ADAPTERS)
    except psycopg.Error as err:
        raise OperationalError(
            f"cannot connect to {config.where}: {err}", transient=is_transient(err)
        ) from err
    try:
        check_server(conn.info, config.where)
    except BaseException:
        conn.close()
        raise
    return conn


def applied_migrations(conn: Conn, config: PostgresConfig) -> list[str]:
    """The migrations recorded in the schema, read in a read-only transaction."""
    statements = sql.statements(config.schema, config.channel)
    with conn.transaction():
        conn.execute(sql.READ_ONLY)
        cursor = conn.execute(sql.SCHEMA_TABLES, (config.schema,))
        tables = [row[0] for row in cursor.fetchall()]
        if "migrations" not in tables:
            if tables:
                raise NotAChronikStoreError(
                    f"schema {config.schema!r} at {config.where} is not a chronik store (it has tables "
                    f"{', '.join(tables)} and no migrations table); choose another with ?schema=name"
                )
            return []
        try:
            cursor = conn.execute(statements.applied_migrations)
        except psycopg.errors.UndefinedColumn as err:
            raise NotAChronikStoreError(
                f"schema {config.schema!r} at {config.where} has a migrations table that is not chronik's"
            ) from err
        return [row[0] for row in cursor.fetchall()]


def prepare_schema(conn: Conn, config: PostgresConfig) -> None:
    """Refuse a schema this chronik cannot use; apply pending migrations if allowed."""
    pending = pending_migrations(MIGRATIONS, applied_migrations(conn, config), config.where)
    if not pending:
        return
    if not config.migrate:
        raise PendingMigrationsError(
            f"{config.where} needs migrations {', '.join(m.name for m in pending)}; "
            "open it with migrate=True (the default) to apply them"
        )
    for migration in pending:
        _migrate(conn, config, migration)


def _migrate(conn: Conn, config: PostgresConfig, migration: Migration) -> None:
    """Apply ``migration`` in a transaction of its own, unless another process just did."""
    statements = sql.statements(config.schema, config.channel)
    with conn.transaction():
        conn.execute(sql.MIGRATION_LOCK, (config.schema,))
        cursor = conn.execute(sql.SCHEMA_EXISTS, (config.schema,))
        row = cursor.fetchone()
        if row is None or not row[0]:
            conn.execute(statements.create_schema)
        conn.execute(statements.create_migrations)
        cursor = conn.execute(statements.applied_migrations)
        applied = [r[0] for r in cursor.fetchall()]
        if migration.name not in {m.name for m in pending_migrations(MIGRATIONS, applied, config.where)}:
            return
        conn.execute(statements.use_schema)
        conn.execute(migration.sql)
        conn.execute(statements.record_migration, (migration.name,))


def check_schema(url: str, **options: Any) -> list[str]:
    """Pending migrations of the chronik schema at ``url``, read-only, opening no store.

    Raises :class:`SchemaVersionError` for a schema migrated by a newer chronik and
    :class:`NotAChronikStoreError` for a schema that holds something else.
    """
    config = parse_config(url, options)
    conn = connect(config)
    try:
        applied = applied_migrations(conn, config)
    except psycopg.Error as err:
        raise translate(err, config.where) from err
    finally:
        conn.close()
    return [m.name for m in pending_migrations(MIGRATIONS, applied, config.where)]
