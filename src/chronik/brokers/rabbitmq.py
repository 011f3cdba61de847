"""RabbitMQ: publishing to exchanges with publisher confirms, and consuming from a queue.

- :class:`RabbitMQPublisher` publishes each event to an exchange named from its
  category (``exchange="{category}"``, a durable topic exchange, declared when first
  used) with a routing key from its category and type (``"{category}.{type}"``), as a
  persistent message whose ``message_id`` is the event id, ``type`` the event type,
  ``correlation_id`` the event's, and whose headers are the relay's. The channel is in
  confirm mode and each message is confirmed by the broker before the next of its
  chronik stream is sent (different streams' at once), so a failure part-way leaves a
  prefix of each stream's messages with the broker and their order holds when the
  relay sends the batch again. Messages no queue is bound for are
  dropped by RabbitMQ (publish/subscribe): bind the consumers' queues first.
- :class:`RabbitMQSource` consumes a durable queue for ``chronik.inbound`` with manual
  acknowledgements; a poison message is published (confirmed) to a dead-letter queue
  and then acknowledged.

aio-pika is the client. After any failure the connection is dropped and made anew on
the next call; errors are :class:`~chronik.errors.BrokerError`, transient for a lost or
refused connection, a timeout or a negative confirm, not for refused credentials, a
missing queue or exchange, or an exchange declared with another type.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final

from chronik.brokers._base import (
    CORRELATION,
    ERROR,
    EVENT_ID,
    RECORDED_AT,
    InboundMessage,
    Message,
    Template,
    broker_error,
    in_stream_order,
    nats_token,
    redacted,
    sending,
)
from chronik.errors import ConfigurationError

try:
    import aio_pika
    import aio_pika.abc
    import aio_pika.exceptions
    import aiormq.exceptions
except ModuleNotFoundError as err:  # pragma: no cover - the dev install has it
    raise ConfigurationError("the RabbitMQ broker needs aio-pika: pip install 'chronik[rabbitmq]'") from err

__all__ = ["RabbitMQPublisher", "RabbitMQSource"]

DEFAULT_URL: Final = "amqp://guest:guest@127.0.0.1:5672/"
SYSTEM: Final = "rabbitmq"
"""``messaging.system`` of the publish and process spans."""
_REFUSED: Final = (
    aiormq.exceptions.ProbableAuthenticationError,
    aiormq.exceptions.AuthenticationError,
    aiormq.exceptions.ConnectionNotAllowed,
    aiormq.exceptions.ChannelAccessRefused,
    aiormq.exceptions.ChannelNotFoundEntity,
    aiormq.exceptions.ChannelPreconditionFailed,
    aiormq.exceptions.IncompatibleProtocolError,
)


def translate(err: BaseException, what: str) -> BaseException:
    """A :class:`BrokerError` for a client error met while doing ``what`` (others as they are)."""
    transient = (
        aiormq.exceptions.AMQPError,
        aiormq.exceptions.ChannelInvalidStateError,
        aio_pika.exceptions.AMQPError,
    )
    return broker_error(err, what, refused=_REFUSED, transient=transient)


def _url(url: str) -> str:
    if not isinstance(url, str) or not url.startswith(("amqp://", "amqps://", "rabbitmq://")):
        raise ConfigurationError(f"a RabbitMQ URL starts with amqp:// (or rabbitmq://), got {url!r}")
    return "amqp://" + url.removeprefix("rabbitmq://") if url.startswith("rabbitmq://") else url


class _Connection:
    """A connection and one confirm-mode channel, made on first use and dropped on failure."""

    def __init__(self, url: str, timeout: float) -> None:
        self.url = _url(url)
        self.timeout = timeout
        self._connection: aio_pika.abc.AbstractConnection | None = None
        self._channel: aio_pika.abc.AbstractChannel | None = None
        self._lock = asyncio.Lock()

    async def channel(self) -> aio_pika.abc.AbstractChannel:
        async with self._lock:
            if self._channel is None or self._channel.is_closed:
                await self._drop()
                self._connection = await aio_pika.connect(self.url, timeout=self.timeout)
                self._channel = await self._connection.channel(publisher_confirms=True)
            return self._channel

    async def _drop(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None:
            with contextlib.suppress(Exception):
                await connection.close()

    async def failed(self) -> None:
        """Forget the connection after a failure: the next call makes a new one."""
        async with self._lock:
            await self._drop()

    def __repr__(self) -> str:
        return repr(redacted(self.url))


class RabbitMQPublisher:
    """Publishes to RabbitMQ exchanges with publisher confirms (see the module docstring).

    ``exchange`` and ``routing_key`` are templates of ``{category}``, ``{type}`` and
    ``{stream}`` (routing-key values made one word each: a ``.`` in a type is encoded);
    ``declare=False`` publishes to exchanges that must exist already.
    """

    is_async: Final = True

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        exchange: str = "{category}",
        routing_key: str = "{category}.{type}",
        exchange_type: str = "topic",
        declare: bool = True,
        timeout: float = 10.0,
    ) -> None:
        self._conn = _Connection(url, timeout)
        self.exchange = Template(exchange, "exchange")
        self.routing_key = Template(routing_key, "routing_key")
        try:
            self.exchange_type = aio_pika.ExchangeType(exchange_type)
        except ValueError:
            kinds = [t.value for t in aio_pika.ExchangeType]
            raise ConfigurationError(f"exchange_type must be one of {kinds}, got {exchange_type!r}") from None
        self.declare = declare
        self.timeout = timeout
        self._exchanges: dict[str, aio_pika.abc.AbstractExchange] = {}

    async def _exchange(
        self, channel: aio_pika.abc.AbstractChannel, name: str
    ) -> aio_pika.abc.AbstractExchange:
        exchange = self._exchanges.get(name)
        if exchange is None:
            if self.declare:
                exchange = await channel.declare_exchange(name, self.exchange_type, durable=True)
            else:
                exchange = await channel.get_exchange(name, ensure=True)
            self._exchanges[name] = exchange
        return exchange

    async def publish(self, messages: Sequence[Message]) -> None:
        try:
            channel = await self._conn.channel()
            for name in {self.exchange.render(message) for message in messages}:
                await self._exchange(channel, name)

            async def send(message: Message) -> None:
                exchange = self.exchange.render(message)
                routing_key = self.routing_key.render(message, nats_token)
                routed = {"messaging.rabbitmq.destination.routing_key": routing_key}
                with sending(message, SYSTEM, exchange, self.exchange, **routed) as sent:
                    await self._exchanges[exchange].publish(
                        _amqp_message(message, sent.headers),
                        routing_key=routing_key,
                        mandatory=False,
                        timeout=self.timeout,
                    )

            # Each stream's messages one after the other, each confirmed: see the module docstring.
            await in_stream_order(messages, send)
        except Exception as err:
            self._exchanges.clear()
            await self._conn.failed()
            raise translate(err, f"publishing to RabbitMQ at {self._conn!r}") from err

    async def close(self) -> None:
        self._exchanges.clear()
        await self._conn.failed()

    def __repr__(self) -> str:
        return (
            f"RabbitMQPublisher({self._conn!r}, exchange={self.exchange!r}, routing_key={self.routing_key!r})"
        )


def _amqp_message(message: Message, headers: dict[str, str]) -> aio_pika.Message:
    recorded = headers.get(RECORDED_AT)
    return aio_pika.Message(
        message.body,
        headers=dict(headers),
        content_type="application/json",
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        message_id=message.id,
        type=message.type,
        correlation_id=headers.get(CORRELATION),
        timestamp=datetime.fromisoformat(recorded) if recorded else None,
        app_id="chronik",
    )


class _RabbitMQDelivery:
    def __init__(self, source: RabbitMQSource, incoming: aio_pika.abc.AbstractIncomingMessage) -> None:
        self._source = source
        self._incoming = incoming
        self.message = source._message(incoming)

    async def ack(self) -> None:
        try:
            await self._incoming.ack()
        except Exception as err:
            raise translate(err, f"acknowledging message {self.message.id!r}") from err

    async def dead_letter(self, reason: str) -> None:
        source = self._source
        incoming = self._incoming
        try:
            channel = await source._conn.channel()
            await source._declare(channel)
            headers: dict[str, Any] = {**(incoming.headers or {}), ERROR: reason[:1000]}
            await channel.default_exchange.publish(
                aio_pika.Message(
                    incoming.body,
                    headers=headers,
                    content_type=incoming.content_type,
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    message_id=incoming.message_id,
                    type=incoming.type,
                    correlation_id=incoming.correlation_id,
                ),
                routing_key=source.dead_letter,
                timeout=source.timeout,
            )
            await incoming.ack()
        except Exception as err:
            raise translate(
                err, f"dead-lettering message {self.message.id!r} to {source.dead_letter}"
            ) from err

    async def in_progress(self) -> None:
        pass  # RabbitMQ waits for an acknowledgement as long as the channel lives


class RabbitMQSource:
    """Consumes the durable queue ``queue`` (declared when missing) for ``chronik.inbound``.

    A poison message goes to the durable queue ``dead_letter`` (default
    ``<queue>.dead-letter``). ``prefetch``: how many unacknowledged messages the broker
    hands this consumer at once.
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        queue: str,
        dead_letter: str | None = None,
        prefetch: int = 100,
        timeout: float = 10.0,
    ) -> None:
        if not isinstance(queue, str) or not queue:
            raise ConfigurationError(f"queue must be a non-empty str, got {queue!r}")
        self._conn = _Connection(url, timeout)
        self.queue = queue
        self.dead_letter = dead_letter or f"{queue}.dead-letter"
        self.prefetch = prefetch
        self.timeout = timeout
        self.name = f"RabbitMQ queue {queue}"
        self._received: asyncio.Queue[aio_pika.abc.AbstractIncomingMessage] | None = None
        self._consuming: aio_pika.abc.AbstractChannel | None = None

    async def _declare(self, channel: aio_pika.abc.AbstractChannel) -> aio_pika.abc.AbstractQueue:
        await channel.declare_queue(self.dead_letter, durable=True)
        return await channel.declare_queue(self.queue, durable=True)

    async def _consume(self) -> asyncio.Queue[aio_pika.abc.AbstractIncomingMessage]:
        channel = await self._conn.channel()
        if self._received is None or self._consuming is not channel:
            # A new channel (first call, or after a failure): what the old one had
            # delivered and not acknowledged goes back to the queue by itself.
            received: asyncio.Queue[aio_pika.abc.AbstractIncomingMessage] = asyncio.Queue()
            await channel.set_qos(prefetch_count=self.prefetch)
            queue = await self._declare(channel)
            await queue.consume(received.put, no_ack=False)
            self._received, self._consuming = received, channel
        return self._received

    async def receive(self, limit: int, timeout: float) -> list[_RabbitMQDelivery]:
        try:
            received = await self._consume()
            try:
                first = await asyncio.wait_for(received.get(), max(timeout, 0.0))
            except TimeoutError:
                return []
            got = [first]
            while len(got) < limit and not received.empty():
                got.append(received.get_nowait())
        except Exception as err:
            self._received = None
            await self._conn.failed()
            raise translate(err, f"consuming {self.name}") from err
        return [_RabbitMQDelivery(self, incoming) for incoming in got]

    def _message(self, incoming: aio_pika.abc.AbstractIncomingMessage) -> InboundMessage:
        headers = {str(k): _text(v) for k, v in (incoming.headers or {}).items()}
        if incoming.correlation_id and CORRELATION not in headers:
            headers[CORRELATION] = incoming.correlation_id
        count = headers.get("x-delivery-count")  # quorum queues count deliveries
        attempts = int(count) + 1 if count and count.isdigit() else 2 if incoming.redelivered else 1
        return InboundMessage(
            incoming.message_id or headers.get(EVENT_ID, ""),
            incoming.body,
            headers,
            self.name,
            incoming.routing_key or "",
            attempts,
            SYSTEM,
            self.queue,
        )

    async def close(self) -> None:
        self._received = None
        await self._conn.failed()

    def __repr__(self) -> str:
        return f"RabbitMQSource({self._conn!r}, queue={self.queue!r})"


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)
