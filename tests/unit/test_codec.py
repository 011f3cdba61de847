"""Typed events, stable names, schema versions and upcasters."""

import dataclasses
import pickle
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest

import chronik
import chronik.errors
from chronik import Checkpoint, EventDecodeError, EventRegistry, NewEvent, RecordedEvent
from chronik.codec import Codec
from chronik.errors import RegistryError, UnknownEventTypeError, UnregisteredEventError, UpcastError


class Opened(msgspec.Struct, frozen=True):
    owner: str
    currency: str
    limit: int


@dataclasses.dataclass(frozen=True)
class Closed:
    reason: str


def _recorded(codec: Codec, type: str, data: bytes, schema_version: int = 1) -> RecordedEvent:
    return RecordedEvent(
        "account-1",
        7,
        7,
        Checkpoint("memory", (7,)),
        chronik.uuid7(),
        type,
        schema_version,
        data,
        None,
        datetime.now(UTC),
        codec,
    )


def test_register_with_decorator_and_explicitly() -> None:
    registry = EventRegistry()
    registry.register(Closed, "AccountClosed")

    @registry.event("AccountOpened", version=2)
    class Opened2(msgspec.Struct, frozen=True):
        owner: str

    assert registry.type_of(Opened2) == ("AccountOpened", 2)
    assert registry.type_of(Closed) == ("AccountClosed", 1)
    assert registry.class_of("AccountClosed") is Closed
    assert registry.names == ["AccountClosed", "AccountOpened"]


def test_stored_name_is_the_registered_name_not_the_import_path() -> None:
    registry = EventRegistry()
    registry.register(Closed, "AccountClosed")
    encoded = Codec(registry).encode("account-1", Closed("moved"))
    assert encoded.type == "AccountClosed"
    assert encoded.data == b'{"reason":"moved"}'


@pytest.mark.parametrize(
    ("cls", "message"),
    [
        (type("Plain", (), {}), "not a msgspec.Struct or dataclass"),
        (msgspec.defstruct("Mutable", [("a", int)]), "frozen=True"),
        (dataclasses.make_dataclass("MutableDC", [("a", int)]), "frozen dataclass"),
    ],
)
def test_only_frozen_structs_and_dataclasses_register(cls: type, message: str) -> None:
    with pytest.raises(RegistryError, match=message):
        EventRegistry().register(cls, "X")


def test_duplicate_names_and_classes_are_refused() -> None:
    registry = EventRegistry()
    registry.register(Closed, "AccountClosed")
    with pytest.raises(RegistryError, match="already registered to Closed"):
        registry.register(Opened, "AccountClosed")
    with pytest.raises(RegistryError, match="already registered as 'AccountClosed'"):
        registry.register(Closed, "Other")
    with pytest.raises(RegistryError, match="schema version"):
        registry.register(Opened, "AccountOpened", version=0)


def test_unregistered_objects_are_refused_with_a_hint() -> None:
    with pytest.raises(UnregisteredEventError, match=r"register it with registry.register\(Closed"):
        Codec(EventRegistry()).encode("account-1", Closed("x"))


def _v3_registry() -> EventRegistry:
    registry = EventRegistry()
    registry.register(Opened, "AccountOpened", version=3)

    @registry.upcaster("AccountOpened", from_version=1)
    def add_currency(data: dict[str, Any]) -> dict[str, Any]:
        return {**data, "currency": "EUR"}

    @registry.upcaster("AccountOpened", from_version=2)
    def add_limit(data: dict[str, Any]) -> dict[str, Any]:
        return {**data, "limit": 0}

    return registry


def test_upcasters_rewrite_old_payloads_on_read() -> None:
    codec = Codec(_v3_registry())
    v1 = _recorded(codec, "AccountOpened", b'{"owner":"ada"}', 1)
    v2 = _recorded(codec, "AccountOpened", b'{"owner":"bob","currency":"USD"}', 2)
    v3 = _recorded(codec, "AccountOpened", b'{"owner":"cy","currency":"GBP","limit":5}', 3)
    assert v1.data == Opened("ada", "EUR", 0)
    assert v2.data == Opened("bob", "USD", 0)
    assert v3.data == Opened("cy", "GBP", 5)


def test_a_gap_in_an_upcaster_chain_is_an_error_at_startup() -> None:
    registry = EventRegistry()
    registry.register(Opened, "AccountOpened", version=4)
    registry.add_upcaster("AccountOpened", 1, lambda d: d)
    registry.add_upcaster("AccountOpened", 3, lambda d: d)
    with pytest.raises(RegistryError, match="gap: no upcaster from version 2"):
        Codec(registry)
    with pytest.raises(RegistryError, match="gap"):
        chronik.connect("memory://", registry=registry)


def test_upcasters_for_unknown_types_or_past_the_version_are_errors() -> None:
    registry = EventRegistry()
    registry.add_upcaster("Nobody", 1, lambda d: d)
    with pytest.raises(RegistryError, match="not a registered event type"):
        registry.validate()
    registry = EventRegistry()
    registry.register(Opened, "AccountOpened", version=2)
    registry.add_upcaster("AccountOpened", 2, lambda d: d)
    with pytest.raises(RegistryError, match="goes past"):
        registry.validate()
    with pytest.raises(RegistryError, match="exists already"):
        registry.add_upcaster("AccountOpened", 2, lambda d: d)


def test_payload_stored_at_a_version_without_an_upcaster_path() -> None:
    registry = EventRegistry()
    registry.register(Opened, "AccountOpened", version=3)
    registry.add_upcaster("AccountOpened", 2, lambda d: {**d, "limit": 0})
    codec = Codec(registry)
    with pytest.raises(UpcastError) as info:
        _ = _recorded(codec, "AccountOpened", b'{"owner":"a"}', 1).data
    message = str(info.value)
    assert "'AccountOpened' at 'account-1' version 7 (stored at schema version 1)" in message
    assert "an upcaster is missing from v1 to v2" in message
    assert "registry.upcaster('AccountOpened', from_version=1)" in message
    assert (info.value.stream_id, info.value.version, info.value.type) == ("account-1", 7, "AccountOpened")


def test_upcasters_that_leave_a_payload_undecodable_are_named_as_incomplete() -> None:
    # The chain runs, but what it produces still misses a field of the current type:
    # an upcaster is missing a step, not the payload broken.
    registry = EventRegistry()
    registry.register(Opened, "AccountOpened", version=3)
    registry.add_upcaster("AccountOpened", 1, lambda d: d)
    registry.add_upcaster("AccountOpened", 2, lambda d: {**d, "limit": 0})
    event = _recorded(Codec(registry), "AccountOpened", b'{"owner":"a"}', 1)
    with pytest.raises(UpcastError) as info:
        _ = event.data
    message = str(info.value)
    assert "'AccountOpened' at 'account-1' version 7 (stored at schema version 1)" in message
    assert "does not fit Opened v3" in message
    assert "missing required field `currency`" in message
    assert "an upcaster is missing or incomplete from v1 to v3" in message
    assert "never fitted" not in message
    assert (info.value.stream_id, info.value.version, info.value.type) == ("account-1", 7, "AccountOpened")


def test_payload_stored_at_the_current_version_that_never_fitted_says_it_was_written_unchecked() -> None:
    codec = Codec(_v3_registry())
    event = _recorded(codec, "AccountOpened", b'{"owner":"a","currency":"EUR","limit":"lots"}', 3)
    with pytest.raises(EventDecodeError) as info:
        _ = event.data
    message = str(info.value)
    assert "'AccountOpened' at 'account-1' version 7" in message
    assert "was stored with a payload that never fitted Opened v3" in message
    assert "Expected `int`, got `str` - at `$.limit`" in message
    assert "it was written unchecked" in message
    assert not isinstance(info.value, UpcastError)


def test_a_failing_upcaster_names_the_event() -> None:
    registry = EventRegistry()
    registry.register(Opened, "AccountOpened", version=2)
    registry.add_upcaster("AccountOpened", 1, lambda d: d["missing"])
    with pytest.raises(UpcastError, match=r"version 7 \(stored at schema version 1\) failed: KeyError"):
        _ = _recorded(Codec(registry), "AccountOpened", b'{"owner":"a"}', 1).data


def test_payload_from_newer_code_is_an_error() -> None:
    codec = Codec(_v3_registry())
    with pytest.raises(UpcastError, match="newer than the registered 3"):
        _ = _recorded(codec, "AccountOpened", b"{}", 4).data


def test_payload_that_no_longer_decodes_names_stream_version_and_type() -> None:
    codec = Codec(_v3_registry())
    event = _recorded(codec, "AccountOpened", b'{"owner": 12}', 3)
    with pytest.raises(EventDecodeError) as info:
        _ = event.data
    assert (info.value.stream_id, info.value.version, info.value.type) == ("account-1", 7, "AccountOpened")
    assert "never fitted Opened v3" in str(info.value)
    with pytest.raises(EventDecodeError, match="'Unregistered' at 'account-1' version 7 .* not JSON"):
        _ = _recorded(codec, "Unregistered", b"{not json", 1).data


def test_strict_registry_and_raw_json_for_unknown_types() -> None:
    lenient = Codec(EventRegistry())
    assert _recorded(lenient, "Whatever", b'{"a":[1,2]}').data == {"a": [1, 2]}
    strict = Codec(EventRegistry(strict=True))
    with pytest.raises(UnknownEventTypeError, match="'Whatever'.*not registered"):
        _ = _recorded(strict, "Whatever", b"{}").data


def test_new_event_wraps_typed_events_with_metadata() -> None:
    registry = EventRegistry()
    registry.register(Closed, "AccountClosed")
    event_id = chronik.uuid7()
    new = registry.new_event(Closed("x"), metadata={"correlation_id": "c"}, event_id=event_id)
    assert new == NewEvent("AccountClosed", Closed("x"), {"correlation_id": "c"}, event_id, 1)
    encoded = Codec(registry).encode("account-1", new)
    assert encoded.metadata == b'{"correlation_id":"c"}'
    assert encoded.event_id == event_id


@pytest.mark.parametrize(
    "bad",
    [
        NewEvent("", {}),
        NewEvent("bad\ntype", {}),
        NewEvent("T", {}, schema_version=0),
        NewEvent("T", {}, event_id="not-a-uuid"),  # type: ignore[arg-type]
    ],
)
def test_bad_new_events_are_refused(bad: NewEvent) -> None:
    with pytest.raises(chronik.errors.InvalidEventError):
        Codec().encode("s-1", bad)


def test_an_unprintable_type_name_is_named_for_what_it_is() -> None:
    with pytest.raises(
        chronik.errors.InvalidEventError, match=r"lone surrogate \\udc00 at index 3; not valid"
    ):
        Codec().encode("s-1", NewEvent("Bad\udc00", {}))
    with pytest.raises(chronik.errors.InvalidEventError, match=r"control character \\n at index 3"):
        Codec().encode("s-1", NewEvent("bad\ntype", {}))


def test_a_datetime_in_metadata_is_refused_with_the_fix() -> None:
    when = datetime(2024, 5, 1, 12, 30, tzinfo=UTC)
    with pytest.raises(chronik.errors.EventEncodeError) as info:
        Codec().encode("s-1", NewEvent("T", {}, {"user": "ada", "audit": {"at": [when]}}))
    assert str(info.value) == (
        "metadata audit.at[0] of event 'T' for stream 's-1' is a datetime, which would read back "
        "as a str ('2024-05-01T12:30:00Z'); pass an ISO string, e.g. .isoformat(). Metadata holds "
        "JSON values: str, int, float, bool, None, and lists and dicts of them with str keys"
    )
    with pytest.raises(chronik.errors.EventEncodeError, match=r"metadata key 7 .* is an int"):
        Codec().encode("s-1", NewEvent("T", {}, {7: "x"}))  # type: ignore[dict-item]
    with pytest.raises(chronik.errors.EventEncodeError, match=r"metadata pair .* a tuple, .* list"):
        Codec().encode("s-1", NewEvent("T", {}, {"pair": (1, 2)}))
    with pytest.raises(chronik.errors.EventEncodeError, match=r"metadata score .* a float, .* None"):
        Codec().encode("s-1", NewEvent("T", {}, {"score": float("nan")}))


def test_json_metadata_reads_back_as_given() -> None:
    meta = {"s": "x", "i": 1, "f": 1.5, "b": True, "n": None, "l": [1, {"k": "v"}], "d": {"e": []}}
    encoded = Codec().encode("s-1", NewEvent("T", {}, meta))
    assert encoded.metadata is not None
    assert msgspec.json.decode(encoded.metadata) == meta


def test_metadata_must_encode() -> None:
    with pytest.raises(chronik.errors.EventEncodeError, match="cannot be encoded"):
        Codec().encode("s-1", NewEvent("T", {}, {"when": object()}))


def test_a_payload_is_checked_against_its_registered_type_upcasters_included() -> None:
    registry = EventRegistry()

    @registry.event("Opened", version=2)
    class Opened(msgspec.Struct, frozen=True):
        owner: str
        currency: str

    @registry.upcaster("Opened", from_version=1)
    def add_currency(data: dict[str, Any]) -> dict[str, Any]:
        return {**data, "currency": "EUR"}

    codec = Codec(registry)
    codec.encode("acc-1", NewEvent("Opened", {"owner": "ada"}, schema_version=1))  # fits once upcast
    with pytest.raises(chronik.errors.EventValidationError, match=r"\$\.owner") as caught:
        codec.encode("acc-1", NewEvent("Opened", {"owner": 1}, schema_version=1))
    copy = pickle.loads(pickle.dumps(caught.value))
    assert (copy.stream_id, copy.type, str(copy)) == ("acc-1", "Opened", str(caught.value))
    assert "── EventValidationError " in (chronik.errors.__doc__ or "")
    codec.encode("acc-1", NewEvent("Opened", {"owner": 1}, schema_version=3))  # newer: its readers check


class Forged(msgspec.Struct, frozen=True):
    mode: str


def test_types_starting_with_a_dollar_are_chronik_s_own() -> None:
    # Deletion events and the audit trail (chronik.lifecycle): never registered, and
    # read as JSON even by a strict registry, so a strict reader of the log does not
    # stop at a deleted stream.
    strict = EventRegistry(strict=True)
    with pytest.raises(RegistryError, match="chronik's own"):
        strict.register(Forged, "$StreamDeleted")
    with chronik.connect("memory://", registry=strict) as store:
        store.delete_stream("order-1", hard=True)
        [tombstone] = store.read_all()
        assert tombstone.data == {"mode": "hard", "version": 0}
