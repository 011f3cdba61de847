"""Stream ids, expected versions, event ids and checkpoints."""

import uuid
from typing import Any

import pytest

import chronik
from chronik import ANY, NO_STREAM, STREAM_EXISTS, Checkpoint, WrongExpectedVersionError, category_of
from chronik.errors import InvalidCheckpointError, InvalidExpectedVersionError, InvalidStreamIdError
from chronik.events import check_expected_version, validate_expected_version, validate_stream_id


@pytest.mark.parametrize(
    ("stream_id", "category"),
    [("order-42", "order"), ("order-42-line-1", "order"), ("order", "order"), ("-x", ""), ("日本-1", "日本")],
)
def test_category_is_the_part_before_the_first_dash(stream_id: str, category: str) -> None:
    assert category_of(stream_id) == category


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("", "empty"),
        ("x" * 201, "over the limit of 200"),
        ("a\x07b", r"control character \\x07 at index 1"),
        ("a\u2028b", r"line separator \\u2028 \(LINE SEPARATOR\) at index 1"),
        ("ab\ud800", r"lone surrogate \\ud800 at index 2; not valid Unicode"),
        ("x\u200by", r"invisible format character \\u200b \(ZERO WIDTH SPACE\) at index 1"),
        (" ", "only whitespace"),
        ("   ", "only whitespace"),
        (7, "must be a str"),
    ],
)
def test_invalid_stream_ids_name_the_problem(bad: Any, message: str) -> None:
    with pytest.raises(InvalidStreamIdError, match=message):
        validate_stream_id(bad)


def test_invalid_stream_id_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="empty"):
        validate_stream_id("")


@pytest.mark.parametrize("bad", [-1, -100, 1.5, "3", None, True, False, object()])
def test_invalid_expected_versions(bad: Any) -> None:
    with pytest.raises(InvalidExpectedVersionError):
        validate_expected_version(bad)


def test_expected_version_semantics() -> None:
    assert check_expected_version(ANY, 0) and check_expected_version(ANY, 9)
    assert check_expected_version(NO_STREAM, 0) and not check_expected_version(NO_STREAM, 1)
    assert check_expected_version(STREAM_EXISTS, 1) and not check_expected_version(STREAM_EXISTS, 0)
    assert check_expected_version(0, 0) and not check_expected_version(0, 1)
    assert check_expected_version(4, 4) and not check_expected_version(4, 5)


def test_wrong_expected_version_error_carries_its_facts() -> None:
    err = WrongExpectedVersionError("order-1", NO_STREAM, 3)
    assert (err.stream_id, err.expected, err.actual) == ("order-1", NO_STREAM, 3)
    assert str(err) == "stream 'order-1': expected version NO_STREAM, actual version 3"
    assert isinstance(err, chronik.ConcurrencyError)
    assert isinstance(err, chronik.ChronikError)


def test_uuid7_is_version_7_and_ordered() -> None:
    ids = [chronik.uuid7() for _ in range(20_000)]
    assert all(i.version == 7 and i.variant == uuid.RFC_4122 for i in ids)
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)


def test_checkpoint_text_round_trip_and_order() -> None:
    a = Checkpoint("postgres", (10, 5))
    b = Checkpoint("postgres", (10, 6))
    c = Checkpoint("postgres", (11, 1))
    assert a < b < c
    assert str(a) == "postgres:10.5"
    assert Checkpoint.parse(str(c)) == c
    for bad in ["", "postgres", "postgres:", "postgres:x", ":1"]:
        with pytest.raises(InvalidCheckpointError):
            Checkpoint.parse(bad)
