"""Encryption at rest in the codec (no I/O): keys, seals, rotation, and the errors a
user meets when a key is missing or wrong. Every backend runs the same through the
conformance suite (``EncryptionTests``); these pin the parts no store sees."""

from __future__ import annotations

import base64

import msgspec
import pytest

from chronik import ConfigurationError, DecryptionError, KeyNotFoundError, NewEvent, StaticKeys
from chronik.cipher import Sealer, is_sealed, named
from chronik.codec import Codec
from chronik.events import RecordedEvent

KEY = StaticKeys.new_key()


def _record(codec: Codec, data: bytes, metadata: bytes | None = None) -> RecordedEvent:
    return RecordedEvent("note-1", 1, 1, "memory", b"\x01" * 16, "Noted", 1, data, metadata, 0, codec)


def test_static_keys_check_what_they_are_given() -> None:
    assert StaticKeys({"k1": KEY}).current_key_id == "k1"
    assert StaticKeys({"k1": base64.b64decode(KEY)}).key("k1") == base64.b64decode(KEY)
    assert StaticKeys({"k1": KEY}).key("other") is None
    with pytest.raises(ConfigurationError, match="at least one key"):
        StaticKeys({})
    with pytest.raises(ConfigurationError, match="name the one new writes use"):
        StaticKeys({"a": KEY, "b": KEY})
    with pytest.raises(ConfigurationError, match="not among the keys"):
        StaticKeys({"a": KEY}, current="b")
    with pytest.raises(ConfigurationError, match="16, 24 or 32 bytes"):
        StaticKeys({"a": base64.b64encode(b"short").decode()})
    with pytest.raises(ConfigurationError, match="not valid base64"):
        StaticKeys({"a": "not base64!"})
    with pytest.raises(ConfigurationError, match="key id"):
        StaticKeys({"a:b": KEY})
    assert KEY not in repr(StaticKeys({"k1": KEY}))


def test_keys_from_text_and_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    other = StaticKeys.new_key()
    keys = StaticKeys.parse(f"new:{other}, old:{KEY}")
    assert keys.current_key_id == "new"
    assert keys.key("old") == base64.b64decode(KEY)
    with pytest.raises(ConfigurationError, match="id:base64key"):
        StaticKeys.parse("just-a-key")
    with pytest.raises(ConfigurationError, match="given twice"):
        StaticKeys.parse(f"a:{KEY},a:{other}")
    monkeypatch.delenv("CHRONIK_CIPHER_KEYS", raising=False)
    assert StaticKeys.from_env() is None
    monkeypatch.setenv("CHRONIK_CIPHER_KEYS", f"k9:{KEY}")
    found = StaticKeys.from_env()
    assert found is not None and found.current_key_id == "k9"


def test_a_seal_binds_its_key_and_purpose() -> None:
    sealer = Sealer(StaticKeys({"k1": KEY}))
    sealed = sealer.seal(b'{"a":1}', b"data")
    assert is_sealed(sealed) and is_sealed(sealed.decode())
    assert not is_sealed(b'{"a":1}')
    assert sealer.open(sealed, b"data", named("x")) == (b'{"a":1}', False)
    assert sealer.seal(b'{"a":1}', b"data") != sealed  # a new nonce each time
    with pytest.raises(DecryptionError, match="does not authenticate"):
        sealer.open(sealed, b"metadata", named("x"))  # moved to another purpose
    envelope = msgspec.json.decode(sealed)
    tampered = bytearray(base64.b64decode(envelope["ct"]))
    tampered[-1] ^= 1
    envelope["ct"] = base64.b64encode(bytes(tampered)).decode()
    with pytest.raises(DecryptionError, match="does not authenticate"):
        sealer.open(msgspec.json.encode(envelope), b"data", named("x"))


def test_compression_is_kept_only_where_it_pays() -> None:
    zipped = Sealer(None, compress=True)
    big = msgspec.json.encode({"text": "the same words " * 200})
    stored = zipped.seal(big, b"data")
    assert is_sealed(stored) and len(stored) < len(big) / 4
    assert zipped.open(stored, b"data", named("x"))[0] == big
    small = b'{"n":1}'
    assert zipped.seal(small, b"data") == small  # not worth it: stored as it is
    assert not Sealer(None).active


def test_the_codec_names_the_missing_key_and_refuses_a_wrong_one() -> None:
    writer = Codec()
    writer.protect(cipher=StaticKeys({"k1": KEY}), encrypt_metadata=True)
    encoded = writer.encode("note-1", NewEvent("Noted", {"text": "secret"}, {"user": "ada"}))
    event = _record(writer, encoded.data, encoded.metadata)
    assert (event.data, event.metadata) == ({"text": "secret"}, {"user": "ada"})
    assert b"secret" not in encoded.data and b"ada" not in (encoded.metadata or b"")
    plain = Codec()
    with pytest.raises(KeyNotFoundError, match="no cipher is configured") as missing:
        _ = _record(plain, encoded.data).data
    assert (missing.value.key_id, missing.value.stream_id, missing.value.version) == ("k1", "note-1", 1)
    wrong = Codec()
    wrong.protect(cipher=StaticKeys({"k1": StaticKeys.new_key()}))
    with pytest.raises(DecryptionError, match="'k1'"):
        _ = _record(wrong, encoded.data).data
    with pytest.raises(KeyNotFoundError, match="metadata"):
        _ = _record(plain, b"{}", encoded.metadata).metadata


def test_a_type_with_only_defaults_never_takes_an_envelope_for_an_event() -> None:
    from chronik.codec import EventRegistry

    registry = EventRegistry()

    @registry.event("Pinged")
    class Pinged(msgspec.Struct, frozen=True):
        note: str = ""

    writer = Codec(registry)
    writer.protect(cipher=StaticKeys({"k1": KEY}))
    encoded = writer.encode("ping-1", Pinged("hello"))
    reader = Codec(registry)  # no cipher: an error, not Pinged("")
    record = RecordedEvent("ping-1", 1, 1, "memory", b"\x01" * 16, "Pinged", 1, encoded.data, None, 0, reader)
    with pytest.raises(KeyNotFoundError):
        _ = record.data


def test_encrypting_metadata_needs_a_cipher() -> None:
    with pytest.raises(ConfigurationError, match="needs a cipher"):
        Codec().protect(encrypt_metadata=True)
    with pytest.raises(ConfigurationError, match="KeyProvider"):
        Codec().protect(cipher="not keys")  # type: ignore[arg-type]
