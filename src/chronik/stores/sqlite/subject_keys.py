"""The SQLite store's subjects' keys: the ``chronik_subject_keys`` table, in the same file.

Keys are read on the calling thread's connection. A key is made in a write
transaction of its own, or, when the thread is inside one already (an append in
``store.transaction()``, an append hook), in that one: it holds the write lock, and
the key commits with the events it seals, or neither does.

Forgetting deletes the row with ``PRAGMA secure_delete`` on (SQLite overwrites the
deleted bytes with zeros instead of leaving them in a free page), then truncates
the write-ahead log, whose frames may still hold the key as it was inserted.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Collection

import msgspec

from chronik.backend import SubjectKey, new_subject_key, validate_subject, validate_subjects
from chronik.stores.sqlite import sql
from chronik.stores.sqlite.schema import Connections

__all__ = ["SQLiteSubjectKeys"]


class SQLiteSubjectKeys:
    """A :class:`chronik.store.SubjectKeyStore` in the store's file."""

    def __init__(self, connections: Connections) -> None:
        self._connections = connections

    def subject_keys(self, subjects: Collection[str], *, create: bool = False) -> dict[str, SubjectKey]:
        wanted = validate_subjects(subjects)
        if not wanted:
            return {}
        connections = self._connections
        conn = connections.conn()
        param = msgspec.json.encode(wanted).decode()
        with connections.errors():
            found = _read(conn, param)
            missing = [s for s in wanted if s not in found]
            if not create or not missing:
                return found
            rows = [
                (k.subject, k.key_id, k.key, time.time_ns() // 1000) for k in map(new_subject_key, missing)
            ]
            if conn.in_transaction:  # this thread's write transaction: it holds the lock
                conn.executemany(sql.INSERT_SUBJECT_KEY, rows)
            else:
                with connections.locked(), connections.begin(conn):
                    conn.executemany(sql.INSERT_SUBJECT_KEY, rows)
            return _read(conn, param)

    def forget(self, subject: str) -> None:
        subject = validate_subject(subject)
        connections = self._connections
        conn = connections.conn()
        with connections.errors():
            conn.execute("PRAGMA secure_delete = ON")
            try:
                if conn.in_transaction:  # this thread's write transaction: it commits the delete
                    conn.execute(sql.DELETE_SUBJECT_KEY, (subject,))
                    return
                with connections.locked(), connections.begin(conn):
                    deleted = conn.execute(sql.DELETE_SUBJECT_KEY, (subject,)).rowcount
            finally:
                conn.execute("PRAGMA secure_delete = OFF")
            if deleted:
                _truncate_wal(conn)


def _read(conn: sqlite3.Connection, subjects: str) -> dict[str, SubjectKey]:
    return {s: SubjectKey(s, k, bytes(key)) for s, k, key in conn.execute(sql.READ_SUBJECT_KEYS, (subjects,))}


def _truncate_wal(conn: sqlite3.Connection) -> None:
    """Checkpoint the write-ahead log into the file and empty it, so that the frames
    that held the key as it was inserted are gone too. A reader in the middle of a
    read keeps the log from being emptied; the next checkpoint overwrites it then."""
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
