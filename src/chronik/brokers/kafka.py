"""Kafka: publishing to topics, keyed by stream so each stream's events share a partition.

:class:`KafkaPublisher` sends each event to the topic named from its category
(``topic="{category}"``) with the stream id as its key (``key="{stream}"``): Kafka keeps
the order within a partition, and one key always goes to the same partition, so each
stream's events stay in order. Each message is acknowledged by every in-sync replica
(``acks="all"``) before the next of its stream is sent (different streams' at once),
so a failure part-way leaves a prefix of each stream's messages in the topic and a
batch sent again keeps each stream's order. Kafka has no
message ids of its own: consumers dedupe by the ``chronik-event-id`` header (the
producer is not idempotent across restarts of the relay anyway).

aiokafka is the client. Errors are :class:`~chronik.errors.BrokerError`, transient
when Kafka says the request may succeed again (a lost connection, a leader election,
a timeout, a topic still being created), not otherwise (a topic name Kafka refuses,
a message too large, refused authorisation).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Final

from chronik.brokers._base import Message, Template, broker_error, in_stream_order, sending
from chronik.errors import BrokerError, ConfigurationError

try:
    import aiokafka
    import aiokafka.errors
except ModuleNotFoundError as err:  # pragma: no cover - the dev install has it
    raise ConfigurationError("the Kafka broker needs aiokafka: pip install 'chronik[kafka]'") from err

__all__ = ["KafkaPublisher"]

DEFAULT_SERVERS: Final = "127.0.0.1:9092"
SYSTEM: Final = "kafka"
"""``messaging.system`` of the publish spans."""
_TOPIC: Final = re.compile(r"[A-Za-z0-9._-]{1,249}")


def translate(err: BaseException, what: str) -> BaseException:
    """A :class:`BrokerError` for a client error met while doing ``what`` (others as they are)."""
    if isinstance(err, aiokafka.errors.KafkaError):
        retriable = bool(getattr(err, "retriable", False))
        text = f"{what}: {type(err).__name__}: {err}".rstrip(": ")
        return BrokerError(text, transient=retriable or isinstance(err, aiokafka.errors.KafkaTimeoutError))
    return broker_error(err, what)


class KafkaPublisher:
    """Publishes to Kafka topics (see the module docstring). ``topic`` and ``key`` are
    templates of ``{category}``, ``{type}`` and ``{stream}``; ``options`` go to
    ``aiokafka.AIOKafkaProducer`` (security settings, compression, ...)."""

    is_async: Final = True

    def __init__(
        self,
        bootstrap_servers: str = DEFAULT_SERVERS,
        *,
        topic: str = "{category}",
        key: str = "{stream}",
        timeout: float = 10.0,
        **options: Any,
    ) -> None:
        if not isinstance(bootstrap_servers, str) or not bootstrap_servers:
            raise ConfigurationError(
                f"bootstrap_servers must be 'host:port[,host:port...]', got {bootstrap_servers!r}"
            )
        self.bootstrap_servers = bootstrap_servers
        self.topic = Template(topic, "topic")
        self.key = Template(key, "key")
        self.timeout = timeout
        self.options = options
        self._producer: aiokafka.AIOKafkaProducer | None = None

    async def _ready(self) -> aiokafka.AIOKafkaProducer:
        if self._producer is None:
            producer = aiokafka.AIOKafkaProducer(
                bootstrap_servers=self.bootstrap_servers,
                acks="all",
                client_id="chronik-relay",
                request_timeout_ms=int(self.timeout * 1000),
                **self.options,
            )
            try:
                await producer.start()
            except BaseException:
                await producer.stop()
                raise
            self._producer = producer
        return self._producer

    def _topic(self, message: Message) -> str:
        topic = self.topic.render(message)
        if not _TOPIC.fullmatch(topic) or topic in (".", ".."):
            raise BrokerError(
                f"{topic!r} (for stream {message.stream_id!r}) is not a Kafka topic name: "
                "up to 249 letters, digits, '.', '_' and '-'"
            )
        return topic

    async def publish(self, messages: Sequence[Message]) -> None:
        try:
            producer = await self._ready()
            topics = {message.id: self._topic(message) for message in messages}

            async def send(message: Message) -> None:
                topic, key = topics[message.id], self.key.render(message)
                with sending(
                    message, SYSTEM, topic, self.topic, **{"messaging.kafka.message.key": key}
                ) as sent:
                    await producer.send_and_wait(
                        topic,
                        message.body,
                        key=key.encode(),
                        headers=[(name, value.encode()) for name, value in sent.headers.items()],
                    )

            # Each stream's messages one after the other (see in_stream_order): a later
            # one never lands before an earlier one that failed.
            await in_stream_order(messages, send)
        except BrokerError:
            raise
        except Exception as err:
            await self._drop()
            raise translate(err, f"publishing to Kafka at {self.bootstrap_servers}") from err

    async def _drop(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            try:
                await producer.stop()
            except Exception:  # already broken: it is being replaced
                pass

    async def close(self) -> None:
        await self._drop()

    def __repr__(self) -> str:
        return f"KafkaPublisher({self.bootstrap_servers!r}, topic={self.topic!r}, key={self.key!r})"
