"""Named, recorded migrations shared by the SQL backends (no I/O).

A backend keeps its migrations as ``NNNN_name.sql`` files in a folder of its
package, records each applied name in a table, and applies the pending ones in
order, each in its own transaction. A database that records a name this chronik
does not know was migrated by a newer chronik: it is refused, never guessed at.
"""

from __future__ import annotations

from importlib import resources
from typing import NamedTuple

from chronik.errors import SchemaVersionError

__all__ = ["Migration", "load_migrations", "pending_migrations"]


class Migration(NamedTuple):
    name: str
    sql: str


def load_migrations(package: str, folder: str = "migrations") -> list[Migration]:
    """The migrations shipped in ``package/folder``, in name order."""
    root = resources.files(package).joinpath(folder)
    found = [
        Migration(entry.name.removesuffix(".sql"), entry.read_text(encoding="utf-8"))
        for entry in root.iterdir()
        if entry.name.endswith(".sql")
    ]
    return sorted(found)


def pending_migrations(known: list[Migration], applied: list[str], where: str) -> list[Migration]:
    """Which of ``known`` still need applying, given the names ``applied`` so far."""
    names = {m.name for m in known}
    unknown = sorted(set(applied) - names)
    if unknown:
        raise SchemaVersionError(
            f"{where} was migrated by a newer chronik (it has migration "
            f"{', '.join(unknown)}, unknown to this version); upgrade chronik to open it"
        )
    done = set(applied)
    return [m for m in known if m.name not in done]
