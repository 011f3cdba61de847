"""Declaring personal data (``PersonalData``), what it reads as once forgotten, and
what is refused at registration or at append (no I/O: the keys are given here as a
store would load them). Every backend runs the same through ``SubjectKeyTests``."""

from __future__ import annotations

import dataclasses
import uuid
from typing import Annotated

import msgspec
import pytest

import chronik
from chronik import REDACTED, EventRegistry, NewEvent, PersonalData
from chronik.codec import Codec
from chronik.errors import ConfigurationError, DecryptionError, EventEncodeError, RegistryError
from chronik.events import RecordedEvent
from chronik.personal import SubjectKey, new_subject_key


class Renamed(msgspec.Struct, frozen=True, rename="camel"):
    customer_id: uuid.UUID
    full_name: Annotated[str, PersonalData(subject="customer_id")]
    score: Annotated[int | None, PersonalData(subject="customer_id")] = None


@dataclasses.dataclass(frozen=True)
class Moved:
    customer: int
    city: Annotated[str, PersonalData(subject="customer")]
    floor: Annotated[int, PersonalData(subject="customer", redacted=-1)]


def _registry() -> EventRegistry:
    registry = EventRegistry()
    registry.register(Renamed, "Renamed")
    registry.register(Moved, "Moved")
    return registry


def _read(codec: Codec, type_: str, data: bytes, keys: dict[str, SubjectKey]) -> RecordedEvent:
    return RecordedEvent("s-1", 1, 1, "memory", b"\x01" * 16, type_, 1, data, None, 0, codec, _keys=keys)


def test_fields_by_their_stored_names_in_structs_and_dataclasses() -> None:
    codec = Codec(_registry())
    subject = uuid.uuid4()
    event = Renamed(subject, "Ada Lovelace", 99)
    assert codec.subjects_to_write([event, Moved(7, "London", 3)]) == {str(subject), "7"}
    keys = {str(subject): new_subject_key(str(subject)), "7": new_subject_key("7")}
    stored = codec.encode("s-1", event, keys=keys)
    payload = msgspec.json.decode(stored.data)
    assert payload["customerId"] == str(subject)
    assert set(payload["fullName"]) == {"$pii", "key", "ct"}
    assert payload["fullName"]["$pii"] == str(subject)
    assert b"Ada" not in stored.data
    assert _read(codec, "Renamed", stored.data, keys).data == event
    forgotten = _read(codec, "Renamed", stored.data, {})
    assert forgotten.data == Renamed(subject, REDACTED, None)  # int | None: its default
    assert forgotten.redacted == ("full_name", "score")
    moved = codec.encode("s-1", Moved(7, "London", 3), keys=keys)
    assert _read(codec, "Moved", moved.data, {}).data == Moved(7, REDACTED, -1)


def test_a_type_is_refused_when_a_forgotten_field_would_have_nothing_to_read_as() -> None:
    registry = EventRegistry()

    class NoDefault(msgspec.Struct, frozen=True):
        customer: str
        age: Annotated[int, PersonalData(subject="customer")]

    with pytest.raises(RegistryError, match="give it a default"):
        registry.register(NoDefault, "NoDefault")

    class NoSubject(msgspec.Struct, frozen=True):
        name: Annotated[str, PersonalData(subject="customer")]

    with pytest.raises(RegistryError, match="does not have"):
        registry.register(NoSubject, "NoSubject")

    class PersonalSubject(msgspec.Struct, frozen=True):
        email: Annotated[str, PersonalData(subject="email")]

    with pytest.raises(RegistryError, match="personal data itself"):
        registry.register(PersonalSubject, "PersonalSubject")
    with pytest.raises(RegistryError, match="names a field"):
        PersonalData(subject="")
    assert not registry.has_personal_data


def test_an_append_without_a_subject_id_is_refused_before_any_io() -> None:
    codec = Codec(_registry())
    with pytest.raises(EventEncodeError, match="subject id"):
        codec.subjects_to_write([NewEvent("Moved", {"customer": None, "city": "x", "floor": 1})])
    with pytest.raises(EventEncodeError, match="subject id"):
        codec.subjects_to_write([Moved(True, "x", 1)])
    with pytest.raises(ConfigurationError, match="whose key was not loaded"):
        codec.encode("s-1", Moved(7, "London", 3), keys={})


def test_a_key_with_the_right_id_and_other_bytes_fails_to_authenticate() -> None:
    codec = Codec(_registry())
    key = new_subject_key("7")
    stored = codec.encode("s-1", Moved(7, "London", 3), keys={"7": key})
    impostor = SubjectKey("7", key.key_id, new_subject_key("7").key)
    with pytest.raises(DecryptionError, match="does not authenticate") as failed:
        _ = _read(codec, "Moved", stored.data, {"7": impostor}).data
    assert failed.value.stream_id == "s-1"
    newer = new_subject_key("7")  # made after the old one was forgotten
    assert _read(codec, "Moved", stored.data, {"7": newer}).data == Moved(7, REDACTED, -1)


def test_reading_personal_data_without_its_keys_loaded_is_an_error_not_a_guess() -> None:
    codec = Codec(_registry())
    stored = codec.encode("s-1", Moved(7, "London", 3), keys={"7": new_subject_key("7")})
    unloaded = RecordedEvent("s-1", 1, 1, "memory", b"\x01" * 16, "Moved", 1, stored.data, None, 0, codec)
    with pytest.raises(chronik.EventDecodeError, match="without its subject's keys"):
        _ = unloaded.data


def test_subject_keys_never_show_their_bytes() -> None:
    key = new_subject_key("7")
    assert len(key.key) == 32
    assert repr(key.key) not in repr(key)
