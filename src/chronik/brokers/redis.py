"""Redis Streams: publishing with ``XADD`` (each event once), and consuming with a consumer group.

- :class:`RedisStreamsPublisher` appends each event to the Redis stream named from its
  category (``key="chronik:{category}"``) as an entry whose fields are ``id`` (the
  event id), ``data`` (the payload as JSON) and the relay's headers. Redis has no
  message ids of its own to dedupe by, so each ``XADD`` runs in a script that first
  looks for the event id's marker key and adds nothing when it is there, then sets the
  marker (with the entry id, kept ``dedupe_ttl`` seconds, 7 days by default): an event
  published again after a crash is not added twice. The batch goes as one pipeline,
  which Redis runs in order, so a cut connection leaves a prefix of it applied.
  The marker key is ``{<stream key>}:seen:<event id>``: its hash tag is the stream
  key, so both live on the same node of a Redis Cluster.
- :class:`RedisStreamsSource` reads a consumer group for ``chronik.inbound``
  (``XREADGROUP``), acknowledges with ``XACK`` only after a message is handled, picks
  up its own pending entries first after a restart and claims those another consumer
  left idle (``XAUTOCLAIM``); a poison message is added to a dead-letter stream and
  acknowledged in one ``MULTI``.

Errors are :class:`~chronik.errors.BrokerError`: transient for a lost or refused
connection, a timeout, a server loading its data or a cluster re-sharding; not for
refused credentials or a command refused (a key of another type).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any, Final

from chronik.brokers._base import ERROR, InboundMessage, Message, Template, broker_error, redacted, sending
from chronik.errors import ConfigurationError

try:
    import redis.asyncio
    import redis.exceptions
except ModuleNotFoundError as err:  # pragma: no cover - the dev install has it
    raise ConfigurationError("the Redis broker needs redis-py: pip install 'chronik[redis]'") from err

__all__ = ["RedisStreamsPublisher", "RedisStreamsSource"]

DEFAULT_URL: Final = "redis://127.0.0.1:6379/0"
SYSTEM: Final = "redis"
"""``messaging.system`` of the publish and process spans."""
DEDUPE_TTL: Final = 7 * 24 * 3600.0

# KEYS: the stream, the event's marker. ARGV: the marker's lifetime in ms, MAXLEN ('' for
# none), then the entry's fields and values. Atomic: nothing runs between the check
# and the XADD.
_XADD_ONCE: Final = """
local seen = redis.call('GET', KEYS[2])
if seen then return seen end
local id
if ARGV[2] ~= '' then
  id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', unpack(ARGV, 3))
else
  id = redis.call('XADD', KEYS[1], '*', unpack(ARGV, 3))
end
redis.call('SET', KEYS[2], id, 'PX', ARGV[1])
return id
"""


def translate(err: BaseException, what: str) -> BaseException:
    """A :class:`BrokerError` for a client error met while doing ``what`` (others as they are)."""
    return broker_error(
        err,
        what,
        refused=(redis.exceptions.AuthenticationError, redis.exceptions.AuthorizationError),
        transient=(
            redis.exceptions.ConnectionError,
            redis.exceptions.TimeoutError,
            redis.exceptions.BusyLoadingError,
            redis.exceptions.TryAgainError,
            redis.exceptions.ClusterDownError,
        ),
        other=(redis.exceptions.RedisError,),
    )


def _client(url: str, timeout: float) -> redis.asyncio.Redis:
    if not isinstance(url, str) or not url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigurationError(f"a Redis URL starts with redis://, got {url!r}")
    return redis.asyncio.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)


def marker_key(key: str, event_id: str) -> str:
    """The key that says event ``event_id`` was added to the stream ``key``."""
    return f"{{{key}}}:seen:{event_id}"


class RedisStreamsPublisher:
    """Appends events to Redis streams, each once (see the module docstring).

    ``key``: a template of ``{category}``, ``{type}`` and ``{stream}``; ``maxlen`` trims
    each stream to about that many entries (None: never).
    """

    is_async: Final = True

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        key: str = "chronik:{category}",
        maxlen: int | None = None,
        dedupe_ttl: float = DEDUPE_TTL,
        timeout: float = 10.0,
    ) -> None:
        self.url = redacted(url)
        self._redis = _client(url, timeout)
        self.key = Template(key, "key")
        if maxlen is not None and (isinstance(maxlen, bool) or not isinstance(maxlen, int) or maxlen < 1):
            raise ConfigurationError(f"maxlen must be an int >= 1 or None, got {maxlen!r}")
        if dedupe_ttl <= 0:
            raise ConfigurationError(f"dedupe_ttl must be > 0 seconds, got {dedupe_ttl!r}")
        self.maxlen = maxlen
        self.dedupe_ttl = dedupe_ttl
        self._script = self._redis.register_script(_XADD_ONCE)

    async def publish(self, messages: Sequence[Message]) -> None:
        ttl = str(int(self.dedupe_ttl * 1000))
        maxlen = "" if self.maxlen is None else str(self.maxlen)
        try:
            # Each message's span ends when Redis has run the pipeline (or it failed).
            async with self._redis.pipeline(transaction=False) as pipe:
                with contextlib.ExitStack() as spans:
                    for message in messages:
                        key = self.key.render(message)
                        sent = sending(message, SYSTEM, key, self.key)
                        spans.enter_context(sent)
                        fields: list[Any] = ["id", message.id, "data", message.body]
                        for name, value in sent.headers.items():
                            fields += [name, value]
                        await self._script(
                            keys=[key, marker_key(key, message.id)], args=[ttl, maxlen, *fields], client=pipe
                        )
                    await pipe.execute()
        except Exception as err:
            raise translate(err, f"adding to Redis streams at {self.url}") from err

    async def close(self) -> None:
        await self._redis.aclose()

    def __repr__(self) -> str:
        return f"RedisStreamsPublisher({self.url!r}, key={self.key!r})"


class _RedisDelivery:
    def __init__(
        self, source: RedisStreamsSource, entry_id: str, fields: dict[str, bytes], attempts: int
    ) -> None:
        self._source = source
        self.entry_id = entry_id
        self._fields = fields
        text = {k: v.decode("utf-8", "replace") for k, v in fields.items() if k not in ("id", "data")}
        self.message = InboundMessage(
            fields["id"].decode() if "id" in fields else f"{source.key}:{entry_id}",
            fields.get("data", b""),
            text,
            source.name,
            source.key,
            attempts,
            SYSTEM,
            source.key,
        )

    async def ack(self) -> None:
        source = self._source
        try:
            await source._redis.xack(source.key, source.group, self.entry_id)
        except Exception as err:
            raise translate(err, f"acknowledging entry {self.entry_id} of {source.name}") from err

    async def dead_letter(self, reason: str) -> None:
        source = self._source
        fields: dict[Any, Any] = {**self._fields, ERROR: reason[:1000], "entry": self.entry_id}
        try:
            async with source._redis.pipeline(transaction=True) as pipe:
                pipe.xadd(source.dead_letter, fields)
                pipe.xack(source.key, source.group, self.entry_id)
                await pipe.execute()
        except Exception as err:
            raise translate(err, f"dead-lettering entry {self.entry_id} to {source.dead_letter}") from err

    async def in_progress(self) -> None:
        source = self._source
        try:
            # Claiming it again resets its idle time, so no other consumer claims it meanwhile.
            await source._redis.xclaim(
                source.key, source.group, source.consumer, 0, [self.entry_id], justid=True
            )
        except Exception as err:
            raise translate(err, f"claiming entry {self.entry_id} of {source.name}") from err


class RedisStreamsSource:
    """The consumer ``consumer`` of the group ``group`` on the Redis stream ``key`` (both
    created when missing; a new group starts at ``start``, ``"0"``: the whole stream).

    After a restart it reads its own pending entries first; entries another consumer
    left unacknowledged for ``claim_idle`` seconds are claimed. A poison message goes to
    the stream ``dead_letter`` (default ``<key>:dead-letter``).
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        key: str,
        group: str,
        consumer: str = "chronik",
        dead_letter: str | None = None,
        start: str = "0",
        claim_idle: float = 60.0,
        timeout: float = 10.0,
    ) -> None:
        for value, what in ((key, "key"), (group, "group"), (consumer, "consumer")):
            if not isinstance(value, str) or not value:
                raise ConfigurationError(f"{what} must be a non-empty str, got {value!r}")
        self.url = redacted(url)
        self._redis = _client(url, timeout + 5.0)
        self.key = key
        self.group = group
        self.consumer = consumer
        self.dead_letter = dead_letter or f"{key}:dead-letter"
        self.start = start
        self.claim_idle = claim_idle
        self.name = f"Redis stream {key} group {group}"
        self._ready = False
        self._pending = True  # read this consumer's own pending entries first

    async def _prepare(self) -> None:
        if self._ready:
            return
        try:
            await self._redis.xgroup_create(self.key, self.group, id=self.start, mkstream=True)
        except redis.exceptions.ResponseError as err:
            if "BUSYGROUP" not in str(err):
                raise
        self._ready = True

    async def receive(self, limit: int, timeout: float) -> list[_RedisDelivery]:
        try:
            await self._prepare()
            if self._pending:
                got = await self._read("0", limit, None)
                if got:
                    return got
                self._pending = False
            claimed = await self._claim(limit)
            if claimed:
                return claimed
            return await self._read(">", limit, max(1, int(timeout * 1000)))
        except Exception as err:
            self._ready = False
            self._pending = True
            raise translate(err, f"reading {self.name}") from err

    async def _read(self, after: str, limit: int, block: int | None) -> list[_RedisDelivery]:
        answer: Any = await self._redis.xreadgroup(
            self.group, self.consumer, {self.key: after}, count=limit, block=block
        )
        deliveries = []
        for _, entries in answer or []:
            for entry_id, fields in entries:
                if fields is None:
                    continue  # trimmed away while pending: nothing left to handle
                deliveries.append(self._delivery(entry_id, fields, 1 if after == ">" else 2))
        return deliveries

    async def _claim(self, limit: int) -> list[_RedisDelivery]:
        answer: Any = await self._redis.xautoclaim(
            self.key, self.group, self.consumer, int(self.claim_idle * 1000), "0-0", count=limit
        )
        entries = answer[1] if answer else []
        return [self._delivery(entry_id, fields, 2) for entry_id, fields in entries if fields]

    def _delivery(self, entry_id: bytes | str, fields: dict[Any, Any], attempts: int) -> _RedisDelivery:
        decoded = {k.decode() if isinstance(k, bytes) else str(k): v for k, v in fields.items()}
        entry = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
        return _RedisDelivery(self, entry, decoded, attempts)

    async def close(self) -> None:
        await self._redis.aclose()

    def __repr__(self) -> str:
        return f"RedisStreamsSource({self.url!r}, key={self.key!r}, group={self.group!r})"
