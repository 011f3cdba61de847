"""What every broker of chronik's shares: messages out, messages in, and the two faces.

A :class:`Message` is one event as it leaves for a broker: the event id is its message
id (consumers dedupe by it), the event's payload as JSON is its body, and headers
carry what a consumer needs without decoding the body (:data:`HEADERS`). A broker
publishes a batch of them in order and returns once it has confirmed every one
(:class:`AsyncPublisher`); the relay saves its checkpoint only after that.

An :class:`InboundMessage` is what a broker delivered for chronik to handle: its id
(the broker's message id, or a stable id of its place in the broker), body and headers;
a :class:`Delivery` is how it is acknowledged or sent to the dead-letter place.

The brokers' clients are asyncio (nats-py, aio-pika, redis.asyncio); a sync
application (a sync store's relay) uses :class:`BlockingPublisher`, which runs the
asyncio publisher on a private event-loop thread, as the NATS store's sync face does.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import string
import threading
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from typing import Any, Final, Literal, Protocol, TypeVar, runtime_checkable

import msgspec

from chronik import _otel, _spans
from chronik._options import redacted
from chronik.errors import BrokerError, ConfigurationError, InvalidInputError, UndecodableMessageError
from chronik.events import RecordedEvent, category_of

__all__ = [
    "HEADERS",
    "AsyncPublisher",
    "AsyncSource",
    "BlockingPublisher",
    "Delivery",
    "InboundMessage",
    "Message",
    "Publisher",
    "Template",
    "broker_error",
    "in_stream_order",
    "message_of",
    "nats_token",
    "redacted",
    "sending",
]

T = TypeVar("T")

TYPE: Final = "chronik-type"
STREAM: Final = "chronik-stream"
VERSION: Final = "chronik-version"
POSITION: Final = "chronik-position"
RECORDED_AT: Final = "chronik-recorded-at"
CORRELATION: Final = "chronik-correlation-id"
CAUSATION: Final = "chronik-causation-id"
EVENT_ID: Final = "chronik-event-id"
TRACE: Final = _otel.TRACE_KEYS
"""The W3C trace context (``traceparent``, ``tracestate``): copied from the event's
metadata keys of the same names."""
HEADERS: Final = (EVENT_ID, TYPE, STREAM, VERSION, POSITION, RECORDED_AT, CORRELATION, CAUSATION, *TRACE)
"""The headers a relayed message carries (correlation, causation and the trace context
only when the event's metadata has them)."""
ERROR: Final = "chronik-error"
"""The header a dead-lettered message carries: why it could not be handled."""


class Message(msgspec.Struct, frozen=True):
    """One event as a broker message (see :func:`message_of`)."""

    id: str
    """The event id: the message id consumers dedupe by."""
    stream_id: str
    category: str
    type: str
    headers: dict[str, str]
    """:data:`HEADERS`; its ``traceparent`` (the event's stored trace context) is the
    parent of the span in which a publisher sends it (:func:`sending`)."""
    body: bytes
    """The event's payload as JSON (as the application's registered type has it now)."""


def message_of(event: RecordedEvent) -> Message:
    """The message the relay publishes for ``event``."""
    headers = {
        EVENT_ID: str(event.event_id),
        TYPE: event.type,
        STREAM: event.stream_id,
        VERSION: str(event.version),
        POSITION: str(event.position),
        RECORDED_AT: event.recorded_at.isoformat(),
    }
    metadata = event.metadata
    for key, header in (("correlation_id", CORRELATION), ("causation_id", CAUSATION)):
        value = metadata.get(key)
        if value is not None:
            headers[header] = str(value)
    headers.update(_otel.trace_of(metadata))
    return Message(
        str(event.event_id),
        event.stream_id,
        category_of(event.stream_id),
        event.type,
        headers,
        msgspec.json.encode(event.data),
    )


Errors = tuple[type[BaseException], ...]


def broker_error(
    err: BaseException, what: str, *, refused: Errors = (), transient: Errors = (), other: Errors = ()
) -> BaseException:
    """The :class:`~chronik.errors.BrokerError` for an error of a broker's client met while
    doing ``what``: not transient for ``refused`` (credentials, a missing queue: trying
    again cannot fix it), transient for ``transient`` and for a lost connection or a
    timeout (the client reconnects), not transient for ``other`` (the client's other
    errors); any other error as it is (a bug is not the broker's)."""
    text = f"{what}: {type(err).__name__}: {err}".rstrip(": ")
    if isinstance(err, refused):
        return BrokerError(text)
    if isinstance(err, (*transient, ConnectionError, TimeoutError, OSError)):
        return BrokerError(text, transient=True)
    if isinstance(err, other):
        return BrokerError(text)
    return err


def sending(
    message: Message, system: str, destination: str, where: Template, **attributes: Any
) -> _spans.MessageSpan:
    """The PRODUCER span of sending ``message`` to ``destination`` (rendered from the
    template ``where``) on the broker ``system``, in the trace of the message's event;
    in the block, its ``headers`` are the message's with the span's trace context, for
    the broker's consumers to continue. ``attributes``: the broker's own (a routing
    key, a Kafka key). A destination that names a stream gives the span the template's
    name, so span names stay few."""
    headers = message.headers
    found: dict[str, Any] = {"chronik.stream": message.stream_id, "chronik.event_type": message.type}
    for header, attribute in ((VERSION, "chronik.version"), (POSITION, "chronik.position")):
        value = headers.get(header)
        if value is not None and value.isdigit():
            found[attribute] = int(value)
    found.update(attributes)
    name = where.template if "stream" in where.fields else None
    if name is not None:
        found["messaging.destination.template"] = name
    return _spans.sending(headers, system, destination, message.id, found, name=name)


_FIELDS: Final = frozenset({"category", "type", "stream"})


class Template:
    """Where a message goes: a ``str.format`` template of ``{category}``, ``{type}`` and
    ``{stream}`` (e.g. the subject ``"chronik.{category}.{type}"``), each value made safe
    for the broker by ``escape``."""

    def __init__(self, template: str, what: str) -> None:
        if not isinstance(template, str) or not template:
            raise InvalidInputError(f"{what} must be a non-empty str template, got {template!r}")
        try:
            fields = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
        except ValueError as err:
            raise InvalidInputError(f"{what} {template!r} is not a template: {err}") from None
        unknown = fields - _FIELDS
        if unknown:
            raise InvalidInputError(
                f"{what} {template!r} names {sorted(unknown)}; "
                "it may use {category}, {type} and {stream}"
            )
        self.template = template
        self.what = what
        self.fields = frozenset(fields)

    def render(self, message: Message, escape: Any = str) -> str:
        return self.template.format(
            category=escape(message.category), type=escape(message.type), stream=escape(message.stream_id)
        )

    def pattern(self, wildcard: str) -> str:
        """The template with each field replaced by ``wildcard`` (``*`` for NATS)."""
        return self.template.format(**dict.fromkeys(_FIELDS, wildcard))

    def __repr__(self) -> str:
        return repr(self.template)


_TOKEN_SAFE: Final = frozenset(string.ascii_letters + string.digits + "-_")


def nats_token(value: str) -> str:
    """``value`` as one NATS subject token (and one RabbitMQ routing-key word): every byte
    but letters, digits, ``-`` and ``_`` percent-encoded, so a type ``order.placed`` or a
    stream id with spaces stays one token and no ``*`` or ``>`` becomes a wildcard."""
    if value and all(c in _TOKEN_SAFE for c in value):
        return value
    return (
        "".join(c if c in _TOKEN_SAFE else "".join(f"%{b:02X}" for b in c.encode("utf-8")) for c in value)
        or "%00"
    )


# -- publishing ---------------------------------------------------------------------------

IN_FLIGHT: Final = 64
"""Messages a publisher has sent and waits to have confirmed, at most, at any one time."""


async def in_stream_order(
    messages: Sequence[Message], send: Callable[[Message], Awaitable[object]], in_flight: int = IN_FLIGHT
) -> None:
    """``send`` each message and wait for its confirmation, a stream's messages one after
    the other in their order, different streams' at once (up to ``in_flight``).

    A message is sent only once the one before it in its stream is confirmed, so when a
    send fails, each stream has a prefix of its messages with the broker, never a later
    message without an earlier one: sent again from the start, every stream keeps its
    order. The first error is raised once every stream has stopped.
    """
    streams: dict[str, list[Message]] = {}
    for message in messages:
        streams.setdefault(message.stream_id, []).append(message)
    gate = asyncio.Semaphore(in_flight)

    async def one_stream(queue: list[Message]) -> None:
        for message in queue:
            async with gate:
                await send(message)

    if len(streams) == 1:
        await one_stream(next(iter(streams.values())))
        return
    outcomes = await asyncio.gather(
        *(one_stream(queue) for queue in streams.values()), return_exceptions=True
    )
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome


@runtime_checkable
class AsyncPublisher(Protocol):
    """A broker the relay publishes to (asyncio)."""

    @property
    def is_async(self) -> Literal[True]: ...

    async def publish(self, messages: Sequence[Message]) -> None:
        """Publish ``messages`` in order; return once the broker confirmed each one.

        Raises :class:`~chronik.errors.BrokerError` (``transient`` when trying again may
        work); then some of them may have been published, and the relay sends them all
        again (consumers dedupe by message id)."""
        ...

    async def close(self) -> None: ...


@runtime_checkable
class Publisher(Protocol):
    """The sync twin of :class:`AsyncPublisher` (:class:`BlockingPublisher` makes one)."""

    @property
    def is_async(self) -> Literal[False]: ...

    def publish(self, messages: Sequence[Message]) -> None: ...

    def close(self) -> None: ...


class _LoopThread:
    """An event loop on a daemon thread of its own, for a sync face over asyncio code."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()
        self.closed = False

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        if threading.get_ident() == self._thread.ident:
            coro.close()
            raise InvalidInputError("called from its own event loop, which it would block")
        if self.closed:
            coro.close()
            raise ConfigurationError("the publisher is closed")
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result()
        except concurrent.futures.CancelledError:
            raise ConfigurationError("the publisher was closed while it published") from None

    def stop(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()
        self.loop.close()


class BlockingPublisher:
    """A sync :class:`Publisher` over an :class:`AsyncPublisher`, run on a private
    event-loop thread. ``close()`` closes the publisher and stops the thread."""

    is_async: Final = False

    def __init__(self, publisher: AsyncPublisher) -> None:
        if not isinstance(publisher, AsyncPublisher) or publisher.is_async is not True:
            raise ConfigurationError(f"BlockingPublisher takes an asyncio publisher, got {publisher!r}")
        self.publisher = publisher
        self._loop = _LoopThread(f"chronik-publisher-{type(publisher).__name__}")

    def publish(self, messages: Sequence[Message]) -> None:
        self._loop.call(self.publisher.publish(messages))

    def close(self) -> None:
        if self._loop.closed:
            return
        try:
            self._loop.call(self.publisher.close())
        finally:
            self._loop.stop()

    def __enter__(self) -> BlockingPublisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"BlockingPublisher({self.publisher!r})"


# -- consuming ----------------------------------------------------------------------------


class InboundMessage(msgspec.Struct, frozen=True):
    """A message a broker delivered to be handled.

    ``id`` is what makes handling it idempotent: the message's own id (``Nats-Msg-Id``,
    AMQP ``message_id``, a Redis entry's ``id`` field), else a stable id of its place in
    the broker (a JetStream stream sequence, a Redis entry id). ``attempts`` counts the
    deliveries the broker reports (1 on the first)."""

    id: str
    body: bytes
    headers: Mapping[str, str]
    source: str
    """Where it came from, for logs and dead letters (``"rabbitmq queue orders"``)."""
    subject: str = ""
    """Its subject, routing key or stream key."""
    attempts: int = 1
    system: str = ""
    """The broker (``messaging.system`` of the span it is handled in: ``"nats"``,
    ``"rabbitmq"``, ``"redis"``)."""
    destination: str = ""
    """Where it was consumed from (``messaging.destination.name`` of that span: a
    JetStream stream, a RabbitMQ queue, a Redis stream key)."""

    def decode(self, type: type[T]) -> T:
        """The body as JSON decoded into ``type`` (a msgspec Struct, a dataclass, a dict...).

        An undecodable body raises :class:`UndecodableMessageError`: retrying cannot fix
        it, so the consumer sends the message to the dead-letter place at once."""
        try:
            return msgspec.json.decode(self.body, type=type)
        except msgspec.DecodeError as err:  # ValidationError is one too
            raise UndecodableMessageError(f"message {self.id} from {self.source}: {err}") from err

    @property
    def metadata(self) -> dict[str, str]:
        """The metadata to stamp on what handling it appends: the correlation id (the
        sender's, else this message's id) and the W3C trace context, when it has them."""
        headers = self.headers
        found = {"correlation_id": headers.get(CORRELATION) or headers.get("correlation_id") or self.id}
        for key in TRACE:
            if headers.get(key):
                found[key] = headers[key]
        return found


class Delivery(Protocol):
    """One delivered message and how to settle it with its broker."""

    @property
    def message(self) -> InboundMessage: ...

    async def ack(self) -> None:
        """Tell the broker it is handled (only after what handling it wrote has committed)."""
        ...

    async def dead_letter(self, reason: str) -> None:
        """Put it in the dead-letter place (with ``reason`` in the ``chronik-error``
        header), then acknowledge it: the queue goes on without it."""
        ...

    async def in_progress(self) -> None:
        """Tell the broker it is still being worked on (a handler retrying), where the broker
        would otherwise redeliver it meanwhile."""
        ...


@runtime_checkable
class AsyncSource(Protocol):
    """Where inbound messages come from: a JetStream consumer, a RabbitMQ queue, a Redis
    consumer group."""

    async def receive(self, limit: int, timeout: float) -> Sequence[Delivery]:
        """Up to ``limit`` messages, waiting up to ``timeout`` seconds for the first."""
        ...

    async def close(self) -> None: ...
