"""The PostgreSQL store's subjects' keys: the ``subject_keys`` table of its schema.

Written for asyncio; ``_sync/subject_keys.py`` is generated from this file. A read
or write of the store looks keys up on a pooled connection once it has given its own
back (so one operation never holds two), and a transaction on its own connection
(``on``): a key it makes then commits with the events it seals, or neither does, and
a transaction never waits for a second connection from the pool.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING

from chronik.backend import SubjectKey, new_subject_key, validate_subject, validate_subjects
from chronik.stores.postgres import sql

if TYPE_CHECKING:
    from chronik.stores.postgres._async.connections import Conn, Connections

__all__ = ["AsyncPostgresSubjectKeys"]


class AsyncPostgresSubjectKeys:
    """A :class:`chronik.store.AsyncSubjectKeyStore` in the store's schema."""

    def __init__(self, shared: Connections) -> None:
        self.shared = shared

    async def subject_keys(self, subjects: Collection[str], *, create: bool = False) -> dict[str, SubjectKey]:
        wanted = validate_subjects(subjects)
        if not wanted:
            return {}
        statements = self.shared.statements

        async def op(conn: Conn) -> dict[str, SubjectKey]:
            return await keys_on(conn, statements, wanted, create)

        return await self.shared.run(op)

    async def forget(self, subject: str) -> None:
        subject = validate_subject(subject)
        statements = self.shared.statements

        async def op(conn: Conn) -> None:
            await conn.execute(statements.delete_subject_key, (subject,))

        await self.shared.run(op)

    def on(self, conn: Conn) -> _OnConnection:
        """The same key store, on ``conn`` (an open transaction's)."""
        return _OnConnection(conn, self.shared.statements)


class _OnConnection:
    def __init__(self, conn: Conn, statements: sql.Statements) -> None:
        self._conn = conn
        self._statements = statements

    async def subject_keys(self, subjects: Collection[str], *, create: bool = False) -> dict[str, SubjectKey]:
        wanted = validate_subjects(subjects)
        if not wanted:
            return {}
        return await keys_on(self._conn, self._statements, wanted, create)

    async def forget(self, subject: str) -> None:
        await self._conn.execute(self._statements.delete_subject_key, (validate_subject(subject),))


async def keys_on(
    conn: Conn, statements: sql.Statements, wanted: list[str], create: bool
) -> dict[str, SubjectKey]:
    """The keys of ``wanted`` on ``conn``, those missing made first when ``create``."""
    found = await _read(conn, statements, wanted)
    missing = [s for s in wanted if s not in found]
    if not create or not missing:
        return found
    made = [new_subject_key(s) for s in missing]
    await conn.execute(
        statements.insert_subject_keys,
        ([k.subject for k in made], [k.key_id for k in made], [k.key for k in made]),
    )
    return await _read(conn, statements, wanted)


async def _read(conn: Conn, statements: sql.Statements, wanted: list[str]) -> dict[str, SubjectKey]:
    cursor = await conn.execute(statements.read_subject_keys, (wanted,))
    return {s: SubjectKey(s, k, bytes(key)) for s, k, key in await cursor.fetchall()}
