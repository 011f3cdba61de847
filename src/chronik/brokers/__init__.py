"""Message brokers, for the relay (events out) and inbound messages (commands in).

One module per broker, each importing its client only when imported (so each needs
its extra only when used): :mod:`chronik.brokers.nats` (core NATS and JetStream;
``chronik[nats]``), :mod:`chronik.brokers.rabbitmq` (``chronik[rabbitmq]``) and
:mod:`chronik.brokers.redis` (Redis Streams; ``chronik[redis]``), each with a
publisher (an :class:`AsyncPublisher`) and a source (an :class:`AsyncSource`), and
:mod:`chronik.brokers.kafka` (a publisher; ``chronik[kafka]``).
:func:`publisher_for` makes a publisher from a URL, as ``chronik relay --to`` does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from chronik.brokers._base import (
    HEADERS,
    AsyncPublisher,
    AsyncSource,
    BlockingPublisher,
    Delivery,
    InboundMessage,
    Message,
    Publisher,
    message_of,
)
from chronik.errors import ConfigurationError

__all__ = [
    "HEADERS",
    "AsyncPublisher",
    "AsyncSource",
    "BlockingPublisher",
    "Delivery",
    "InboundMessage",
    "Message",
    "Publisher",
    "message_of",
    "publisher_for",
]

# The query parameters each kind of URL takes, and what they become.
_NATS = {"subject": str}
_JETSTREAM = {"subject": str, "stream": str, "timeout": float}
_RABBITMQ = {"exchange": str, "routing_key": str, "exchange_type": str, "declare": bool, "timeout": float}
_REDIS = {"key": str, "maxlen": int, "dedupe_ttl": float}
_KAFKA = {"topic": str, "key": str, "timeout": float}


def _options(query: list[tuple[str, str]], known: Mapping[str, type], url: str) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for name, value in query:
        kind = known.get(name)
        if kind is None:
            raise ConfigurationError(f"{url}: unknown option {name!r}; it takes {sorted(known)}")
        try:
            options[name] = value.lower() in ("1", "true", "yes") if kind is bool else kind(value)
        except ValueError:
            raise ConfigurationError(f"{url}: option {name}={value!r} is not a {kind.__name__}") from None
    return options


def publisher_for(url: str) -> AsyncPublisher:
    """The publisher a broker URL names, its options in the query string:

    - ``nats://host:4222?subject=chronik.{category}.{type}``: core NATS subjects;
    - ``nats+jetstream://host:4222?subject=...&stream=NAME`` (or ``nats://...?jetstream=true``):
      JetStream, creating the stream ``NAME`` when given and missing;
    - ``rabbitmq://guest:guest@host:5672/?exchange={category}&routing_key={category}.{type}``
      (or ``amqp://``);
    - ``redis://host:6379/0?key=chronik:{category}&maxlen=N``: Redis Streams;
    - ``kafka://host:9092[,host:9092...]?topic={category}&key={stream}``: Kafka.
    """
    if not isinstance(url, str):
        raise ConfigurationError(f"a broker URL is a str, got {url!r}")
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    scheme = parts.scheme.lower()
    if scheme == "nats" and ("jetstream", "true") in [(k, v.lower()) for k, v in query]:
        scheme, query = "nats+jetstream", [(k, v) for k, v in query if k != "jetstream"]
    base = urlunsplit(("nats", parts.netloc, parts.path, "", ""))
    if scheme == "nats":
        from chronik.brokers.nats import NatsPublisher

        return NatsPublisher(base, **_options(query, _NATS, url))
    if scheme == "nats+jetstream":
        from chronik.brokers.nats import JetStreamPublisher

        return JetStreamPublisher(base, **_options(query, _JETSTREAM, url))
    if scheme in ("rabbitmq", "amqp", "amqps"):
        from chronik.brokers.rabbitmq import RabbitMQPublisher

        amqp = urlunsplit(("amqps" if scheme == "amqps" else "amqp", parts.netloc, parts.path or "/", "", ""))
        return RabbitMQPublisher(amqp, **_options(query, _RABBITMQ, url))
    if scheme in ("redis", "rediss"):
        from chronik.brokers.redis import RedisStreamsPublisher

        ours = [(k, v) for k, v in query if k in _REDIS]
        theirs = urlencode([(k, v) for k, v in query if k not in _REDIS])
        return RedisStreamsPublisher(
            urlunsplit((scheme, parts.netloc, parts.path, theirs, "")), **_options(ours, _REDIS, url)
        )
    if scheme == "kafka":
        from chronik.brokers.kafka import KafkaPublisher

        return KafkaPublisher(parts.netloc, **_options(query, _KAFKA, url))
    raise ConfigurationError(
        f"no broker for {url!r}: use nats://, nats+jetstream://, rabbitmq:// (amqp://), redis:// or kafka://"
    )
