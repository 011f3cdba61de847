"""``Connection``: the NATS client, the JetStream stream and buckets, and reading them.

The store, its readers and its key-value records share one ``Connection`` (one NATS
connection per store: nats-py multiplexes requests over it). It connects on first use,
creates the stream and buckets when missing, translates the client's errors into
chronik's, and reads messages through :class:`Pull`, an ephemeral pull consumer of its
own (nats-py's ``fetch`` may leave lingering requests behind; a reader that asks for
one page at a time and waits for the answer to end knows exactly what it has read).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Final, NamedTuple, TypeVar

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext, api

from chronik.codec import Codec
from chronik.errors import (
    ConfigurationError,
    NotAChronikStoreError,
    OperationalError,
    PersistenceError,
    StoreClosedError,
)
from chronik.stores.nats._config import NatsConfig

__all__ = ["WRONG_LAST_SEQUENCE", "Connection", "Delivered", "Pull", "translate"]

T = TypeVar("T")
WRONG_LAST_SEQUENCE: Final = 10071  # JetStream: Nats-Expected-Last-Subject-Sequence did not hold
NO_MESSAGE: Final = 10037
STREAM_NOT_FOUND: Final = 10059
_RETRY_WAIT: Final = 0.25  # seconds between attempts to reach a server on connect
_FETCH_WAIT: Final = 3.0  # seconds a pull consumer may take to answer


def translate(err: BaseException, what: str) -> BaseException:
    """A chronik error for a client error met while doing ``what``."""
    if isinstance(err, nats.js.errors.APIError) and err.err_code is not None:
        return OperationalError(
            f"{what}: JetStream refused ({err.err_code}, code {err.code}): {err.description}"
        )
    if isinstance(err, nats.errors.ConnectionClosedError):
        return StoreClosedError(f"{what}: the NATS connection is closed")
    if isinstance(err, (nats.errors.Error, asyncio.TimeoutError, OSError)):
        # A timeout, no responders (no stream leader yet), a lost or refused connection:
        # the client reconnects by itself, so the same work may succeed a moment later
        # (chronik.errors.is_transient; runners retry it rather than stop).
        return OperationalError(f"{what}: {type(err).__name__}: {err}".rstrip(": "), transient=True)
    return err


class Delivered(NamedTuple):
    """A message a pull consumer delivered, with what its reply subject says."""

    subject: str
    data: bytes
    headers: dict[str, str] | None
    seq: int
    timestamp_ns: int
    pending: int


def _delivered(msg: Msg) -> Delivered:
    # $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending> (and the
    # longer form with a domain and an account hash in front of the stream).
    tokens = msg.reply.split(".")
    offset = 0 if len(tokens) == 9 else 2
    return Delivered(
        msg.subject,
        msg.data,
        msg.headers,
        int(tokens[5 + offset]),
        int(tokens[7 + offset]),
        int(tokens[8 + offset]),
    )


class Connection:
    """One store's NATS connection and what every operation on it needs."""

    def __init__(self, config: NatsConfig, codec: Codec) -> None:
        self.config = config
        self.codec = codec
        self.closed = False
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._lock: asyncio.Lock | None = None
        self.max_payload = 0

    # -- connecting ---------------------------------------------------------------------------

    async def ready(self) -> JetStreamContext:
        """The JetStream context, connecting (and creating the stream) on first use."""
        if self.closed:
            raise StoreClosedError(f"the NATS store at {self.config.url} is closed")
        if self._js is not None:
            return self._js
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._js is None:
                await self._connect()
        assert self._js is not None
        return self._js

    @property
    def nc(self) -> Client:
        assert self._nc is not None, "used before ready()"
        return self._nc

    async def _connect(self) -> None:
        config = self.config

        async def quiet(error: Exception) -> None:
            pass  # reported to callers through their requests' errors instead

        # nats-py retries each server max_reconnect_attempts times on the first connect
        # too; bound that by connect_timeout, then reconnect forever once connected.
        attempts = max(1, int(config.connect_timeout / _RETRY_WAIT))
        try:
            nc = await asyncio.wait_for(
                nats.connect(
                    servers=list(config.servers),
                    connect_timeout=min(config.connect_timeout, 2.0),
                    max_reconnect_attempts=attempts,
                    reconnect_time_wait=_RETRY_WAIT,
                    error_cb=quiet,
                    name="chronik",
                ),
                config.connect_timeout + 1.0,
            )
        except (TimeoutError, nats.errors.Error, OSError) as err:
            raise OperationalError(
                f"cannot reach NATS at {config.url} within connect_timeout={config.connect_timeout:g} s "
                f"({type(err).__name__}: {err})".replace(": )", ")")
            ) from err
        nc.options["max_reconnect_attempts"] = -1
        self._nc = nc
        try:
            js = nc.jetstream(timeout=config.request_timeout)
            await self._ensure_stream(js)
            for bucket in config.buckets:
                await self._ensure_bucket(js, bucket)
        except BaseException as err:
            self._nc = None
            await nc.close()
            if isinstance(err, (TimeoutError, nats.errors.Error, OSError)):
                raise translate(err, f"creating the store at {config.url}") from err
            raise
        self.max_payload = nc.max_payload
        self._js = js

    async def _ensure_stream(self, js: JetStreamContext) -> None:
        config = self.config
        subjects = [f"{config.prefix}.>"]
        try:
            info = await js.stream_info(config.stream)
        except nats.js.errors.NotFoundError:
            if not config.create:
                raise ConfigurationError(
                    f"there is no JetStream stream {config.stream!r} at {config.url}, and create=false"
                ) from None
            stream = api.StreamConfig(
                name=config.stream,
                description="chronik event store",
                subjects=subjects,
                retention=api.RetentionPolicy.LIMITS,
                discard=api.DiscardPolicy.OLD,
                storage=api.StorageType(config.storage),
                num_replicas=config.replicas,
                duplicate_window=config.duplicate_window,
            )
            info = await self._create(js.add_stream(stream), f"stream {config.stream!r}")
        if info.config.subjects != subjects:
            raise NotAChronikStoreError(
                f"the JetStream stream {config.stream!r} at {config.url} is not a chronik store: "
                f"its subjects are {info.config.subjects}, not {subjects}"
            )

    async def _ensure_bucket(self, js: JetStreamContext, bucket: str) -> None:
        try:
            await js.stream_info(f"KV_{bucket}")
            return
        except nats.js.errors.NotFoundError:
            pass
        config = api.KeyValueConfig(
            bucket=bucket,
            history=1,
            storage=api.StorageType(self.config.storage),
            replicas=self.config.replicas,
        )
        await self._create(js.create_key_value(config), f"key-value bucket {bucket!r}")

    async def _create(self, creating: Awaitable[T], what: str) -> T:
        try:
            return await creating
        except nats.js.errors.APIError as err:
            raise ConfigurationError(
                f"JetStream at {self.config.url} refused to create the {what} "
                f"(replicas={self.config.replicas}, storage={self.config.storage}): "
                f"{err.description} (error {err.err_code})"
            ) from err
        except ValueError as err:  # nats-py's own checks of names
            raise ConfigurationError(f"cannot create the {what} at {self.config.url}: {err}") from err

    async def drop(self) -> None:
        """Delete the stream and the buckets, with everything in them."""
        js = await self.ready()
        config = self.config
        for name in (config.stream, *(f"KV_{bucket}" for bucket in config.buckets)):
            try:
                await js.delete_stream(name)
            except nats.js.errors.NotFoundError:
                pass
            except (TimeoutError, nats.errors.Error, OSError) as err:
                raise translate(err, f"deleting the JetStream stream {name!r}") from err

    async def size(self) -> int:
        """Bytes the stream and the buckets hold (JetStream's own count)."""
        js = await self.ready()
        config = self.config
        total = 0
        for name in (config.stream, *(f"KV_{bucket}" for bucket in config.buckets)):
            try:
                info = await js.stream_info(name)
            except nats.js.errors.NotFoundError:
                continue
            except (TimeoutError, nats.errors.Error, OSError) as err:
                raise translate(err, f"reading the size of {name!r}") from err
            total += info.state.bytes
        return total

    async def close(self) -> None:
        self.closed = True
        nc, self._nc, self._js = self._nc, None, None
        if nc is not None and not nc.is_closed:
            await nc.close()

    # -- requests -----------------------------------------------------------------------------

    async def call(self, what: str, request: Callable[[JetStreamContext], Awaitable[T]]) -> T:
        """``request(js)``, with the client's errors translated (``what`` names it)."""
        js = await self.ready()
        try:
            return await request(js)
        except (TimeoutError, nats.errors.Error, OSError) as err:
            raise translate(err, what) from err

    async def last_message(self, stream: str, subject: str) -> api.RawStreamMsg | None:
        """The last message on ``subject`` of ``stream`` (from the stream's leader)."""
        js = await self.ready()
        try:
            return await js.get_msg(stream, subject=subject)
        except nats.js.errors.NotFoundError:
            return None
        except (TimeoutError, nats.errors.Error, OSError) as err:
            raise translate(err, f"reading {subject!r}") from err

    async def message_at_or_after(self, stream: str, subject: str, seq: int) -> api.RawStreamMsg | None:
        """The first message on ``subject`` (a filter) of ``stream`` at or after ``seq``."""
        js = await self.ready()
        try:
            return await js.get_msg(stream, seq=max(seq, 1), subject=subject, next=True)
        except nats.js.errors.NotFoundError:
            return None
        except (TimeoutError, nats.errors.Error, OSError) as err:
            raise translate(err, f"reading {subject!r}") from err

    async def next_message(self, subject: str, seq: int) -> int | None:
        """The sequence of the first message on ``subject`` (a filter) at or after ``seq``."""
        raw = await self.message_at_or_after(self.config.stream, subject, seq)
        return None if raw is None else raw.seq

    async def last_sequence(self) -> int:
        """The sequence of the log's last message (0 when empty)."""
        info = await self.call("reading the stream's state", lambda js: js.stream_info(self.config.stream))
        return info.state.last_seq


class Pull:
    """An ephemeral pull consumer read one request at a time (no lingering requests).

    ``fetch`` asks for up to ``batch`` messages with ``no_wait`` and returns what
    came before the server said there were no more; an empty list means nothing was
    pending at that moment. Closing deletes the consumer (the server also forgets it
    after ``inactive_threshold`` if this process dies).
    """

    def __init__(
        self,
        conn: Connection,
        stream: str,
        filter_subject: str | None,
        start_seq: int = 1,
        *,
        last_per_subject: bool = False,
    ) -> None:
        self.conn = conn
        self.stream = stream
        self.filter_subject = filter_subject
        self.start_seq = start_seq
        self.last_per_subject = last_per_subject
        self.pending = -1  # messages left after the last one delivered; -1: unknown
        self._name = ""
        self._sub: Subscription | None = None
        self._inbox = ""

    async def open(self) -> Pull:
        js = await self.conn.ready()
        nc = self.conn.nc
        if self.last_per_subject:
            policy, start = api.DeliverPolicy.LAST_PER_SUBJECT, None
        elif self.start_seq <= 1:
            policy, start = api.DeliverPolicy.ALL, None
        else:
            policy, start = api.DeliverPolicy.BY_START_SEQUENCE, self.start_seq
        config = api.ConsumerConfig(
            deliver_policy=policy,
            opt_start_seq=start,
            ack_policy=api.AckPolicy.NONE,
            filter_subject=self.filter_subject,
            inactive_threshold=60.0,
            mem_storage=True,
            num_replicas=1,
        )
        try:
            self._inbox = nc.new_inbox()
            self._sub = await nc.subscribe(self._inbox)
            info = await js.add_consumer(self.stream, config)
        except (TimeoutError, nats.errors.Error, OSError) as err:
            await self.close()
            raise translate(err, f"opening a reader of {self.stream!r}") from err
        self._name = info.name
        self.pending = info.num_pending or 0
        return self

    async def fetch(self, batch: int) -> list[Delivered]:
        sub = self._sub
        if sub is None:
            raise StoreClosedError("the reader is closed")
        nc = self.conn.nc
        request = json.dumps({"batch": batch, "no_wait": True}).encode()
        got: list[Delivered] = []
        try:
            await nc.publish(
                f"$JS.API.CONSUMER.MSG.NEXT.{self.stream}.{self._name}", request, reply=self._inbox
            )
            while len(got) < batch:
                # A no_wait request is answered at once; silence means the server
                # lost the consumer (a restart), and the reader makes a new one.
                msg = await sub.next_msg(timeout=min(self.conn.config.request_timeout, _FETCH_WAIT))
                status = msg.headers.get("Status") if msg.headers else None
                if status is None:
                    got.append(_delivered(msg))
                elif status == "100":  # idle heartbeat
                    continue
                elif status in ("404", "408"):  # no more messages for this request
                    break
                else:
                    description = msg.headers.get("Description", "") if msg.headers else ""
                    raise PersistenceError(
                        f"reading {self.stream!r}: the server answered {status} {description}"
                    )
        except (TimeoutError, nats.errors.Error, OSError) as err:
            raise translate(err, f"reading {self.stream!r}") from err
        if got:
            self.pending = got[-1].pending
        elif self.pending != -1:
            self.pending = 0
        return got

    async def close(self) -> None:
        sub, self._sub = self._sub, None
        name, self._name = self._name, ""
        nc = self.conn._nc
        if nc is None or nc.is_closed:
            return
        try:
            if sub is not None:
                await sub.unsubscribe()
            if name:
                js = self.conn._js
                if js is not None:
                    await js.delete_consumer(self.stream, name)
        except (TimeoutError, nats.errors.Error, OSError):
            pass  # the server forgets it after inactive_threshold

    async def __aenter__(self) -> Pull:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
