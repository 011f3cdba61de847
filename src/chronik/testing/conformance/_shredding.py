"""Conformance: subjects' keys and crypto-shredding, and encryption at rest.

:class:`SubjectKeyTests` holds the store's key store to ``SubjectKeyStore`` /
``AsyncSubjectKeyStore`` (keys made once, read back, destroyed by ``forget``), and
forgetting to what a user relies on: every read path shows the redacted value
afterwards, the rest of each event and the log's order and versions unchanged.
:class:`EncryptionTests` runs on every store: the codec seals payloads at rest, so
a backend only has to store what it is given.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Annotated, Any

import msgspec
import pytest

from chronik import Checkpoint, InvalidInputError, NewEvent, RecordedEvent
from chronik.cipher import StaticKeys
from chronik.codec import EventRegistry
from chronik.errors import DecryptionError, KeyNotFoundError
from chronik.events import StreamWrite
from chronik.personal import REDACTED, PersonalData
from chronik.query import Query
from chronik.store import EventStore
from chronik.testing.bridge import BlockingStore
from chronik.testing.conformance._base import (
    ConformanceBase,
    Deposited,
    OpenStore,
    capabilities,
    event,
    face_of,
    make_registry,
    native,
    needs,
    new_stream,
    run,
)
from chronik.testing.conformance._hooks import _AsyncHook, _SyncHook, _Tally
from chronik.testing.conformance._subscriptions import _Feed
from chronik.testing.conformance._transactions import transaction

__all__ = ["CustomerMoved", "CustomerRegistered", "EncryptionTests", "SubjectKeyTests", "personal_registry"]


class CustomerRegistered(msgspec.Struct, frozen=True):
    """A test event with personal data: ``name`` and ``age`` belong to ``customer``."""

    customer: str
    name: Annotated[str, PersonalData(subject="customer")]
    age: Annotated[int, PersonalData(subject="customer")] = 0
    plan: str = "basic"


class CustomerMoved(msgspec.Struct, frozen=True):
    """A second one, with a field that is not a str and reads as its ``redacted=``."""

    customer: str
    city: Annotated[str, PersonalData(subject="customer")]
    floor: Annotated[int, PersonalData(subject="customer", redacted=-1)]


def personal_registry() -> EventRegistry:
    registry = make_registry()
    registry.register(CustomerRegistered, "CustomerRegistered")
    registry.register(CustomerMoved, "CustomerMoved")
    return registry


def _subject() -> str:
    return new_stream("subject")


@needs("subject_keys")
class SubjectKeyTests(ConformanceBase):
    """``SubjectKeyStore``: each subject's key, made once, destroyed by ``forget``."""

    @pytest.fixture
    def personal(self, open_store: OpenStore) -> EventStore:
        return open_store(registry=personal_registry())

    def test_a_key_is_made_once_and_read_back(self, store: EventStore) -> None:
        face = face_of(store)
        a, b = _subject(), _subject()
        assert face.subject_keys([a, b]) == {}
        made = face.subject_keys([a, b, a], create=True)
        assert set(made) == {a, b}
        assert made[a].subject == a
        assert len(made[a].key) == 32
        assert made[a].key != made[b].key
        assert made[a].key_id != ""
        assert face.subject_keys([a, b], create=True) == made
        assert face.subject_keys([b, _subject()]) == {b: made[b]}
        assert face.subject_keys([]) == {}

    def test_forget_destroys_the_key_and_is_idempotent(self, store: EventStore) -> None:
        face = face_of(store)
        a, b = _subject(), _subject()
        made = face.subject_keys([a, b], create=True)
        face.forget(a)
        assert face.subject_keys([a, b]) == {b: made[b]}
        face.forget(a)  # forgotten already
        face.forget(_subject())  # never known
        again = face.subject_keys([a], create=True)[a]
        assert again.key_id != made[a].key_id
        assert again.key != made[a].key

    def test_a_bad_subject_id_is_refused(self, store: EventStore) -> None:
        face = face_of(store)
        for bad in ["", "a\x00b", "x" * 201]:
            with pytest.raises(InvalidInputError):
                face.subject_keys([bad])
            with pytest.raises(InvalidInputError):
                face.forget(bad)

    def test_racing_writers_get_one_key(self, store: EventStore) -> None:
        face = face_of(store)
        subject = _subject()
        found: list[Any] = []
        errors: list[BaseException] = []
        start = threading.Barrier(8)

        def make() -> None:
            try:
                start.wait()
                found.append(face.subject_keys([subject], create=True)[subject])
            except BaseException as err:
                errors.append(err)

        threads = [threading.Thread(target=make) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert not errors
        assert len(found) == 8
        assert len({(k.key_id, k.key) for k in found}) == 1
        assert face.subject_keys([subject]) == {subject: found[0]}

    def test_personal_fields_are_sealed_and_read_back(self, personal: EventStore) -> None:
        stream, subject = new_stream("customer"), _subject()
        personal.append(stream, [CustomerRegistered(subject, "Ada Lovelace", 36), Deposited(stream, 5)])
        first, second = personal.read_stream(stream)
        assert first.data == CustomerRegistered(subject, "Ada Lovelace", 36)
        assert first.redacted == ()
        assert second.data == Deposited(stream, 5)
        assert b"Ada Lovelace" not in _bytes(first.raw_data)
        assert b"Ada Lovelace" in _bytes(first.plain_data)
        assert subject in face_of(personal).subject_keys([subject])

    def test_after_forget_every_read_shows_the_redacted_value(self, personal: EventStore) -> None:
        stream, subject, other = new_stream("customer"), _subject(), _subject()
        personal.append(
            stream,
            [
                CustomerRegistered(subject, "Ada Lovelace", 36, "gold"),
                CustomerMoved(subject, "London", 3),
                CustomerRegistered(other, "Grace Hopper", 45),
            ],
        )
        before = personal.read_stream(stream)
        face_of(personal).forget(subject)
        redacted = [
            CustomerRegistered(subject, REDACTED, 0, "gold"),
            CustomerMoved(subject, REDACTED, -1),
            CustomerRegistered(other, "Grace Hopper", 45),
        ]
        after = personal.read_stream(stream)
        assert [e.data for e in after] == redacted
        assert [e.redacted for e in after] == [("name", "age"), ("city", "floor"), ()]
        # The log is as it was: same events at the same versions and positions.
        assert [(e.event_id, e.version, e.position, e.checkpoint) for e in after] == [
            (e.event_id, e.version, e.position, e.checkpoint) for e in before
        ]
        assert [e.raw_data for e in after] == [e.raw_data for e in before]
        logged = [e for e in personal.read_all() if e.stream_id == stream]
        assert [e.data for e in logged] == redacted
        assert [e.data for e in personal.read_stream(stream, backwards=True)] == redacted[::-1]
        plain = msgspec.json.decode(after[0].plain_data)
        assert plain == {"customer": subject, "name": REDACTED, "age": 0, "plan": "gold"}
        if "subscriptions" in capabilities(personal):
            with _Feed(personal, categories=["customer"]) as feed:
                seen = _until(feed, stream, 3)
            assert [e.data for e in seen] == redacted
        if "dcb" in capabilities(personal):
            found = face_of(personal).read_query(Query.of(types=["CustomerMoved"]))
            assert [e.data for e in found.events if e.stream_id == stream] == [redacted[1]]

    def test_a_forgotten_subject_written_again_gets_a_new_key(self, personal: EventStore) -> None:
        stream, subject = new_stream("customer"), _subject()
        personal.append(stream, [CustomerRegistered(subject, "Ada", 36)])
        face_of(personal).forget(subject)
        personal.append(stream, [CustomerRegistered(subject, "Ada, again", 37)])
        assert [e.data for e in personal.read_stream(stream)] == [
            CustomerRegistered(subject, REDACTED, 0),
            CustomerRegistered(subject, "Ada, again", 37),
        ]

    def test_the_plain_json_is_opened_and_redacted_too(self, personal: EventStore) -> None:
        stream, subject = new_stream("customer"), _subject()
        personal.append(stream, [CustomerRegistered(subject, "Ada", 36)])
        personal.append(stream, [NewEvent("CustomerRegistered", {"customer": subject, "name": "Ada B."})])
        # What the command line, exports and the web UI show: the JSON as written.
        first, second = personal.read_stream(stream)
        assert msgspec.json.decode(first.plain_data)["name"] == "Ada"
        assert msgspec.json.decode(second.plain_data) == {"customer": subject, "name": "Ada B."}
        face_of(personal).forget(subject)
        first, second = personal.read_stream(stream)
        assert msgspec.json.decode(first.plain_data)["name"] == REDACTED
        assert msgspec.json.decode(second.plain_data) == {"customer": subject, "name": REDACTED}
        assert second.data == CustomerRegistered(subject, REDACTED)

    def test_writes_in_every_way_are_sealed(self, personal: EventStore) -> None:
        subject = _subject()
        streams = [new_stream("customer") for _ in range(4)]
        personal.append_many([StreamWrite(streams[0], [CustomerRegistered(subject, "Ada", 1)])])
        caps = capabilities(personal)
        if "transactions" in caps:
            with transaction(personal) as tx:
                tx.append(streams[1], [CustomerRegistered(subject, "Ada", 2)])
                assert tx.read_stream(streams[1])[0].data.name == "Ada"
        if "dcb" in caps:
            face_of(personal).append_if([CustomerRegistered(subject, "Ada", 3)], None, stream_id=streams[2])
        personal.append(streams[3], [NewEvent("CustomerRegistered", {"customer": subject, "name": "Ada"})])
        written = [e for s in streams for e in personal.read_stream(s)]
        assert written
        for e in written:
            assert b"Ada" not in _bytes(e.raw_data)
            assert e.data.name == "Ada"
        face_of(personal).forget(subject)
        assert {e.data.name for s in streams for e in personal.read_stream(s)} == {REDACTED}

    def test_append_hooks_see_personal_data_opened(self, personal: EventStore) -> None:
        if "append_hooks" not in capabilities(personal):
            pytest.skip("the store on this face runs no append hooks")
        stream, subject = new_stream("customer"), _subject()
        personal.append(stream, [CustomerRegistered(subject, "Ada", 1)])  # caught up on install
        names = _Names("names")
        if isinstance(personal, BlockingStore):
            run(personal, native(personal).add_append_hook(_AsyncHook(names)))
        else:
            personal.add_append_hook(_SyncHook(names))  # type: ignore[attr-defined]
        personal.append(stream, [CustomerRegistered(subject, "Ada B.", 2)])
        assert names.names == ["Ada", "Ada B."]

    def test_a_subject_field_that_is_no_id_is_refused(self, personal: EventStore) -> None:
        stream = new_stream("customer")
        with pytest.raises(InvalidInputError, match="subject id"):
            personal.append(stream, [CustomerRegistered("", "Ada")])
        with pytest.raises(InvalidInputError, match="subject id"):
            personal.append(stream, [NewEvent("CustomerRegistered", {"customer": None, "name": "Ada"})])
        assert personal.read_stream(stream) == []


class EncryptionTests(ConformanceBase):
    """Encryption at rest, on every store: the codec seals, the store keeps what it is given."""

    @pytest.fixture
    def keys(self) -> StaticKeys:
        return StaticKeys({"k1": StaticKeys.new_key()})

    @pytest.fixture
    def sealed(self, store: EventStore, keys: StaticKeys) -> EventStore:
        native(store).codec.protect(cipher=keys, compress=True, encrypt_metadata=True)
        return store

    def test_payloads_and_metadata_are_sealed_and_read_back(self, sealed: EventStore) -> None:
        stream = new_stream()
        secret = "confidential " * 20
        sealed.append(stream, [NewEvent("Noted", {"text": secret}, {"user": "Ada"}), Deposited(stream, 7)])
        first, second = sealed.read_stream(stream)
        assert first.data == {"text": secret}
        assert first.metadata == {"user": "Ada"}
        assert second.data == Deposited(stream, 7)
        for e in (first, second):
            assert _bytes(e.raw_data).startswith(b'{"$chronik":"aes-gcm","key":"k1"')
        assert b"confidential" not in _bytes(first.raw_data)
        assert b"Ada" not in _bytes(first.raw_metadata or b"")
        assert [e.data for e in sealed.read_all() if e.stream_id == stream] == [first.data, second.data]

    def test_keys_rotate(self, sealed: EventStore, keys: StaticKeys) -> None:
        stream = new_stream()
        sealed.append(stream, [event(n=1)])
        old = keys.key("k1")
        assert old is not None
        rotated = StaticKeys({"k2": StaticKeys.new_key(), "k1": old}, current="k2")
        native(sealed).codec.protect(cipher=rotated)
        sealed.append(stream, [event(n=2)])
        read = sealed.read_stream(stream)
        assert [e.data["n"] for e in read] == [1, 2]
        assert [msgspec.json.decode(e.raw_data)["key"] for e in read] == ["k1", "k2"]

    def test_a_missing_key_is_named_and_a_wrong_key_fails_to_authenticate(self, sealed: EventStore) -> None:
        stream = new_stream()
        sealed.append(stream, [event(n=1)])
        codec = native(sealed).codec
        codec.protect(cipher=StaticKeys({"k2": StaticKeys.new_key()}))
        with pytest.raises(KeyNotFoundError, match="'k1'") as missing:
            _ = sealed.read_stream(stream)[0].data
        assert (missing.value.key_id, missing.value.stream_id, missing.value.version) == ("k1", stream, 1)
        codec.protect()  # no cipher at all
        with pytest.raises(KeyNotFoundError, match="no cipher is configured"):
            _ = sealed.read_stream(stream)[0].data
        codec.protect(cipher=StaticKeys({"k1": StaticKeys.new_key()}))  # same id, other bytes
        with pytest.raises(DecryptionError, match="does not authenticate") as wrong:
            _ = sealed.read_stream(stream)[0].data
        assert wrong.value.key_id == "k1"

    def test_plain_events_stay_readable_once_a_cipher_is_on(
        self, store: EventStore, keys: StaticKeys
    ) -> None:
        stream = new_stream()
        store.append(stream, [event(n=1)])
        native(store).codec.protect(cipher=keys)
        store.append(stream, [event(n=2)])
        assert [e.data["n"] for e in store.read_stream(stream)] == [1, 2]


class _Names(_Tally):
    """A tally hook's tally that also keeps the names it was handed, as it read them."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.names: list[str] = []

    def took(self, events: Sequence[RecordedEvent]) -> Checkpoint | None:
        self.names.extend(e.data.name for e in events if e.type == "CustomerRegistered")
        return super().took(events)


def _bytes(raw: bytes | str | None) -> bytes:
    if raw is None:
        return b""
    return raw.encode() if isinstance(raw, str) else raw


def _until(feed: _Feed, stream: str, count: int) -> list[RecordedEvent]:
    """The first ``count`` events of ``stream`` the subscription hands over."""
    found: list[RecordedEvent] = []
    while len(found) < count:
        batch = feed.next_batch(30.0)
        if not batch:
            break
        found.extend(e for e in batch if e.stream_id == stream)
    return found
