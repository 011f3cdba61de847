"""An outage of PostgreSQL that only one test sees: a login role of its own, whose
connections are cut and refused until the test lets them back.

The outage is real and harms no one else on the shared server: the test's store
connects as the role; its connection limit is set to 0 and its backends are
terminated, so every read and every new connection fails (SQLSTATE 57P01, then
53300 "too many connections for role") until the limit is lifted, as they would
while a server restarts, without restarting it.
"""

from __future__ import annotations

import psycopg
from psycopg import sql

__all__ = ["Outage"]


class Outage:
    """A login role of the test's own, and the switch that cuts it off."""

    def __init__(self, admin_url: str, role: str) -> None:
        self.admin_url = admin_url
        self.role = role

    def _run(self, *statements: sql.Composed) -> None:
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            for statement in statements:
                conn.execute(statement)

    def begin(self) -> None:
        role = sql.Identifier(self.role)
        self._run(sql.SQL("ALTER ROLE {} CONNECTION LIMIT 0").format(role))
        self._run(
            sql.SQL("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = {}").format(
                sql.Literal(self.role)
            )
        )

    def end(self) -> None:
        self._run(sql.SQL("ALTER ROLE {} CONNECTION LIMIT -1").format(sql.Identifier(self.role)))
