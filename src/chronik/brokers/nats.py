"""NATS: publishing to core subjects and to JetStream, and consuming from a JetStream consumer.

- :class:`NatsPublisher` publishes to core NATS subjects. Core NATS keeps nothing: a
  subscriber that is not connected misses the message. "Confirmed" here means the
  server has received the batch (a flush, one round trip, after it); use JetStream
  when consumers must not miss anything.
- :class:`JetStreamPublisher` publishes to subjects a JetStream stream captures, each
  message acknowledged by the stream (a ``PubAck``) before the next of its chronik
  stream is sent (different streams' at once), so a failure part-way leaves a prefix
  of each stream's messages stored and their order holds when the relay sends the
  batch again. Each message carries
  ``Nats-Msg-Id``: the stream drops a copy sent again within its duplicate window
  (2 minutes by default), and consumers dedupe by it beyond that.
- :class:`JetStreamSource` reads a durable pull consumer for ``chronik.inbound``,
  acknowledging each message only after it is handled; a poison message is published
  to a dead-letter subject (captured by a stream of its own) and then acknowledged.

Errors are :class:`~chronik.errors.BrokerError`: transient for a lost or refused
connection, a timeout or no responders (a stream without a leader yet), since the
client reconnects by itself; not for a refused subject or a JetStream API error.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any, Final

from chronik.brokers._base import (
    ERROR,
    EVENT_ID,
    InboundMessage,
    Message,
    Template,
    broker_error,
    in_stream_order,
    nats_token,
    redacted,
    sending,
)
from chronik.errors import BrokerError, ConfigurationError

try:
    import nats
    import nats.errors
    import nats.js.errors
    from nats.aio.client import Client
    from nats.aio.msg import Msg
    from nats.js import JetStreamContext, api
except ModuleNotFoundError as err:  # pragma: no cover - the dev install has it
    raise ConfigurationError("the NATS broker needs nats-py: pip install 'chronik[nats]'") from err

__all__ = ["JetStreamPublisher", "JetStreamSource", "NatsPublisher"]

DEFAULT_URL: Final = "nats://127.0.0.1:4222"
DEFAULT_SUBJECT: Final = "chronik.{category}.{type}"
MSG_ID: Final = "Nats-Msg-Id"
_RETRY_WAIT: Final = 0.25
_NO_LEADER: Final = 503
logger = logging.getLogger("chronik.brokers")


def translate(err: BaseException, what: str) -> BaseException:
    """A :class:`BrokerError` for a client error met while doing ``what`` (others as they are)."""
    if isinstance(err, nats.js.errors.APIError) and err.err_code is not None:
        return BrokerError(
            f"{what}: JetStream refused ({err.err_code}, code {err.code}): {err.description}",
            transient=err.code == _NO_LEADER,
        )
    return broker_error(
        err,
        what,
        refused=(nats.errors.BadSubjectError, nats.errors.MaxPayloadError),
        transient=(nats.errors.Error,),
    )


class _Connection:
    """One lazily made NATS connection: reconnects by itself for ever once made."""

    def __init__(self, url: str, connect_timeout: float, name: str) -> None:
        if not isinstance(url, str) or not url.startswith(("nats://", "tls://", "ws://", "wss://")):
            raise ConfigurationError(f"a NATS URL starts with nats://, got {url!r}")
        self.url = url
        self.shown = redacted(url)
        self.connect_timeout = connect_timeout
        self.name = name
        self._nc: Client | None = None
        self._lock = asyncio.Lock()

    async def ready(self) -> Client:
        if self._nc is not None and not self._nc.is_closed:
            return self._nc
        async with self._lock:
            if self._nc is None or self._nc.is_closed:
                self._nc = await self._connect()
        return self._nc

    async def _connect(self) -> Client:
        async def quiet(error: Exception) -> None:
            pass  # reported to callers through their requests' errors instead

        attempts = max(1, int(self.connect_timeout / _RETRY_WAIT))
        try:
            nc = await asyncio.wait_for(
                nats.connect(
                    self.url,
                    connect_timeout=min(self.connect_timeout, 2.0),
                    max_reconnect_attempts=attempts,
                    reconnect_time_wait=_RETRY_WAIT,
                    error_cb=quiet,
                    name=self.name,
                ),
                self.connect_timeout + 1.0,
            )
        except (TimeoutError, nats.errors.Error, OSError) as err:
            raise BrokerError(
                f"cannot reach NATS at {self.shown} within {self.connect_timeout:g} s "
                f"({type(err).__name__}: {err})",
                transient=True,
            ) from err
        # Bounded on the first connect (a wrong URL fails in seconds), for ever after it.
        nc.options["max_reconnect_attempts"] = -1
        return nc

    async def close(self) -> None:
        nc, self._nc = self._nc, None
        if nc is not None and not nc.is_closed:
            await nc.close()


SYSTEM: Final = "nats"
"""``messaging.system`` of the publish and process spans."""


class NatsPublisher:
    """Publishes to core NATS subjects (``subject``: a template of ``{category}``,
    ``{type}``, ``{stream}``, each made one subject token)."""

    is_async: Final = True

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        subject: str = DEFAULT_SUBJECT,
        connect_timeout: float = 5.0,
        flush_timeout: int = 5,
    ) -> None:
        self._conn = _Connection(url, connect_timeout, "chronik-relay")
        self.subject = Template(subject, "subject")
        self.flush_timeout = flush_timeout

    async def publish(self, messages: Sequence[Message]) -> None:
        try:
            nc = await self._conn.ready()
            # Each message's span ends when the flush confirms the batch (or fails it).
            with contextlib.ExitStack() as spans:
                for message in messages:
                    subject = self.subject.render(message, nats_token)
                    sent = sending(message, SYSTEM, subject, self.subject)
                    spans.enter_context(sent)
                    await nc.publish(subject, message.body, headers={**sent.headers, MSG_ID: message.id})
                # The server answers the flush's PING after it has read everything before it.
                await nc.flush(self.flush_timeout)
        except Exception as err:
            raise translate(err, f"publishing to NATS at {self._conn.shown}") from err

    async def close(self) -> None:
        await self._conn.close()

    def __repr__(self) -> str:
        return f"NatsPublisher({self._conn.shown!r}, subject={self.subject!r})"


class JetStreamPublisher:
    """Publishes to subjects a JetStream stream captures, each message acknowledged by it.

    ``stream``: the stream to create when it is missing (capturing the subject
    template with each field a ``*``); None: the subjects must be captured already.
    """

    is_async: Final = True

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        subject: str = DEFAULT_SUBJECT,
        stream: str | None = None,
        timeout: float = 5.0,
        connect_timeout: float = 5.0,
    ) -> None:
        self._conn = _Connection(url, connect_timeout, "chronik-relay")
        self.subject = Template(subject, "subject")
        self.stream = stream
        self.timeout = timeout
        self._js: JetStreamContext | None = None

    async def _ready(self) -> JetStreamContext:
        nc = await self._conn.ready()
        if self._js is None:
            js = nc.jetstream(timeout=self.timeout)
            if self.stream is not None:
                await _ensure_stream(js, self.stream, [self.subject.pattern("*")])
            self._js = js
        return self._js

    async def publish(self, messages: Sequence[Message]) -> None:
        try:
            js = await self._ready()

            async def send(message: Message) -> None:
                subject = self.subject.render(message, nats_token)
                with sending(message, SYSTEM, subject, self.subject) as sent:
                    await js.publish(
                        subject,
                        message.body,
                        timeout=self.timeout,
                        headers={**sent.headers, MSG_ID: message.id},
                    )

            # Each stream's messages one after the other (see in_stream_order).
            await in_stream_order(messages, send)
        except Exception as err:
            raise translate(err, f"publishing to JetStream at {self._conn.shown}") from err

    async def close(self) -> None:
        self._js = None
        await self._conn.close()

    def __repr__(self) -> str:
        return f"JetStreamPublisher({self._conn.shown!r}, subject={self.subject!r}, stream={self.stream!r})"


async def _ensure_stream(js: JetStreamContext, name: str, subjects: list[str]) -> None:
    try:
        await js.stream_info(name)
        return
    except nats.js.errors.NotFoundError:
        pass
    try:
        await js.add_stream(api.StreamConfig(name=name, subjects=subjects))
    except nats.js.errors.BadRequestError as err:
        # Created meanwhile by another process: fine when it is there now.
        try:
            await js.stream_info(name)
        except nats.js.errors.NotFoundError:
            raise translate(err, f"creating the JetStream stream {name!r}") from err


class _JetStreamDelivery:
    def __init__(self, source: JetStreamSource, msg: Msg, message: InboundMessage) -> None:
        self._source = source
        self._msg = msg
        self.message = message

    async def ack(self) -> None:
        try:
            await self._msg.ack_sync(timeout=self._source.timeout)
        except Exception as err:
            raise translate(err, f"acknowledging message {self.message.id}") from err

    async def dead_letter(self, reason: str) -> None:
        source = self._source
        headers = {**self.message.headers, MSG_ID: self.message.id, ERROR: reason[:1000]}
        try:
            js = await source._ready()
            await js.publish(source.dead_letter, self.message.body, timeout=source.timeout, headers=headers)
            await self._msg.ack_sync(timeout=source.timeout)
        except Exception as err:
            raise translate(err, f"dead-lettering message {self.message.id} to {source.dead_letter}") from err

    async def in_progress(self) -> None:
        try:
            await self._msg.in_progress()
        except Exception as err:
            raise translate(err, f"extending the ack wait of message {self.message.id}") from err


class JetStreamSource:
    """A durable pull consumer ``durable`` on the JetStream stream ``stream`` (created if
    missing, for ``subject`` when given), for ``chronik.inbound``.

    A poison message is published to ``dead_letter`` (default
    ``chronik-dead-letter.<stream>.<durable>``), captured by the stream
    ``dead_letter_stream`` (default ``<stream>-dead-letter``, created if missing), then
    acknowledged. ``ack_wait``: how long the server waits for an acknowledgement
    before delivering a message again (a retrying handler extends it).
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        stream: str,
        durable: str,
        subject: str | None = None,
        dead_letter: str | None = None,
        dead_letter_stream: str | None = None,
        ack_wait: float = 30.0,
        timeout: float = 5.0,
        connect_timeout: float = 5.0,
    ) -> None:
        for value, what in ((stream, "stream"), (durable, "durable")):
            if not isinstance(value, str) or not value or any(c in value for c in " .*>"):
                raise ConfigurationError(
                    f"{what} must be a JetStream name (no spaces, '.', '*', '>'), got {value!r}"
                )
        self._conn = _Connection(url, connect_timeout, "chronik-inbound")
        self.stream = stream
        self.durable = durable
        self.subject = subject
        self.dead_letter = dead_letter or f"chronik-dead-letter.{stream}.{durable}"
        self.dead_letter_stream = dead_letter_stream or f"{stream}-dead-letter"
        self.ack_wait = ack_wait
        self.timeout = timeout
        self._js: JetStreamContext | None = None
        self._sub: JetStreamContext.PullSubscription | None = None
        self.name = f"JetStream consumer {stream}/{durable}"

    async def _ready(self) -> JetStreamContext:
        nc = await self._conn.ready()
        if self._js is None:
            js = nc.jetstream(timeout=self.timeout)
            if self.subject is not None:
                await _ensure_stream(js, self.stream, [self.subject])
            await _ensure_stream(js, self.dead_letter_stream, [self.dead_letter])
            self._js = js
        return self._js

    async def _subscription(self) -> JetStreamContext.PullSubscription:
        if self._sub is None:
            js = await self._ready()
            config = api.ConsumerConfig(
                durable_name=self.durable, ack_policy=api.AckPolicy.EXPLICIT, ack_wait=self.ack_wait
            )
            self._sub = await js.pull_subscribe(
                self.subject or "", durable=self.durable, stream=self.stream, config=config
            )
        return self._sub

    async def receive(self, limit: int, timeout: float) -> list[_JetStreamDelivery]:
        try:
            sub = await self._subscription()
            try:
                msgs = await sub.fetch(limit, timeout=max(timeout, 0.01))
            except nats.errors.TimeoutError:
                return []
        except Exception as err:
            raise translate(err, f"reading {self.name}") from err
        return [_JetStreamDelivery(self, msg, self._message(msg)) for msg in msgs]

    def _message(self, msg: Msg) -> InboundMessage:
        headers: dict[str, Any] = dict(msg.headers or {})
        meta = msg.metadata
        # Without a message id the stream sequence is a stable one: the same message
        # delivered again has the same sequence.
        message_id = headers.get(MSG_ID) or headers.get(EVENT_ID) or f"{meta.stream}:{meta.sequence.stream}"
        return InboundMessage(
            str(message_id),
            msg.data,
            {str(k): str(v) for k, v in headers.items()},
            self.name,
            msg.subject,
            meta.num_delivered or 1,
            SYSTEM,
            self.stream,
        )

    async def close(self) -> None:
        sub, self._sub, self._js = self._sub, None, None
        if sub is not None:
            try:
                await sub.unsubscribe()
            except Exception:
                logger.debug("unsubscribing %s failed", self.name, exc_info=True)
        await self._conn.close()

    def __repr__(self) -> str:
        return f"JetStreamSource({self._conn.shown!r}, stream={self.stream!r}, durable={self.durable!r})"
