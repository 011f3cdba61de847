"""Encryption at rest: payloads sealed with AES-GCM under keys the application holds.

The application hands chronik a :class:`KeyProvider`: the keys by id, and which one
is current. New writes are sealed with the current key, and the key's id is stored
with each sealed payload, so keys rotate without rewriting anything: add a new key,
make it current, keep the old ones for as long as events sealed with them are read.
:class:`StaticKeys` is the provider for keys held in memory (read from the
environment, a secrets manager, a file); anything with ``current_key_id`` and
``key(key_id)`` is one too (a KMS client, say).

A sealed payload is stored as a small JSON object, so it fits every backend's column
for JSON (PostgreSQL's ``json`` among them) and stays recognisable in ``psql``::

    {"$chronik":"aes-gcm","key":"2025-01","ct":"<base64: nonce, ciphertext, tag>"}

``"zip":true`` says it was compressed (zlib) before it was sealed, ``"pii":true``
that it holds personal data sealed again with subjects' keys (``chronik.personal``),
which tells a reader to load those keys first. Compression alone, without a cipher,
is ``{"$chronik":"zlib","ct":"<base64>"}``; a payload is only stored compressed when
that makes it smaller. The associated data of each seal binds the key id and what
the payload is (an event's data, its metadata, a snapshot), so a sealed value moved
into another place fails to open.

Nothing here does I/O. The ``cryptography`` package (extra ``crypto``) is imported
when a cipher is first built, and its absence is a :class:`ConfigurationError` with
the install command.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
import zlib
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Final, Protocol, TypedDict, runtime_checkable

import msgspec

from chronik.errors import ConfigurationError, DecryptionError, KeyNotFoundError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = [
    "ENV_VAR",
    "Envelope",
    "KeyProvider",
    "Located",
    "Sealer",
    "StaticKeys",
    "Where",
    "aes_gcm",
    "is_sealed",
    "named",
]

ENV_VAR: Final = "CHRONIK_CIPHER_KEYS"
"""Where the command line and the web UI find the cipher's keys (see :meth:`StaticKeys.parse`)."""
NONCE_SIZE: Final = 12  # 96 bits, random per seal: AES-GCM's recommended nonce
_KEY_SIZES: Final = (16, 24, 32)
_MAX_KEY_ID: Final = 64
_PREFIX: Final = b'{"$chronik":'
_PREFIX_TEXT: Final = _PREFIX.decode()


class Located(TypedDict, total=False):
    """Where a sealed payload is, for the error that names it."""

    stream_id: str
    version: int
    type: str


Where = Callable[[], tuple[str, Located]]
"""What names a sealed payload in an error, and locates it: called only on an error."""


def named(text: str, at: Located | None = None) -> Where:
    """A :data:`Where` for a payload named once and for all."""
    found: Located = at if at is not None else {}
    return lambda: (text, found)


@runtime_checkable
class KeyProvider(Protocol):
    """The keys that seal payloads at rest: by id, and which one new writes use."""

    @property
    def current_key_id(self) -> str:
        """The id of the key that seals new writes."""
        ...

    def key(self, key_id: str) -> bytes | None:
        """The AES key (16, 24 or 32 bytes) of ``key_id``, or None if there is none."""
        ...


def _check_key_id(key_id: object) -> str:
    if (
        not isinstance(key_id, str)
        or not key_id
        or len(key_id) > _MAX_KEY_ID
        or not key_id.isprintable()
        or any(c in key_id for c in ":, ")
    ):
        raise ConfigurationError(
            f"a cipher key id must be 1 to {_MAX_KEY_ID} printable characters without ':', ',' "
            f"or spaces, got {key_id!r}"
        )
    return key_id


def _key_bytes(key_id: str, key: object) -> bytes:
    if isinstance(key, str):
        try:
            key = base64.b64decode(key, validate=True)
        except (binascii.Error, ValueError) as err:
            raise ConfigurationError(f"cipher key {key_id!r} is not valid base64: {err}") from err
    if not isinstance(key, bytes) or len(key) not in _KEY_SIZES:
        size = f"{len(key)} bytes" if isinstance(key, bytes) else type(key).__name__
        raise ConfigurationError(
            f"cipher key {key_id!r} must be 16, 24 or 32 bytes (AES-128, -192, -256), got {size}"
        )
    return key


class StaticKeys:
    """A :class:`KeyProvider` over keys held in memory.

    >>> keys = StaticKeys({"2025-01": StaticKeys.new_key()}, current="2025-01")

    Keys are bytes or base64 text; ``current`` may be left out when there is one key.
    """

    def __init__(self, keys: Mapping[str, bytes | str], *, current: str | None = None) -> None:
        if not isinstance(keys, Mapping) or not keys:
            raise ConfigurationError("StaticKeys needs at least one key: {key_id: key}")
        self._keys = {_check_key_id(k): _key_bytes(k, v) for k, v in keys.items()}
        if current is None:
            if len(self._keys) > 1:
                raise ConfigurationError(
                    f"StaticKeys has {len(self._keys)} keys: name the one new writes use with current="
                )
            current = next(iter(self._keys))
        if current not in self._keys:
            raise ConfigurationError(
                f"current key {current!r} is not among the keys ({', '.join(sorted(self._keys))})"
            )
        self._current = current

    @property
    def current_key_id(self) -> str:
        return self._current

    def key(self, key_id: str) -> bytes | None:
        return self._keys.get(key_id)

    @classmethod
    def parse(cls, text: str) -> StaticKeys:
        """Keys from text: ``id:base64key[,id:base64key...]``, the first one current.

        This is the form of ``$CHRONIK_CIPHER_KEYS``, which the command line and the
        web UI read.
        """
        keys: dict[str, str] = {}
        for part in text.split(","):
            key_id, sep, key = part.strip().partition(":")
            if not sep:
                raise ConfigurationError(
                    f"cipher keys must be written id:base64key[,id:base64key...], got {part.strip()!r}"
                )
            if key_id in keys:
                raise ConfigurationError(f"cipher key id {key_id!r} is given twice")
            keys[key_id] = key
        return cls(keys, current=next(iter(keys)))

    @classmethod
    def from_env(cls, name: str = ENV_VAR) -> StaticKeys | None:
        """The keys in the environment variable ``name`` (see :meth:`parse`), None if unset."""
        text = os.environ.get(name, "").strip()
        return cls.parse(text) if text else None

    @staticmethod
    def new_key() -> str:
        """A new random 256-bit key, as base64 text."""
        return base64.b64encode(secrets.token_bytes(32)).decode()

    def __repr__(self) -> str:  # never the keys themselves
        return f"StaticKeys(ids={sorted(self._keys)!r}, current={self._current!r})"


def aes_gcm(key: bytes) -> AESGCM:
    """An AES-GCM cipher of ``key`` (``cryptography``'s), or an install hint."""
    try:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    except ImportError as err:
        raise ConfigurationError(
            "encryption needs the 'cryptography' package: pip install 'chronik[crypto]'"
        ) from err
    return AESGCM(key)


def is_sealed(raw: bytes | str) -> bool:
    """Whether a stored payload is sealed (encrypted or compressed) rather than plain JSON."""
    if type(raw) is bytes:
        return raw.startswith(_PREFIX)
    return isinstance(raw, str) and raw.startswith(_PREFIX_TEXT)


class _Envelope(msgspec.Struct, omit_defaults=True):
    alg: str = msgspec.field(default="", name="$chronik")
    key: str | None = None
    zip: bool = False
    pii: bool = False
    subjects: list[tuple[str, str]] | None = None  # a snapshot's subjects and their key ids
    ct: bytes = b""  # base64 in JSON


_encode_envelope = msgspec.json.Encoder().encode
_envelope_decoder: Final = msgspec.json.Decoder(_Envelope)


class Sealer:
    """Seals and opens stored payloads: compression, then AES-GCM, as configured.

    ``keys`` None: no cipher (payloads are only compressed, if ``compress``).
    ``metadata``: whether metadata is sealed too (it stays clear by default, so
    correlation ids and the like can be read without the keys).
    """

    def __init__(self, keys: KeyProvider | None, *, compress: bool = False, metadata: bool = False) -> None:
        if keys is not None and not isinstance(keys, KeyProvider):
            raise ConfigurationError(
                f"cipher= takes a KeyProvider (such as chronik.cipher.StaticKeys), got {keys!r}"
            )
        self.keys = keys
        self.compress = bool(compress)
        self.metadata = bool(metadata) and keys is not None
        self._ciphers: dict[str, tuple[bytes, AESGCM]] = {}
        if keys is not None:
            self._cipher(_check_key_id(keys.current_key_id), _CURRENT)  # fail now, not on write

    @property
    def active(self) -> bool:
        """Whether writes are sealed at all."""
        return self.keys is not None or self.compress

    def _cipher(self, key_id: str, where: Where) -> AESGCM:
        found = self._ciphers.get(key_id)
        keys = self.keys
        key = None if keys is None else keys.key(key_id)
        if found is not None and found[0] is key:  # the provider's key, unchanged
            return found[1]
        if key is None:
            text, at = where()
            raise KeyNotFoundError(
                f"{text} is sealed with cipher key {key_id!r}, "
                + (
                    "and no cipher is configured (pass cipher= to chronik.connect, "
                    "or set $CHRONIK_CIPHER_KEYS)"
                    if keys is None
                    else f"which the key provider does not have (its current key is {keys.current_key_id!r})"
                ),
                key_id=key_id,
                **at,
            )
        cipher = aes_gcm(_key_bytes(key_id, key))
        self._ciphers[key_id] = (key, cipher)
        return cipher

    def seal(self, plain: bytes, purpose: bytes, *, pii: bool = False) -> bytes:
        """``plain`` as it is stored: sealed, compressed, or (neither configured) itself."""
        zipped = False
        body = plain
        if self.compress:
            packed = zlib.compress(plain)
            if len(packed) < len(plain) * 3 // 4:  # worth it once base64 has added its third
                body, zipped = packed, True
        keys = self.keys
        if keys is None:
            if not zipped:
                return plain
            return _encode_envelope(_Envelope("zlib", pii=pii, ct=body))
        key_id = keys.current_key_id
        nonce = secrets.token_bytes(NONCE_SIZE)
        sealed = self._cipher(key_id, _CURRENT).encrypt(nonce, body, _aad(purpose, key_id))
        return _encode_envelope(_Envelope("aes-gcm", key_id, zipped, pii, ct=nonce + sealed))

    def seal_metadata(self, plain: bytes) -> bytes:
        return self.seal(plain, b"metadata") if self.metadata else plain

    def open(self, stored: bytes | str, purpose: bytes, where: Where) -> tuple[bytes, bool]:
        """The plain JSON of a sealed payload, and whether it holds personal data.

        ``where`` names and locates the payload in errors (the error's ``stream_id``,
        ``version`` and ``type``). A missing key is a :class:`KeyNotFoundError` naming
        its id; a wrong key or altered bytes, a :class:`DecryptionError`.
        """
        envelope = envelope_of(stored, where)
        body = envelope.ct
        if envelope.alg == "aes-gcm":
            key_id = envelope.key
            if key_id is None or len(body) <= NONCE_SIZE:
                text, at = where()
                raise DecryptionError(f"{text} is damaged: its sealed envelope is incomplete", **at)
            cipher = self._cipher(key_id, where)
            from cryptography.exceptions import InvalidTag  # importable: _cipher built one

            try:
                body = cipher.decrypt(body[:NONCE_SIZE], body[NONCE_SIZE:], _aad(purpose, key_id))
            except InvalidTag as err:
                text, at = where()
                raise DecryptionError(
                    f"{text} does not authenticate with cipher key {key_id!r}: the key is wrong "
                    "(same id, other bytes) or the stored bytes were altered",
                    key_id=key_id,
                    **at,
                ) from err
        elif envelope.alg != "zlib":
            text, at = where()
            raise DecryptionError(
                f"{text} is sealed with {envelope.alg!r}, which this chronik does not know", **at
            )
        if envelope.zip or envelope.alg == "zlib":
            try:
                body = zlib.decompress(body)
            except zlib.error as err:
                text, at = where()
                raise DecryptionError(f"{text} is damaged: it does not decompress ({err})", **at) from err
        return body, envelope.pii

    def open_metadata(self, stored: bytes | str, where: Where) -> bytes:
        return self.open(stored, b"metadata", where)[0]


Envelope = _Envelope
encode_envelope = _encode_envelope


def envelope_of(stored: bytes | str, where: Where) -> _Envelope:
    try:
        return _envelope_decoder.decode(stored)
    except (msgspec.DecodeError, msgspec.ValidationError) as err:
        text, at = where()
        raise DecryptionError(f"{text} is damaged: its sealed envelope does not parse ({err})", **at) from err


def carries_personal_data(stored: bytes | str) -> bool:
    """Whether a sealed payload says it holds personal data (without opening it)."""
    try:
        return _envelope_decoder.decode(stored).pii
    except (msgspec.DecodeError, msgspec.ValidationError):
        return False


_CURRENT: Final = named("the current key")


def _aad(purpose: bytes, key_id: str) -> bytes:
    return b"chronik:" + purpose + b":" + key_id.encode()
