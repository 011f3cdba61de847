"""Portable ``:name`` SQL parameters: how a statement is rewritten for psycopg."""

from __future__ import annotations

import pytest

from chronik.backend import named_statement, to_pyformat
from chronik.errors import InvalidInputError


def test_names_become_pyformat_and_percent_signs_are_escaped() -> None:
    statement = "INSERT INTO t (id, note) VALUES (:id, '100% done') ON CONFLICT (id) DO UPDATE SET n = :n"
    assert to_pyformat(statement, {"id": 1, "n": 2}) == (
        "INSERT INTO t (id, note) VALUES (%(id)s, '100%% done') ON CONFLICT (id) DO UPDATE SET n = %(n)s"
    )


@pytest.mark.parametrize(
    "text",
    [
        "':x'",  # a string literal
        "'it''s :x'",  # with a doubled quote
        "E'it\\'s :x'",  # an escape string
        '":x"',  # a quoted identifier
        "$$ :x $$",  # dollar quoting
        "$body$ :x $body$",
        "-- :x\n",  # comments
        "/* :x */",
        "a::text",  # a cast
        "arr[1:2]",  # an array slice
    ],
)
def test_colons_in_quoted_text_casts_and_comments_are_not_parameters(text: str) -> None:
    assert named_statement(f"SELECT {text}, :y").names == frozenset({"y"})


def test_a_parameter_may_be_cast() -> None:
    assert to_pyformat("SELECT :total::numeric", {"total": 1}) == "SELECT %(total)s::numeric"


def test_a_statement_without_names_is_left_alone() -> None:
    native = "INSERT INTO t VALUES (%(id)s, 'x::y')"
    assert to_pyformat(native, {"id": 1}) is native


def test_a_missing_parameter_is_named() -> None:
    with pytest.raises(InvalidInputError, match=r":total .*'id'"):
        to_pyformat("INSERT INTO t VALUES (:id, :total)", {"id": 1})


def test_the_scan_is_cached_by_statement() -> None:
    statement = "UPDATE t SET n = n + :by WHERE id = :id"
    assert named_statement(statement) is named_statement(statement)
