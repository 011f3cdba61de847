"""Opening a PostgreSQL store: checking the server and the schema, and migrating it.

Written for asyncio; ``_sync/schema.py`` is generated from this file by
``tools/unasync.py`` (see the package's docstring).

Migrations are ``migrations/NNNN_name.sql`` files, recorded by name in the schema's
``migrations`` table. Each runs in a transaction of its own, under an advisory lock
so that processes opening the same schema at once apply it exactly once. Every
check reads in a read-only transaction, so a store that is refused (a newer
chronik's schema, somebody else's schema, pending migrations with
``migrate=False``) was never written to.
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

Conn: TypeAlias = psycopg.AsyncConnection[tuple[Any, ...]]


async def connect(config: PostgresConfig) -> Conn:
    """One connection outside the pool, for checks and migrations; checks the server."""
    try:
        conn = await psycopg.AsyncConnection.connect(config.conninfo, autocommit=True, context=ADAPTERS)
    except psycopg.Error as err:
        raise OperationalError(
            f"cannot connect to {config.where}: {err}", transient=is_transient(err)
        ) from err
    try:
        check_server(conn.info, config.where)
    except BaseException:
        await conn.close()
        raise
    return conn


async def applied_migrations(conn: Conn, config: PostgresConfig) -> list[str]:
    """The migrations recorded in the schema, read in a read-only transaction."""
    statements = sql.statements(config.schema, config.channel)
    async with conn.transaction():
        await conn.execute(sql.READ_ONLY)
        cursor = await conn.execute(sql.SCHEMA_TABLES, (config.schema,))
        tables = [row[0] for row in await cursor.fetchall()]
        if "migrations" not in tables:
            if tables:
                raise NotAChronikStoreError(
                    f"schema {config.schema!r} at {config.where} is not a chronik store (it has tables "
                    f"{', '.join(tables)} and no migrations table); choose another with ?schema=name"
                )
            return []
        try:
            cursor = await conn.execute(statements.applied_migrations)
        except psycopg.errors.UndefinedColumn as err:
            raise NotAChronikStoreError(
                f"schema {config.schema!r} at {config.where} has a migrations table that is not chronik's"
            ) from err
        return [row[0] for row in await cursor.fetchall()]


async def prepare_schema(conn: Conn, config: PostgresConfig) -> None:
    """Refuse a schema this chronik cannot use; apply pending migrations if allowed."""
    pending = pending_migrations(MIGRATIONS, await applied_migrations(conn, config), config.where)
    if not pending:
        return
    if not config.migrate:
        raise PendingMigrationsError(
            f"{config.where} needs migrations {', '.join(m.name for m in pending)}; "
            "open it with migrate=True (the default) to apply them"
        )
    for migration in pending:
        await _migrate(conn, config, migration)


async def _migrate(conn: Conn, config: PostgresConfig, migration: Migration) -> None:
    """Apply ``migration`` in a transaction of its own, unless another process just did."""
    statements = sql.statements(config.schema, config.channel)
    async with conn.transaction():
        await conn.execute(sql.MIGRATION_LOCK, (config.schema,))
        cursor = await conn.execute(sql.SCHEMA_EXISTS, (config.schema,))
        row = await cursor.fetchone()
        if row is None or not row[0]:
            await conn.execute(statements.create_schema)
        await conn.execute(statements.create_migrations)
        cursor = await conn.execute(statements.applied_migrations)
        applied = [r[0] for r in await cursor.fetchall()]
        if migration.name not in {m.name for m in pending_migrations(MIGRATIONS, applied, config.where)}:
            return
        await conn.execute(statements.use_schema)
        await conn.execute(migration.sql)
        await conn.execute(statements.record_migration, (migration.name,))


async def check_schema(url: str, **options: Any) -> list[str]:
    """Pending migrations of the chronik schema at ``url``, read-only, opening no store.

    Raises :class:`SchemaVersionError` for a schema migrated by a newer chronik and
    :class:`NotAChronikStoreError` for a schema that holds something else.
    """
    config = parse_config(url, options)
    conn = await connect(config)
    try:
        applied = await applied_migrations(conn, config)
    except psycopg.Error as err:
        raise translate(err, config.where) from err
    finally:
        await conn.close()
    return [m.name for m in pending_migrations(MIGRATIONS, applied, config.where)]
