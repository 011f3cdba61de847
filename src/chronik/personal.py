"""Crypto-shredding: personal data sealed with its data subject's own key.

An event type declares which of its fields hold a data subject's personal data, and
which field names the subject::

    class CustomerRegistered(msgspec.Struct, frozen=True):
        customer_id: str
        name: Annotated[str, PersonalData(subject="customer_id")]
        age: Annotated[int, PersonalData(subject="customer_id")] = 0

Each such field is stored sealed (AES-GCM) with the subject's key, which lives in a
key store (``chronik.store.SubjectKeyStore``: by default a table, bucket or dict of
the store itself). Forgetting the subject destroys the key: from then on the field
reads as its *redacted value* everywhere, while the rest of the event, and the log's
order and versions, stay as they were.

The redacted value of a field is, in this order: the ``redacted=`` given to its
``PersonalData``; :data:`REDACTED` (the string ``"[redacted]"``) when the field's type
admits a ``str``; the field's declared default. A personal field with none of these
is refused when its type is registered (a forgotten ``int`` must not read as ``None``
in a field that cannot hold it). Which fields read redacted is told exactly by
``RecordedEvent.redacted``, whatever their values.

A sealed field is stored in the event's JSON as an object in place of the value::

    "name": {"$pii":"customer-7","key":"Xq3v9Q","ct":"<base64: nonce, ciphertext, tag>"}

``key`` is the id of the subject's key when the field was sealed: a subject that is
forgotten, and then written about again, gets a new key with a new id, and what was
sealed with the old one stays forgotten. The subject id itself is stored in clear
(it is how the key is found): make it an opaque id, never an e-mail address.

Nothing here does I/O: stores load the keys (``chronik.backend.unlock_events``) and
the codec seals and opens with them.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import secrets
import typing
import uuid
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Final, Protocol

import msgspec

from chronik.cipher import NONCE_SIZE, aes_gcm
from chronik.errors import DecryptionError, EventEncodeError, InvalidInputError, RegistryError
from chronik.events import unprintable

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = [
    "MAX_SUBJECT_LENGTH",
    "REDACTED",
    "KeyRing",
    "PersonalData",
    "PersonalField",
    "SubjectKey",
    "new_subject_key",
    "personal_fields",
    "subject_text",
    "validate_subject",
    "validate_subjects",
    "wrapped_subjects",
]

REDACTED: Final = "[redacted]"
"""What a forgotten subject's ``str`` field reads as (unless its ``PersonalData`` says otherwise)."""
MAX_SUBJECT_LENGTH: Final = 200
KEY_SIZE: Final = 32  # AES-256
_NO_VALUE: Final[Any] = object()
_MARKER: Final = b'{"$pii":'
_MARKER_TEXT: Final = _MARKER.decode()
# The subject of each sealed field, as the JSON string it is stored as. A '{"$pii":'
# can only be the start of an object: inside a JSON string its quotes are escaped.
_SUBJECT_OF: Final = re.compile(rb'\{"\$pii":("(?:[^"\\]|\\.)*")')
_SUBJECT_OF_TEXT: Final = re.compile(r'\{"\$pii":("(?:[^"\\]|\\.)*")')


@dataclasses.dataclass(frozen=True)
class PersonalData:
    """Marks a field of an event type as personal data of the subject named by the field
    ``subject`` (``Annotated[str, PersonalData(subject="customer_id")]``).

    ``redacted`` is what the field reads as once the subject is forgotten (see the
    module's docstring for the default).
    """

    subject: str
    redacted: Any = _NO_VALUE

    def __post_init__(self) -> None:
        if not isinstance(self.subject, str) or not self.subject:
            raise RegistryError(f"PersonalData(subject=...) names a field, got {self.subject!r}")


class SubjectKey(msgspec.Struct, frozen=True):
    """A data subject's key: its id (stored with what it sealed) and its 32 bytes."""

    subject: str
    key_id: str
    key: bytes

    def __repr__(self) -> str:  # never the key itself
        return f"SubjectKey(subject={self.subject!r}, key_id={self.key_id!r})"


class KeyRing(Protocol):
    """The subjects' keys a read has loaded: a dict ``{subject: SubjectKey}`` will do."""

    def get(self, subject: str, /) -> SubjectKey | None: ...


def new_subject_key(subject: str) -> SubjectKey:
    """A new random key for ``subject``, with a new short id."""
    return SubjectKey(subject, secrets.token_urlsafe(6), secrets.token_bytes(KEY_SIZE))


def validate_subject(subject: object) -> str:
    """``subject`` if it is a valid subject id, else :class:`InvalidInputError`."""
    if not isinstance(subject, str) or not subject or len(subject) > MAX_SUBJECT_LENGTH:
        raise InvalidInputError(
            f"a subject id must be a str of 1 to {MAX_SUBJECT_LENGTH} characters, got {subject!r}"
        )
    if not subject.isprintable():
        raise InvalidInputError(f"subject id {subject!r} is refused: {unprintable(subject)}")
    return subject


def validate_subjects(subjects: object) -> list[str]:
    """The distinct subject ids of a collection, in order, each validated."""
    if isinstance(subjects, (str, bytes)) or not isinstance(subjects, Iterable):
        raise InvalidInputError(f"subjects must be a collection of str, got {type(subjects).__name__}")
    return list(dict.fromkeys(validate_subject(s) for s in subjects))


def subject_text(value: object, where: str) -> str:
    """A subject field's value as the subject id (a str, an int or a UUID)."""
    if isinstance(value, str):
        text = value
    elif isinstance(value, uuid.UUID) or (isinstance(value, int) and not isinstance(value, bool)):
        text = str(value)
    else:
        raise EventEncodeError(f"{where} must hold a subject id (a str, an int or a UUID), got {value!r}")
    try:
        return validate_subject(text)
    except InvalidInputError as err:
        raise EventEncodeError(f"{where}: {err}") from err


class PersonalField(msgspec.Struct, frozen=True):
    """One personal field of a registered type, by the names it is stored under."""

    name: str
    """The field's name in the stored JSON."""
    subject: str
    """The stored name of the field that holds the subject id."""
    attribute: str
    subject_attribute: str
    redacted: bytes
    """The redacted value, as JSON."""


def _admits_str(tp: Any) -> bool:
    if tp is str or tp is Any:
        return True
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _admits_str(typing.get_args(tp)[0])
    if origin is typing.Union or type(tp).__name__ == "UnionType":
        return any(_admits_str(arg) for arg in typing.get_args(tp))
    if origin is typing.Literal:
        return False
    return False


class _Field(typing.NamedTuple):
    attribute: str
    name: str
    hint: Any
    default: Any


def _fields(cls: type) -> list[_Field]:
    hints = typing.get_type_hints(cls, include_extras=True)
    if issubclass(cls, msgspec.Struct):
        return [
            _Field(
                f.name,
                f.encode_name,
                hints.get(f.name, f.type),
                _NO_VALUE
                if f.default is msgspec.NODEFAULT and f.default_factory is msgspec.NODEFAULT
                else (f.default if f.default is not msgspec.NODEFAULT else f.default_factory()),
            )
            for f in msgspec.structs.fields(cls)
        ]
    found = []
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]  # registered: a dataclass
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = _NO_VALUE
        found.append(_Field(f.name, f.name, hints.get(f.name), default))
    return found


def _marks(hint: Any) -> list[PersonalData]:
    if typing.get_origin(hint) is not typing.Annotated:
        return []
    return [m for m in typing.get_args(hint)[1:] if isinstance(m, PersonalData)]


def personal_fields(cls: type, name: str) -> tuple[PersonalField, ...]:
    """The personal fields ``cls`` declares, checked (``name`` is its registered type)."""
    fields = _fields(cls)
    by_attribute = {f.attribute: f for f in fields}
    found = []
    for field in fields:
        marks = _marks(field.hint)
        if not marks:
            continue
        if len(marks) > 1:
            raise RegistryError(f"{name}.{field.attribute} is marked PersonalData more than once")
        mark = marks[0]
        subject = by_attribute.get(mark.subject)
        where = f"{name}.{field.attribute}"
        if subject is None:
            raise RegistryError(
                f"{where} is personal data of the subject in field {mark.subject!r}, which "
                f"{cls.__qualname__} does not have"
            )
        if _marks(subject.hint):
            raise RegistryError(
                f"{where} names {mark.subject!r} as its subject, which is personal data itself: "
                "a subject id is stored in clear (it finds the key), so make it an opaque id"
            )
        if mark.redacted is not _NO_VALUE:
            value = mark.redacted
        elif _admits_str(field.hint):
            value = REDACTED
        elif field.default is not _NO_VALUE:
            value = field.default
        else:
            raise RegistryError(
                f"{where} is personal data but has no value to read as once its subject is forgotten: "
                f"give it a default, PersonalData(..., redacted=...), or a type that admits str "
                f"(it would read as {REDACTED!r})"
            )
        try:
            redacted = msgspec.json.encode(value)
        except (TypeError, msgspec.EncodeError) as err:
            raise RegistryError(f"the redacted value of {where} cannot be encoded as JSON: {err}") from err
        found.append(PersonalField(field.name, subject.name, field.attribute, subject.attribute, redacted))
    return tuple(found)


def wrapped_subjects(plain: bytes | str) -> set[str]:
    """The subjects whose sealed fields a plain JSON payload holds."""
    if type(plain) is bytes:
        if _MARKER not in plain:
            return set()
        found = _SUBJECT_OF.findall(plain)
    else:
        assert isinstance(plain, str)
        if _MARKER_TEXT not in plain:
            return set()
        found = [s.encode() for s in _SUBJECT_OF_TEXT.findall(plain)]
    return {msgspec.json.decode(s) for s in found}


def has_wrappers(plain: bytes | str) -> bool:
    """Whether a plain JSON payload may hold sealed personal fields (a quick look)."""
    return (_MARKER in plain) if type(plain) is bytes else (_MARKER_TEXT in plain)


class Wrapper(msgspec.Struct, frozen=True):
    """A sealed personal field as stored."""

    subject: str = msgspec.field(name="$pii")
    key: str = ""
    ct: bytes = b""


_wrapper_of: Final = msgspec.convert


def as_wrapper(value: object) -> Wrapper | None:
    """``value`` (a field of a decoded payload) as a sealed field, or None if it is not one."""
    if type(value) is not dict or "$pii" not in value:
        return None
    try:
        return _wrapper_of(value, Wrapper)
    except msgspec.ValidationError:
        return None


@functools.lru_cache(maxsize=1024)
def _cipher_of(key: SubjectKey) -> tuple[AESGCM, bytes]:
    """A subject key's cipher and associated data, made once per key (a read of a
    thousand events of one subject opens them all with one cipher object)."""
    return aes_gcm(key.key), b"chronik:pii:" + msgspec.json.encode([key.subject, key.key_id])


def seal_field(key: SubjectKey, value_json: bytes) -> Wrapper:
    """The sealed form of one field's JSON."""
    cipher, aad = _cipher_of(key)
    nonce = secrets.token_bytes(NONCE_SIZE)
    return Wrapper(key.subject, key.key_id, nonce + cipher.encrypt(nonce, value_json, aad))


def open_field(key: SubjectKey, wrapper: Wrapper, where: Callable[[], str]) -> bytes:
    """The JSON of a sealed field (sealed with ``key``: same subject, same key id), or
    :class:`DecryptionError` if it does not authenticate; ``where()`` names the field."""
    from cryptography.exceptions import InvalidTag

    body = wrapper.ct
    cipher, aad = _cipher_of(key)
    try:
        if len(body) <= NONCE_SIZE:
            raise InvalidTag
        return cipher.decrypt(body[:NONCE_SIZE], body[NONCE_SIZE:], aad)
    except InvalidTag as err:
        raise DecryptionError(
            f"{where()}: personal data of subject {wrapper.subject!r} does not authenticate with its "
            f"key {wrapper.key!r} (the key store holds other bytes under that id, or the stored bytes "
            "were altered)",
            key_id=wrapper.key,
        ) from err
