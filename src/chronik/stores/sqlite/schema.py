"""Opening, checking and migrating a SQLite store's file.

:func:`pending` is the one schema check: the store runs it on its own connection when
it opens, and :func:`check_schema` runs it on a read-only connection of its own.
"""

from __future__ import annotations

import os
import sqlite3
import time
from typing import Final

from chronik._migrations import Migration, load_migrations, pending_migrations
from chronik.errors import InternalError, NotAChronikStoreError, PendingMigrationsError
from chronik.stores.sqlite import sql
from chronik.stores.sqlite.connections import Connections, translate

__all__ = ["MIGRATIONS", "check_schema", "open_schema", "pending"]

MIGRATIONS: Final[list[Migration]] = load_migrations("chronik.stores.sqlite")


def _applied(conn: sqlite3.Connection, path: str) -> list[str]:
    """The migrations applied to the file (none for an empty file); refuses foreign ones."""
    tables = {row[0] for row in conn.execute(sql.TABLES)}
    if "chronik_migrations" not in tables:
        others = sorted(t for t in tables if not t.startswith("sqlite_"))
        if others:
            raise NotAChronikStoreError(
                f"{path} is a SQLite database but not a chronik store "
                f"(it has tables {', '.join(others)} and no chronik_migrations)"
            )
        return []
    return [row[0] for row in conn.execute(sql.APPLIED_MIGRATIONS)]


def pending(conn: sqlite3.Connection, path: str) -> list[Migration]:
    """The migrations the file still needs, read on ``conn``; never writes."""
    return pending_migrations(MIGRATIONS, _applied(conn, path), path)


def check_schema(path: str | os.PathLike[str]) -> list[str]:
    """Pending migrations of the chronik store at ``path``, opened read-only."""
    path = os.fspath(path)
    if not os.path.exists(path):
        return [m.name for m in MIGRATIONS]
    uri = "file:" + path.replace("?", "%3f").replace("#", "%23") + "?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True)
    except sqlite3.Error as err:
        raise translate(err, path) from err
    try:
        return [m.name for m in pending(conn, path)]
    except sqlite3.Error as err:
        raise translate(err, path) from err
    finally:
        conn.close()


def open_schema(connections: Connections, migrate: bool) -> None:
    """Check the file's schema and, if ``migrate``, bring it up to date.

    Each migration commits with its record, or not at all. Another process may be
    migrating the same file: what is applied is read again under the write lock.
    """
    path = connections.path
    with connections.errors():
        todo = pending(connections.conn(), path)
    if not todo:
        return
    if not migrate:
        raise PendingMigrationsError(
            f"{path} needs migrations {', '.join(m.name for m in todo)}; open it with migrate=True"
        )
    conn = connections.conn()
    with connections.errors():
        conn.execute("PRAGMA journal_mode = WAL")
    with connections.locked(), connections.begin(conn):
        todo = pending(conn, path)
        conn.execute(sql.CREATE_MIGRATIONS)
        for migration in todo:
            _run_script(conn, migration.sql)
            conn.execute(sql.RECORD_MIGRATION, (migration.name, time.time_ns() // 1000))


def _run_script(conn: sqlite3.Connection, script: str) -> None:
    """Run a migration statement by statement, inside the caller's transaction.

    (``executescript`` would COMMIT first and break the migration's atomicity.)
    """
    statement = ""
    for line in script.splitlines(keepends=True):
        statement += line
        if sqlite3.complete_statement(statement):
            conn.execute(statement)
            statement = ""
    if statement.strip() and not all(
        ln.strip().startswith("--") or not ln.strip() for ln in statement.splitlines()
    ):
        raise InternalError(f"migration ends with an incomplete statement: {statement[:80]!r}")
