"""Named SQL parameters (``:name``) that run unchanged on every SQL backend.

A read model's SQL is portable when it is written with named parameters and a dict::

    tx.execute("INSERT INTO totals VALUES (:id, :total)", {"id": "order-1", "total": 30})

SQLite's driver reads ``:name`` itself. PostgreSQL's (psycopg) reads ``%(name)s``, so
a PostgreSQL transaction rewrites the statement with :func:`to_pyformat` first:
each ``:name`` outside quoted text becomes ``%(name)s`` and every literal ``%``
becomes ``%%``. What is left alone: ``'string literals'`` (with ``E'...'`` and
``$tag$...$tag$`` forms), ``"quoted identifiers"``, comments, and ``::`` casts
(``:total::numeric`` is the parameter ``total`` cast to ``numeric``).

A statement is scanned once: the translation is cached by the statement's text,
so running the same statement per event costs a dict lookup. A statement given a
sequence instead of a dict (each backend's own positional style: ``?`` on SQLite,
``%s`` on PostgreSQL) is never rewritten.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any, Final, NamedTuple

from chronik.errors import InvalidInputError

__all__ = ["NamedStatement", "check_named", "named_statement", "to_pyformat"]

# One alternative per kind of text a ``:`` inside must not count in, then ``::``,
# then a parameter, then a lone ``%``. Backslash escapes apply in E'...' strings only.
_TOKENS: Final = re.compile(
    r"""
      (?<![A-Za-z0-9_$])[Ee]'(?:[^'\\]|\\.|'')*'    # E'escape string'
    | '(?:[^']|'')*'                                # 'string literal'
    | "(?:[^"]|"")*"                                # "quoted identifier"
    | \$(?P<tag>(?:[A-Za-z_][A-Za-z0-9_]*)?)\$.*?\$(?P=tag)\$   # $tag$dollar quoted$tag$
    | --[^\n]*                                      # -- comment
    | /\*.*?\*/                                     # /* comment */
    | ::                                            # a cast, not a parameter
    | (?<![A-Za-z0-9_]):(?P<name>[A-Za-z_][A-Za-z0-9_]*)   # :name
    | %
    """,
    re.VERBOSE | re.DOTALL,
)
_CACHE_SIZE: Final = 1024


class NamedStatement(NamedTuple):
    """A statement's ``:name`` parameters, and its text in psycopg's ``%(name)s`` style."""

    names: frozenset[str]
    pyformat: str


@lru_cache(maxsize=_CACHE_SIZE)
def named_statement(statement: str) -> NamedStatement:
    """Scan ``statement`` once (cached by its text)."""
    names: set[str] = set()

    def replace(match: re.Match[str]) -> str:
        name = match.group("name")
        if name is not None:
            names.add(name)
            return f"%({name})s"
        return match.group().replace("%", "%%")

    pyformat = _TOKENS.sub(replace, statement)
    return NamedStatement(frozenset(names), pyformat)


def check_named(names: frozenset[str], parameters: Mapping[str, Any], statement: str) -> None:
    """Refuse ``parameters`` that lack one of the statement's ``:name`` parameters."""
    if not names <= parameters.keys():
        missing = sorted(names - parameters.keys())
        raise InvalidInputError(
            f"the statement has the parameter{'s' if len(missing) > 1 else ''} "
            f"{', '.join(':' + m for m in missing)} but the parameters given "
            f"({', '.join(map(repr, sorted(parameters))) or 'none'}) lack "
            f"{'them' if len(missing) > 1 else 'it'}: {_short(statement)}"
        )


def to_pyformat(statement: str, parameters: Mapping[str, Any]) -> str:
    """``statement`` for psycopg with a dict: ``:name`` as ``%(name)s``, ``%`` as ``%%``.

    A statement without any ``:name`` is returned as it is (psycopg's own
    ``%(name)s`` style keeps working). Raises :class:`InvalidInputError` naming a
    parameter missing from ``parameters``.
    """
    named = named_statement(statement)
    if not named.names:
        return statement
    check_named(named.names, parameters, statement)
    return named.pyformat


def _short(statement: str) -> str:
    text = " ".join(statement.split())
    return repr(text if len(text) <= 120 else text[:117] + "...")
