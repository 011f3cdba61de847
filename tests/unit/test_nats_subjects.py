"""Stream ids as NATS subjects: every valid id round-trips, and what is made is a valid
subject token and key-value key (no I/O; the NATS store names its subjects this way)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chronik.events import MAX_STREAM_ID_LENGTH, validate_stream_id

pytest.importorskip("nats")

from chronik.stores.nats._subjects import (
    decode_token,
    encode_token,
    stream_of_subject,
    subject_of_stream,
)

# What NATS allows in a key-value key (nats-py's check), hence in a subject token too.
KEY = re.compile(r"[-/_=.A-Za-z0-9]+")
PREFIX = "chronik.orders"

stream_ids = st.text(
    st.characters(blacklist_categories=("Cc", "Cf", "Cs", "Zl", "Zp")),
    min_size=1,
    max_size=MAX_STREAM_ID_LENGTH,
).filter(lambda s: s.isprintable() and not s.isspace())  # what validate_stream_id accepts
hard = st.sampled_from(["a.b", "*", ">", "a b", "order-.*>", "-", "--x", "_5F", "=", "日本-🙂", "é-e\u0301"])


@given(st.one_of(hard, stream_ids))
def test_every_valid_stream_id_round_trips_through_its_subject(stream_id: str) -> None:
    validate_stream_id(stream_id)
    subject = subject_of_stream(PREFIX, stream_id)
    assert stream_of_subject(PREFIX, subject) == stream_id
    tokens = subject.split(".")
    assert len(tokens) == 4, f"{subject!r} is not <chronik>.<stream>.<category>.<rest>"
    for token in tokens[2:]:
        assert token and KEY.fullmatch(token) and "." not in token, token


@given(st.one_of(hard, stream_ids), st.one_of(hard, stream_ids))
def test_different_ids_have_different_subjects(one: str, other: str) -> None:
    if one != other:
        assert subject_of_stream(PREFIX, one) != subject_of_stream(PREFIX, other)


def test_the_category_is_a_token_of_its_own() -> None:
    # A consumer reads one category with the filter <prefix>.<category>.*
    assert subject_of_stream(PREFIX, "order-42") == "chronik.orders.order.-42"
    assert subject_of_stream(PREFIX, "order") == "chronik.orders.order.="
    assert subject_of_stream(PREFIX, "a.b c-x*>") == "chronik.orders.a_2Eb_20c.-x_2A_3E"
    assert encode_token("") == "=" and decode_token("=") == ""


@pytest.mark.parametrize("bad", ["", "a.b", "a_2", "a_zz", "%41", "a b"])
def test_what_no_id_encodes_to_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="not an encoded token"):
        decode_token(bad)
