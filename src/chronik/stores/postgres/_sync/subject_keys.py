"""The sync PostgreSQL store's subjects' keys: the ``subject_keys`` table.

GENERATED from ``_async/subject_keys.py`` by ``tools/unasync.py``: do not edit; edit
the async module and run the script. The design is described there.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING

from chronik.backend import SubjectKey, new_subject_key, validate_subject, validate_subjects
from chronik.stores.postgres import sql

if TYPE_CHECKING:
    from chronik.stores.postgres._sync.connections import Conn, Connections

__all__ = ["PostgresSubjectKeys"]


class PostgresSubjectKeys:
    """A :class:`chronik.store.SubjectKeyStore` in the store's schema."""

    def __init__(self, shared: Connections) -> None:
        self.shared = shared

    def subject_keys(self, subjects: Collection[str], *, create: bool = False) -> dict[str, SubjectKey]:
        wanted = validate_subjects(subjects)
        if not wanted:
            return {}
        statements = self.shared.statements

        def op(conn: Conn) -> dict[str, SubjectKey]:
            return keys_on(conn, statements, wanted, create)

        return self.shared.run(op)

    def forget(self, subject: str) -> None:
        subject = validate_subject(subject)
        statements = self.shared.statements

        def op(conn: Conn) -> None:
            conn.execute(statements.delete_subject_key, (subject,))

        self.shared.run(op)

    def on(self, conn: Conn) -> _OnConnection:
        """The same key store, on ``conn`` (an open transaction's)."""
        return _OnConnection(conn, self.shared.statements)


class _OnConnection:
    def __init__(self, conn: Conn, statements: sql.Statements) -> None:
        self._conn = conn
        self._statements = statements

    def subject_keys(self, subjects: Collection[str], *, create: bool = False) -> dict[str, SubjectKey]:
        wanted = validate_subjects(subjects)
        if not wanted:
            return {}
        return keys_on(self._conn, self._statements, wanted, create)

    def forget(self, subject: str) -> None:
        self._conn.execute(self._statements.delete_subject_key, (validate_subject(subject),))


def keys_on(conn: Conn, statements: sql.Statements, wanted: list[str], create: bool) -> dict[str, SubjectKey]:
    """The keys of ``wanted`` on ``conn``, those missing made first when ``create``."""
    found = _read(conn, statements, wanted)
    missing = [s for s in wanted if s not in found]
    if not create or not missing:
        return found
    made = [new_subject_key(s) for s in missing]
    conn.execute(
        statements.insert_subject_keys,
        ([k.subject for k in made], [k.key_id for k in made], [k.key for k in made]),
    )
    return _read(conn, statements, wanted)


def _read(conn: Conn, statements: sql.Statements, wanted: list[str]) -> dict[str, SubjectKey]:
    cursor = conn.execute(statements.read_subject_keys, (wanted,))
    return {s: SubjectKey(s, k, bytes(key)) for s, k, key in cursor.fetchall()}
