"""Event types, their stable names and schema versions, upcasters, and the JSON codec.

Applications declare events as frozen ``msgspec.Struct``s or frozen dataclasses and
register each under a name of their choosing. The name, never the Python import
path, is what is stored, so renaming or moving a class is not a migration.

Upcasters rewrite an old stored payload one schema version up. They are pure
functions on the JSON object, registered by ``(type, from_version)`` and applied on
the read path. The chain for a type must be complete from its oldest upcaster to
the registered version: :meth:`EventRegistry.validate` says so when a store is
opened, not when an old event is first read.

On the way in and out, the codec also seals: an event type's personal fields with
their subjects' keys (``chronik.personal``: crypto-shredding), then the whole payload
with the application's cipher and compression (``chronik.cipher``: encryption at
rest). Both are pure: the store loads the subjects' keys, the codec uses them.
"""

from __future__ import annotations

import dataclasses
import math
import uuid
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Final, TypeVar

import msgspec

from chronik.cipher import KeyProvider, Located, Sealer, is_sealed, named
from chronik.errors import (
    ConfigurationError,
    DecodeError,
    DecryptionError,
    EventDecodeError,
    EventEncodeError,
    EventTooLargeError,
    EventValidationError,
    InvalidEventError,
    RegistryError,
    UnknownEventTypeError,
    UnregisteredEventError,
    UpcastError,
)
from chronik.events import NewEvent, unprintable, uuid7, validate_tags
from chronik.personal import (
    REDACTED,
    KeyRing,
    PersonalField,
    Wrapper,
    as_wrapper,
    has_wrappers,
    open_field,
    personal_fields,
    seal_field,
    subject_text,
    wrapped_subjects,
)

if TYPE_CHECKING:
    from chronik.events import RecordedEvent

__all__ = ["Codec", "EncodedEvent", "EventRegistry", "Upcaster"]

T = TypeVar("T", bound=type)
E = TypeVar("E", bound=DecodeError)
Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
DEFAULT_MAX_EVENT_SIZE: Final = 1024 * 1024
_MAX_TYPE_LENGTH: Final = 200


def _validate_type_name(name: object) -> str:
    if not isinstance(name, str) or not name or len(name) > _MAX_TYPE_LENGTH:
        raise InvalidEventError(f"event type must be a non-empty str of at most 200 characters, got {name!r}")
    if not name.isprintable():
        raise InvalidEventError(f"event type {name!r} is refused: {unprintable(name)}")
    return name


class _EventType:
    __slots__ = ("cls", "decoder", "name", "personal", "version")

    def __init__(self, name: str, cls: type, version: int) -> None:
        self.name = name
        self.cls = cls
        self.version = version
        self.decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder(cls)
        self.personal: tuple[PersonalField, ...] = personal_fields(cls, name)


class EventRegistry:
    """Maps event classes to stable type names and schema versions.

    >>> registry = EventRegistry()
    >>> @registry.event("AccountOpened", version=1)
    ... class AccountOpened(msgspec.Struct, frozen=True):
    ...     owner: str

    ``strict=True`` makes reading an unregistered type an error instead of returning
    its raw JSON value. Type names starting with ``$`` are chronik's own (such as
    ``$StreamDeleted``, see ``chronik.lifecycle``): they cannot be registered, and they
    read as their JSON value in strict mode too.
    """

    def __init__(self, *, strict: bool = False) -> None:
        self.strict = strict
        self._by_name: dict[str, _EventType] = {}
        self._by_class: dict[type, _EventType] = {}
        self._upcasters: dict[tuple[str, int], Upcaster] = {}
        self.has_personal_data = False
        """Whether a registered type declares personal fields (``chronik.personal``)."""

    def decoder_of(self, name: str) -> tuple[int, msgspec.json.Decoder[Any]] | None:
        """The schema version and typed decoder of a registered type name, else None."""
        entry = self._by_name.get(name)
        return None if entry is None else (entry.version, entry.decoder)

    def event(self, name: str, *, version: int = 1) -> Callable[[T], T]:
        """Class decorator: register the class under ``name`` at schema ``version``."""

        def decorate(cls: T) -> T:
            self.register(cls, name, version=version)
            return cls

        return decorate

    def register(self, cls: type, name: str | None = None, *, version: int = 1) -> None:
        """Register ``cls`` (a frozen msgspec Struct or frozen dataclass) as ``name``."""
        name = _validate_type_name(name if name is not None else cls.__name__)
        if name.startswith("$"):
            raise RegistryError(f"event type {name!r}: names starting with '$' are chronik's own")
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise RegistryError(f"schema version of {name!r} must be an int >= 1, got {version!r}")
        if isinstance(cls, type) and issubclass(cls, msgspec.Struct):
            if not cls.__struct_config__.frozen:
                raise RegistryError(f"{cls.__qualname__} must be declared frozen=True")
        elif dataclasses.is_dataclass(cls) and isinstance(cls, type):
            params = getattr(cls, "__dataclass_params__", None)
            if params is None or not params.frozen:
                raise RegistryError(f"{cls.__qualname__} must be a frozen dataclass")
        else:
            raise RegistryError(f"{cls!r} is not a msgspec.Struct or dataclass; events must be one of those")
        if name in self._by_name and self._by_name[name].cls is not cls:
            raise RegistryError(
                f"event type {name!r} is already registered to {self._by_name[name].cls.__qualname__}"
            )
        if cls in self._by_class and self._by_class[cls].name != name:
            raise RegistryError(f"{cls.__qualname__} is already registered as {self._by_class[cls].name!r}")
        entry = _EventType(name, cls, version)
        self._by_name[name] = entry
        self._by_class[cls] = entry
        self.has_personal_data = self.has_personal_data or bool(entry.personal)

    def personal_fields(self, name: str) -> tuple[PersonalField, ...]:
        """The personal fields of the registered type ``name`` (none if it has none)."""
        entry = self._by_name.get(name)
        return () if entry is None else entry.personal

    def upcaster(self, type: str, *, from_version: int) -> Callable[[Upcaster], Upcaster]:
        """Decorator: register a function that rewrites ``type``'s payload one version up."""

        def decorate(fn: Upcaster) -> Upcaster:
            self.add_upcaster(type, from_version, fn)
            return fn

        return decorate

    def add_upcaster(self, type: str, from_version: int, fn: Upcaster) -> None:
        """Register ``fn`` to rewrite ``type`` from ``from_version`` to ``from_version + 1``."""
        _validate_type_name(type)
        if isinstance(from_version, bool) or not isinstance(from_version, int) or from_version < 1:
            raise RegistryError(f"from_version must be an int >= 1, got {from_version!r}")
        key = (type, from_version)
        if key in self._upcasters:
            raise RegistryError(f"an upcaster for {type!r} from version {from_version} exists already")
        self._upcasters[key] = fn

    def validate(self) -> None:
        """Raise :class:`RegistryError` if an upcaster chain has a gap or no target."""
        chains: dict[str, list[int]] = {}
        for type_name, from_version in self._upcasters:
            chains.setdefault(type_name, []).append(from_version)
        for type_name, froms in sorted(chains.items()):
            entry = self._by_name.get(type_name)
            if entry is None:
                raise RegistryError(
                    f"upcasters are registered for {type_name!r}, which is not a registered event type"
                )
            froms.sort()
            if froms[-1] >= entry.version:
                raise RegistryError(
                    f"upcaster for {type_name!r} from version {froms[-1]} goes past its "
                    f"registered schema version {entry.version}"
                )
            missing = sorted(set(range(froms[0], entry.version)) - set(froms))
            if missing:
                raise RegistryError(
                    f"upcaster chain for {type_name!r} has a gap: no upcaster from version "
                    f"{', '.join(map(str, missing))} (chain runs {froms[0]} -> {entry.version})"
                )

    def type_of(self, cls: type) -> tuple[str, int]:
        """The registered ``(name, schema_version)`` of ``cls``."""
        entry = self._by_class.get(cls)
        if entry is None:
            raise UnregisteredEventError(
                f"{cls.__qualname__} is not a registered event type; register it with "
                f"registry.register({cls.__qualname__}, 'Name') or @registry.event('Name')"
            )
        return entry.name, entry.version

    def class_of(self, name: str) -> type | None:
        """The class registered as ``name``, if any."""
        entry = self._by_name.get(name)
        return entry.cls if entry else None

    @property
    def names(self) -> list[str]:
        """Registered type names, sorted."""
        return sorted(self._by_name)

    def new_event(
        self,
        event: object,
        *,
        metadata: Mapping[str, Any] | None = None,
        event_id: uuid.UUID | None = None,
        tags: Collection[str] = (),
    ) -> NewEvent:
        """Wrap a registered event object with metadata, a chosen event id and/or tags."""
        name, version = self.type_of(type(event))
        return NewEvent(name, event, metadata, event_id, version, validate_tags(tags))

    def upcast(self, name: str, from_version: int, data: dict[str, Any]) -> dict[str, Any]:
        """Apply the upcaster chain to a raw payload stored at ``from_version``."""
        entry = self._by_name[name]
        for v in range(from_version, entry.version):
            fn = self._upcasters.get((name, v))
            if fn is None:
                raise UpcastError(
                    f"an upcaster is missing from v{v} to v{v + 1} of {name!r} (its registered "
                    f"schema version is {entry.version}); register one with "
                    f"@registry.upcaster({name!r}, from_version={v})",
                    type=name,
                )
            data = fn(data)
            if not isinstance(data, dict):
                raise UpcastError(
                    f"upcaster for {name!r} from version {v} returned {type(data).__name__}, not a dict",
                    type=name,
                )
        return data


class EncodedEvent(msgspec.Struct, frozen=True):
    """An event ready to store: its id, type, schema version and JSON bytes."""

    event_id: uuid.UUID
    type: str
    schema_version: int
    data: bytes
    metadata: bytes | None
    tags: tuple[str, ...] = ()
    """Sorted, without repeats (see ``validate_tags``)."""


_json_decode = msgspec.json.decode
_meta_decoder: Final = msgspec.json.Decoder(dict[str, Any])


class Codec:
    """Encodes events for a store and decodes what it reads, using a registry.

    ``sealer`` seals payloads at rest (off until :meth:`protect` is called);
    ``subject_keys`` is the key store of the subjects' keys (``chronik.store.SubjectKeyStore``
    or its asyncio twin), which a store sets to its own and ``chronik.connect(...,
    subject_keys=...)`` replaces. The codec never calls it: stores load keys before they
    encode (:func:`chronik.backend.write_keys`) and after they read
    (:func:`chronik.backend.unlock_events`).
    """

    def __init__(
        self, registry: EventRegistry | None = None, *, max_event_size: int = DEFAULT_MAX_EVENT_SIZE
    ) -> None:
        self.registry = registry if registry is not None else EventRegistry()
        self.registry.validate()
        if isinstance(max_event_size, bool) or not isinstance(max_event_size, int) or max_event_size < 1:
            raise InvalidEventError(f"max_event_size must be a positive int, got {max_event_size!r}")
        self.max_event_size = max_event_size
        self._encoder = msgspec.json.Encoder()
        self.sealer = Sealer(None)
        self.subject_keys: Any = None
        self._shredding = False

    # -- configuration ---------------------------------------------------------------

    def protect(
        self, *, cipher: KeyProvider | None = None, compress: bool = False, encrypt_metadata: bool = False
    ) -> None:
        """Seal what is written from now on: with ``cipher``'s current key (AES-GCM),
        compressed first if ``compress``, metadata too if ``encrypt_metadata``. What was
        stored before stays readable: plain payloads are recognised as such."""
        if encrypt_metadata and cipher is None:
            raise ConfigurationError("encrypt_metadata=True needs a cipher= to encrypt with")
        self.sealer = Sealer(cipher, compress=compress, metadata=encrypt_metadata)

    @property
    def shredding(self) -> bool:
        """Whether reads load subjects' keys: the registry declares personal fields, or
        shredding was switched on (to read personal data without the types, as the
        command line does)."""
        return self._shredding or self.registry.has_personal_data

    @shredding.setter
    def shredding(self, on: bool) -> None:
        self._shredding = bool(on)

    def subjects_to_write(self, events: Iterable[object]) -> set[str]:
        """The subjects whose personal data a batch about to be encoded holds (their
        keys must be loaded, or made, before :meth:`encode`). Bad subject ids are an
        :class:`EventEncodeError` here, before any I/O."""
        registry = self.registry
        if not registry.has_personal_data:
            return set()
        found: set[str] = set()
        for event in events:
            entry = registry._by_class.get(type(event))
            if entry is not None:
                for field in entry.personal:
                    value = getattr(event, field.subject_attribute, None)
                    found.add(subject_text(value, f"{entry.name}.{field.subject_attribute}"))
                continue
            if not isinstance(event, NewEvent):
                continue
            entry = registry._by_name.get(event.type) if isinstance(event.type, str) else None
            if entry is None or not entry.personal:
                continue
            data = event.data
            if isinstance(data, msgspec.Raw):  # JSON as it was read (an import, a copy)
                try:
                    data = _json_decode(data)
                except msgspec.DecodeError:
                    continue  # refused by encode, which says why
            elif not isinstance(data, Mapping):
                data = msgspec.to_builtins(data)
            if not isinstance(data, Mapping):
                continue  # refused by encode, which says why
            for field in entry.personal:
                if field.name in data:
                    found.add(subject_text(data.get(field.subject), f"{entry.name}.{field.subject}"))
        return found

    # -- writing ---------------------------------------------------------------------

    def encode(
        self,
        stream_id: str,
        event: object,
        trace: Mapping[str, str] | None = None,
        keys: KeyRing | None = None,
    ) -> EncodedEvent:
        """Turn a registered event object or :class:`NewEvent` into stored form.

        ``trace``: the W3C trace context of the append (``traceparent``,
        ``tracestate``), added to the event's metadata unless it sets those keys itself.
        ``keys`` are the subjects' keys that :meth:`subjects_to_write` asked for.
        """
        entry = self.registry._by_class.get(type(event))
        if entry is not None:  # the common case: a registered typed event
            type_name, schema_version = entry.name, entry.version
            check: _EventType | None = entry
            payload: Any = event
            metadata = None
            tags: tuple[str, ...] = ()
            event_id = uuid7()
        elif isinstance(event, NewEvent):
            type_name = _validate_type_name(event.type)
            schema_version = event.schema_version
            if isinstance(schema_version, bool) or not isinstance(schema_version, int) or schema_version < 1:
                raise InvalidEventError(f"schema_version must be an int >= 1, got {schema_version!r}")
            payload = event.data
            metadata = event.metadata
            tags = validate_tags(event.tags) if event.tags else ()
            # Checked against its registered type, when it has one (unregistered names
            # stay free-form): what this store's own readers must be able to decode.
            check = self.registry._by_name.get(type_name)
            given = event.event_id
            if given is None:
                event_id = uuid7()
            elif isinstance(given, uuid.UUID):
                event_id = given
            else:
                raise InvalidEventError(f"event_id must be a uuid.UUID, got {type(given).__name__}")
        else:
            type_name, schema_version = self.registry.type_of(type(event))  # raises
            payload, metadata, event_id, check, tags = event, None, uuid7(), None, ()
        try:
            data = self._encoder.encode(payload)
            given_meta = dict(metadata) if metadata else None
            if trace:
                given_meta = {**trace, **given_meta} if given_meta else dict(trace)
            meta = None if given_meta is None else self._encoder.encode(given_meta)
        except (TypeError, msgspec.EncodeError, ValueError, OverflowError) as err:
            raise EventEncodeError(
                f"event {type_name!r} for stream {stream_id!r} cannot be encoded as JSON: {err}"
            ) from err
        size = len(data) + (len(meta) if meta else 0)
        if size > self.max_event_size:
            raise EventTooLargeError(stream_id, type_name, size, self.max_event_size)
        # Metadata has no declared type to decode into, so a datetime (or a UUID, a
        # tuple, an int key) would silently come back as a str or a list: refused,
        # found by reading it back (cheaper than walking it in Python).
        if meta is not None and _json_decode(meta) != given_meta:
            self._refuse_metadata(stream_id, type_name, given_meta)
        if check is not None:
            self._check(stream_id, check, schema_version, data)
        sealer = self.sealer
        # chronik's own events (deletions, the audit trail: no type of theirs is ever
        # registered) stay clear: a store reads them to know a stream's state (on NATS,
        # its last message), keys or not.
        if (check is not None and check.personal) or (sealer.active and not type_name.startswith("$")):
            pii = False
            if check is not None and check.personal:
                data, pii = self._shred(stream_id, check, data, keys)
            if sealer.active:
                data = sealer.seal(data, b"data", pii=pii)
                if meta is not None:
                    meta = sealer.seal_metadata(meta)
            size = len(data) + (len(meta) if meta else 0)
            if size > self.max_event_size:
                raise EventTooLargeError(stream_id, type_name, size, self.max_event_size)
        return EncodedEvent(event_id, type_name, schema_version, data, meta, tags)

    def _shred(
        self, stream_id: str, entry: _EventType, data: bytes, keys: KeyRing | None
    ) -> tuple[bytes, bool]:
        """``data`` with each personal field sealed with its subject's key."""
        payload = _json_decode(data)
        if not isinstance(payload, dict):
            return data, False
        sealed = False
        for field in entry.personal:
            if field.name not in payload:
                continue
            where = f"{entry.name}.{field.subject_attribute} of the event for stream {stream_id!r}"
            subject = subject_text(payload.get(field.subject), where)
            key = None if keys is None else keys.get(subject)
            if key is None:
                raise ConfigurationError(
                    f"event {entry.name!r} for stream {stream_id!r} holds personal data of subject "
                    f"{subject!r}, whose key was not loaded: the store must load subjects' keys "
                    "before it encodes (chronik.backend.write_keys); nothing was written"
                )
            payload[field.name] = seal_field(key, self._encoder.encode(payload[field.name]))
            sealed = True
        return (self._encoder.encode(payload), True) if sealed else (data, False)

    def _check(self, stream_id: str, entry: _EventType, schema_version: int, data: bytes) -> None:
        """Refuse a payload that would not decode into its registered type when read.

        A typed object is no proof: a Struct or dataclass does not check its fields'
        types when built. So the JSON about to be stored is decoded as a reader
        would, upcasters included for an older schema version; a newer one than this
        process knows is left to the readers that know it.
        """
        if schema_version > entry.version:
            return
        try:
            if schema_version == entry.version:
                entry.decoder.decode(data)
            else:
                raw = _json_decode(data)
                if not isinstance(raw, dict):
                    raise msgspec.ValidationError(f"Expected `object`, got `{type(raw).__name__}`")
                msgspec.convert(self.registry.upcast(entry.name, schema_version, raw), entry.cls)
        except (msgspec.DecodeError, msgspec.ValidationError, UpcastError) as err:
            raise EventValidationError(
                f"event {entry.name!r} for stream {stream_id!r} does not match its registered type "
                f"{entry.cls.__qualname__} (schema version {entry.version}): {err}. Nothing was written",
                stream_id=stream_id,
                type=entry.name,
            ) from err

    def _refuse_metadata(self, stream_id: str, type_name: str, metadata: Any) -> None:
        """Refuse metadata that JSON would not hand back as given, naming the part.

        Refusing is the honest choice: guessing which strings were datetimes on the
        way back would turn the ISO strings that callers pass on purpose into
        datetimes.
        """
        found = _unfaithful(metadata, "")
        if found is None:  # unequal for a reason not worth refusing
            return
        path, value, is_key = found
        if is_key:
            back: Any = next(iter(_json_decode(self._encoder.encode({value: None}))))
            what, hint = f"metadata key {value!r}{f' in {path}' if path else ''}", "use str keys"
        else:
            back = _json_decode(self._encoder.encode(value))
            what, hint = f"metadata {path}", _HINTS.get(type(value).__name__, "convert it to one of them")
        raise EventEncodeError(
            f"{what} of event {type_name!r} for stream {stream_id!r} is {_a(type(value).__name__)}, "
            f"which would read back as {_a(type(back).__name__)} ({back!r}); {hint}. Metadata holds "
            f"JSON values: str, int, float, bool, None, and lists and dicts of them with str keys"
        )

    def encode_many(
        self,
        stream_id: str,
        events: object,
        trace: Mapping[str, str] | None = None,
        keys: KeyRing | None = None,
    ) -> list[EncodedEvent]:
        """Encode a batch, refusing an empty batch, non-sequences and repeated ids;
        ``trace`` and ``keys`` as for :meth:`encode`."""
        if isinstance(events, (str, bytes, NewEvent)) or not isinstance(events, Iterable):
            raise InvalidEventError(
                f"events for stream {stream_id!r} must be a list of events, got {type(events).__name__}"
            )
        items = list(events)
        encode = self.encode
        encoded = [encode(stream_id, e, trace, keys) for e in items]
        if not encoded:
            raise InvalidEventError(f"append to stream {stream_id!r} needs at least one event")
        # Generated ids are unique by construction; only ids the caller chose can repeat.
        given = given_ids(items)
        if len(set(given)) != len(given):
            raise InvalidEventError(f"the batch for stream {stream_id!r} repeats an event id")
        return encoded

    # -- reading ---------------------------------------------------------------------

    def decode(self, event: RecordedEvent) -> Any:
        """Decode ``event.raw_data``: typed when registered, raw JSON otherwise."""
        # The common case, kept short (private fields: this runs once per event read).
        entry = self.registry._by_name.get(event.type)
        raw = event.raw_data
        if (
            entry is not None
            and event.schema_version == entry.version
            and not entry.personal
            # A sealed payload is never decoded as it is: a type whose fields all have
            # defaults would take the envelope for an event (garbage, not an error).
            and not raw.startswith(_SEALED if type(raw) is bytes else _SEALED_TEXT)  # type: ignore[arg-type]
        ):
            try:
                return entry.decoder.decode(raw)
            except (msgspec.DecodeError, msgspec.ValidationError):
                pass  # the full path below raises the error that names the event
        return self._decode(event, entry)

    def plain_data(self, event: RecordedEvent) -> bytes | str:
        """The event's payload as JSON, as the application wrote it: opened if it was
        sealed at rest, its personal fields opened, or redacted where their subject was
        forgotten. It is ``raw_data`` itself when nothing was sealed."""
        return self._plain(event, self.registry._by_name.get(event.type))[0]

    def redacted_fields(self, event: RecordedEvent) -> tuple[str, ...]:
        """The personal fields of ``event`` that read redacted (their subject was forgotten)."""
        return self._plain(event, self.registry._by_name.get(event.type))[1]

    def subjects_to_unlock(self, event: RecordedEvent) -> set[str]:
        """The subjects whose keys reading ``event`` needs (a quick look at its payload;
        a payload that cannot be opened needs none: reading it raises the error)."""
        raw = event.raw_data
        if is_sealed(raw):
            try:
                body, pii = self.sealer.open(raw, b"data", _NOWHERE)
            except DecodeError:
                return set()
            return wrapped_subjects(body) if pii else set()
        return wrapped_subjects(raw)

    def live_subjects(self, event: RecordedEvent) -> set[str]:
        """The subjects whose personal data ``event`` holds readable (not forgotten):
        what a state folded from it holds, and a snapshot of that state is sealed with."""
        ring: KeyRing | None = event._keys
        if ring is None:
            return set()
        return {s for s in self.subjects_to_unlock(event) if ring.get(s) is not None}

    def _plain(self, event: RecordedEvent, entry: _EventType | None) -> tuple[bytes | str, tuple[str, ...]]:
        raw = event.raw_data
        if is_sealed(raw):
            body: bytes | str = self.sealer.open(raw, b"data", lambda: (_where(event), _located(event)))[0]
        else:
            body = raw
        if not has_wrappers(body):
            return body, ()
        return self._unshred(event, entry, body)

    def _unshred(
        self, event: RecordedEvent, entry: _EventType | None, body: bytes | str
    ) -> tuple[bytes | str, tuple[str, ...]]:
        """``body`` with each sealed personal field opened, or redacted."""
        try:
            payload = _json_decode(body)
        except msgspec.DecodeError:
            return body, ()  # the decode that follows says what is wrong with it
        if not isinstance(payload, dict):
            return body, ()
        ring: KeyRing | None = event._keys
        fields = {f.name: f for f in entry.personal} if entry is not None else {}
        redacted: list[str] = []
        for name, value in payload.items():
            wrapper = as_wrapper(value)
            if wrapper is None:
                continue
            if ring is None:
                raise _about(
                    event,
                    EventDecodeError,
                    f"{_where(event)} holds personal data of subject {wrapper.subject!r} (field "
                    f"{name!r}), read without its subject's keys: register {event.type!r} with its "
                    "PersonalData fields (or open the store with shredding=True) so that reads load them",
                )
            key = ring.get(wrapper.subject)
            field = fields.get(name)
            if key is not None and key.key_id == wrapper.key:
                payload[name] = msgspec.Raw(_open(key, wrapper, event, name))
            else:  # forgotten: no key, or a newer one made after the old was forgotten
                payload[name] = msgspec.Raw(field.redacted if field is not None else _REDACTED_JSON)
                redacted.append(field.attribute if field is not None else name)
        return self._encoder.encode(payload), tuple(redacted)

    def _decode(self, event: RecordedEvent, entry: _EventType | None) -> Any:
        # The slow path: anything but a registered type at its current schema version,
        # and every failure. Each failure says which of three things went wrong: the
        # payload never fitted the version it was stored at, an upcaster is missing or
        # incomplete, or the event was written by newer code. Sealed payloads and
        # personal fields are opened first (a missing or wrong key is its own error).
        where = _where(event)
        plain = self._plain(event, entry)[0]
        if entry is None:
            if self.registry.strict and not event.type.startswith("$"):
                raise _about(event, UnknownEventTypeError, f"{where} is not registered (strict registry)")
            try:
                return _json_decode(plain)
            except msgspec.DecodeError as err:
                raise _about(
                    event, EventDecodeError, f"{where} is stored with a payload that is not JSON: {err}"
                ) from err
        current = entry.version
        stored = event.schema_version
        if stored == current:
            try:
                return entry.decoder.decode(plain)
            except (msgspec.DecodeError, msgspec.ValidationError) as err:
                name = entry.cls.__qualname__
                raise _about(
                    event,
                    EventDecodeError,
                    f"{where} was stored with a payload that never fitted {name} v{current}: {err}; "
                    f"it was written unchecked (by another program, or before chronik checked "
                    f"payloads on append). If {name} itself has changed since, give it schema "
                    f"version {current + 1} and an upcaster from v{current}",
                ) from err
        where = f"{where} (stored at schema version {stored})"
        if stored > current:
            raise _about(
                event,
                UpcastError,
                f"{where} is newer than the registered {current}: it was written by newer code",
            )
        try:
            raw = _json_decode(plain)
        except msgspec.DecodeError as err:
            raise _about(
                event, EventDecodeError, f"{where} is stored with a payload that is not JSON: {err}"
            ) from err
        if not isinstance(raw, dict):
            raise _about(
                event,
                UpcastError,
                f"{where}: upcasters need a JSON object, stored payload is {type(raw).__name__}",
            )
        try:
            upcast = self.registry.upcast(event.type, stored, raw)
        except UpcastError as err:
            raise _about(event, UpcastError, f"{where}: {err}") from err
        except Exception as err:
            raise _about(event, UpcastError, f"upcasting {where} failed: {err!r}") from err
        try:
            return msgspec.convert(upcast, entry.cls)
        except msgspec.ValidationError as err:
            raise _about(
                event,
                UpcastError,
                f"{where} does not fit {entry.cls.__qualname__} v{current} once upcast: {err}; an "
                f"upcaster is missing or incomplete from v{stored} to v{current} (or the payload "
                f"was written unchecked at v{stored})",
            ) from err

    def plain_metadata(self, event: RecordedEvent) -> bytes | str | None:
        """The event's metadata as JSON, opened if it was sealed at rest (None if it has none)."""
        raw = event.raw_metadata
        if raw and is_sealed(raw):
            return self.sealer.open_metadata(
                raw, lambda: (f"the metadata of {_where(event)}", _located(event))
            )
        return raw

    def decode_metadata(self, event: RecordedEvent) -> dict[str, Any]:
        """Decode ``event.raw_metadata`` into a dict (empty when there is none)."""
        if not event.raw_metadata:
            return {}
        plain = self.plain_metadata(event)
        assert plain is not None
        try:
            return _meta_decoder.decode(plain)
        except (msgspec.DecodeError, msgspec.ValidationError) as err:
            raise EventDecodeError(
                f"metadata of {event.type!r} at {event.stream_id!r} version {event.version} "
                f"no longer decodes: {err}",
                stream_id=event.stream_id,
                version=event.version,
                type=event.type,
            ) from err


_JSON_SCALARS: Final = (str, int, float, type(None))  # bool is an int; enums of them compare equal
_HINTS: Final = {
    "datetime": "pass an ISO string, e.g. .isoformat()",
    "date": "pass an ISO string, e.g. .isoformat()",
    "time": "pass an ISO string, e.g. .isoformat()",
    "UUID": "pass str() of it",
    "tuple": "pass a list",
    "float": "pass a finite number, or a str",
}


def _unfaithful(value: object, path: str) -> tuple[str, object, bool] | None:
    """The first part of ``value`` that JSON would not hand back equal: (path, value, is_key)."""
    if isinstance(value, float) and not math.isfinite(value):
        return path, value, False  # JSON has no NaN or infinity: it would read back as None
    if isinstance(value, _JSON_SCALARS):
        return None
    if isinstance(value, list):
        for i, item in enumerate(value):
            found = _unfaithful(item, f"{path}[{i}]")
            if found is not None:
                return found
        return None
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                return path, key, True
            found = _unfaithful(item, f"{path}.{key}" if path else key)
            if found is not None:
                return found
        return None
    return path, value, False


def _a(noun: str) -> str:
    return f"{'an' if noun[:1] in 'aeiouAEIO' else 'a'} {noun}"


def _about(event: RecordedEvent, cls: type[E], message: str) -> E:
    return cls(message, stream_id=event.stream_id, version=event.version, type=event.type)


def _where(event: RecordedEvent) -> str:
    return f"event {event.type!r} at {event.stream_id!r} version {event.version}"


def _located(event: RecordedEvent) -> Located:
    return {"stream_id": event.stream_id, "version": event.version, "type": event.type}


def _open(key: Any, wrapper: Wrapper, event: RecordedEvent, name: str) -> bytes:
    try:
        return open_field(key, wrapper, lambda: f"{_where(event)}, field {name!r}")
    except DecryptionError as err:
        raise DecryptionError(str(err), key_id=err.key_id, **_located(event)) from err.__cause__


_NOWHERE: Final = named("an event")
_SEALED: Final = b'{"$chronik":'
_SEALED_TEXT: Final = _SEALED.decode()
_REDACTED_JSON: Final = msgspec.json.encode(REDACTED)


def given_ids(events: Iterable[object]) -> list[uuid.UUID]:
    """The event ids the caller chose (on :class:`NewEvent`s), in order."""
    return [e.event_id for e in events if type(e) is NewEvent and e.event_id is not None]
