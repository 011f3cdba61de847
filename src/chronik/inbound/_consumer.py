"""The inbound loop: take messages from a source, handle each, acknowledge it after.

Each message is handled by the application's function (``handle(message)``), one at a
time in the order the source delivers them, and acknowledged only once the function
has returned, that is once what it appended has committed. A crash before the
acknowledgement makes the broker deliver the message again; handling it again writes
nothing twice when the handler derives what it writes from the message id (a
``CommandHandler`` given ``command_id=message.id``, as :func:`command_handler` does,
or events with ids from :func:`event_id`): the store recognises them.

What goes wrong:

- a transient error (:func:`chronik.errors.is_transient`: the store or the broker
  restarting, a lost connection, a command that kept conflicting) is retried with
  backoff for as long as it lasts: the message is not at fault. Meanwhile the source
  is told the message is still in progress, and :meth:`status` says ``retrying``;
- a message that does not decode (:class:`~chronik.errors.UndecodableMessageError`)
  or has no id goes to the source's dead-letter place at once;
- any other error of the handler is tried ``tries`` times in all, then the message goes
  to the dead-letter place, so one poison message never blocks the queue;
- a broker error that is not transient (refused credentials, a missing queue) stops
  the loop with it.

:class:`AsyncInbound` runs on the caller's event loop (its handler may be a coroutine
function; a plain one runs in a worker thread, so it may block); :class:`Inbound` is
the sync face, running the same loop on an event loop of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import threading
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, Literal, TypeVar

import msgspec

from chronik import _spans
from chronik._retry import Backoff, Faults, Retrying
from chronik.brokers._base import AsyncSource, Delivery, InboundMessage
from chronik.errors import ConfigurationError, InvalidInputError, UndecodableMessageError, is_transient

__all__ = ["AsyncInbound", "Inbound", "InboundPolicy", "InboundState", "InboundStatus", "MessageHandler"]

T = TypeVar("T")
logger = logging.getLogger("chronik.inbound")
MessageHandler = Callable[[InboundMessage], Awaitable[object] | object]
"""``handle(message)``: a plain function, or (on :class:`AsyncInbound`) a coroutine function."""
InboundState = Literal["idle", "running", "retrying", "stopped"]
_IDS: Final = uuid.UUID("a3f1c7e2-59b4-4d0e-8c61-2b7f0e9d4a15")


@dataclass(frozen=True)
class InboundPolicy:
    """``tries``: how many times a handler's error that is not transient is tried before the
    message goes to the dead-letter place; ``backoff`` and ``max_backoff``: the pauses
    between tries (and while a transient fault lasts); ``transient``: which errors are
    retried for as long as they last."""

    tries: int = 3
    backoff: float = 0.1
    max_backoff: float = 10.0
    transient: Callable[[BaseException], bool] = is_transient

    def __post_init__(self) -> None:
        if isinstance(self.tries, bool) or not isinstance(self.tries, int) or self.tries < 1:
            raise InvalidInputError(f"tries must be an int >= 1, got {self.tries!r}")
        Backoff(self.backoff, self.max_backoff)  # validates them
        if not callable(self.transient):
            raise InvalidInputError(f"transient must be a function of the error, got {self.transient!r}")

    def delay(self, attempts: int) -> float:
        return Backoff(self.backoff, self.max_backoff).delay(attempts)


class InboundStatus(msgspec.Struct, frozen=True):
    """What an inbound consumer is doing (msgspec-encodable, for a health endpoint).

    ``state``: ``idle`` (not running), ``running``, ``retrying`` (riding out a transient
    fault: ``retrying`` says since when, how many attempts and the last error),
    ``stopped`` (``error`` says why; None: :meth:`stop` was called). ``handled`` and
    ``dead_lettered`` count messages since the consumer object was made."""

    name: str
    state: InboundState
    since: datetime
    handled: int
    dead_lettered: int
    retrying: Retrying | None = None
    error: str | None = None


def event_id(message: InboundMessage, index: int = 0, stream_id: str = "") -> uuid.UUID:
    """The id of the ``index``-th event that handling ``message`` appends (to ``stream_id``):
    the same for every delivery of the message, so the store writes it once."""
    return uuid.uuid5(_IDS, f"{message.id}\x1f{stream_id}\x1f{index}")


def _describe(error: BaseException) -> str:
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


class _Loop:
    """The loop itself, on one event loop; the faces start and stop it."""

    def __init__(
        self,
        source: AsyncSource,
        handle: MessageHandler,
        policy: InboundPolicy | None,
        batch_size: int,
        idle_timeout: float,
        name: str | None,
        offload: bool,
    ) -> None:
        if not isinstance(source, AsyncSource):
            raise ConfigurationError(f"expected a source of chronik.brokers (receive, close), got {source!r}")
        if not callable(handle):
            raise InvalidInputError(f"handle must be a function of the message, got {handle!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InvalidInputError(f"batch_size must be an int >= 1, got {batch_size!r}")
        self.source = source
        self.handle = handle
        self.policy = policy if policy is not None else InboundPolicy()
        self.batch_size = batch_size
        self.idle_timeout = idle_timeout
        self.name = name or str(getattr(source, "name", type(source).__name__))
        self._offload = offload or not inspect.iscoroutinefunction(handle)
        self.handled = 0
        self.dead_lettered = 0
        self.error: BaseException | None = None
        self._faults = Faults()
        self._state: InboundState = "idle"
        self._since = datetime.now(UTC)
        self._stopping: asyncio.Event | None = None
        self.requested = False  # stop() before the loop started: it stops at once

    def _enter(self, state: InboundState) -> None:
        if state != self._state:
            self._state, self._since = state, datetime.now(UTC)

    def status(self) -> InboundStatus:
        retrying = self._faults.current
        state, since = self._state, self._since
        if retrying is not None and state == "running":
            state, since = "retrying", retrying.since
        return InboundStatus(
            self.name,
            state,
            since,
            self.handled,
            self.dead_lettered,
            retrying if state == "retrying" else None,
            None if self.error is None else _describe(self.error),
        )

    def stop(self) -> None:
        """Ask the loop to stop (on the loop's own thread)."""
        self.requested = True
        if self._stopping is not None:
            self._stopping.set()

    async def _pause(self, delay: float) -> bool:
        """Sleep ``delay`` seconds; True if stopped meanwhile."""
        assert self._stopping is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), delay)
        return self._stopping.is_set()

    async def run(self, *, until_idle: bool) -> int:
        """Handle messages until stopped (or, ``until_idle``, until none comes within the
        idle timeout); returns how many were handled or dead-lettered."""
        self._stopping = asyncio.Event()
        if self.requested:
            self._stopping.set()
        self.error = None
        before = self.handled + self.dead_lettered
        self._enter("running")
        try:
            while not self._stopping.is_set():
                try:
                    deliveries = await self.source.receive(self.batch_size, self.idle_timeout)
                    if not deliveries and until_idle:
                        break
                    for delivery in deliveries:
                        if self._stopping.is_set():
                            break  # unacknowledged: the broker delivers it again
                        await self._one(delivery)
                    self._faults.recovered(logger, f"inbound {self.name}", self._fields())
                except _Stop:
                    break
                except Exception as err:
                    if not self.policy.transient(err):
                        raise
                    if await self._wait_out(err, f"inbound {self.name}"):
                        break
        except BaseException as err:
            self.error = err
            self._enter("stopped")
            logger.error("inbound %s stopped: %s", self.name, err, extra=self._fields())
            raise
        self._enter("stopped" if not until_idle else "idle")
        return self.handled + self.dead_lettered - before

    def _fields(self, message: InboundMessage | None = None, **more: object) -> dict[str, object]:
        """The fields of this consumer's log records (``extra=``)."""
        fields: dict[str, object] = {"inbound": self.name}
        if message is not None:
            fields["message_id"] = message.id
        fields.update(more)
        return fields

    async def _wait_out(
        self, error: BaseException, where: str, message: InboundMessage | None = None
    ) -> bool:
        retrying = self._faults.failed(error)
        delay = self.policy.delay(retrying.attempts)
        self._faults.log(logger, where, delay, self._fields(message, attempt=retrying.attempts))
        return await self._pause(delay)

    async def _call(self, message: InboundMessage) -> None:
        if self._offload:
            result = await asyncio.to_thread(self.handle, message)
        else:
            result = self.handle(message)
        if inspect.isawaitable(result):
            await result

    async def _one(self, delivery: Delivery) -> None:
        message = delivery.message
        if not message.id:
            await self._dead_letter(delivery, "it has no message id, so it cannot be handled idempotently")
            return
        # One CONSUMER span for the message, its tries and its acknowledgement, in the
        # sender's trace: what the handler appends continues it.
        span = _spans.receiving(
            message.headers,
            message.system or "unknown",
            message.destination or message.subject or message.source,
            message.id,
        )
        with span:
            try:
                await self._tries(delivery, span)
            except _Stop:
                stopped = True  # not a failure of the message: it is left for the broker
            else:
                stopped = False
        if stopped:
            raise _Stop

    async def _tries(self, delivery: Delivery, span: _spans.MessageSpan) -> None:
        message = delivery.message
        tries = 0  # the tries that failed for a fault of the message (not a transient one)
        attempt = 0
        while True:
            attempt += 1
            try:
                await self._call(message)
            except UndecodableMessageError as err:
                span.failed(err, _describe(err))
                await self._dead_letter(delivery, _describe(err))
                return
            except Exception as err:
                where = f"inbound {self.name} on message {message.id}"
                if self.policy.transient(err):
                    span.retried(err, attempt)
                    with contextlib.suppress(Exception):
                        await delivery.in_progress()
                    if await self._wait_out(err, where, message):
                        raise _Stop from None
                    continue
                tries += 1
                if tries >= self.policy.tries:
                    reason = f"{_describe(err)} (after {tries} tries)"
                    span.failed(err, reason)
                    await self._dead_letter(delivery, reason)
                    return
                span.retried(err, attempt)
                logger.warning(
                    "%s: try %d of %d failed (%s)",
                    where,
                    tries,
                    self.policy.tries,
                    _describe(err),
                    extra=self._fields(message, attempt=tries),
                )
                if await self._pause(self.policy.delay(tries)):
                    raise _Stop from None
                continue
            # Only now: what the handler appended has committed.
            await delivery.ack()
            self.handled += 1
            if logger.isEnabledFor(logging.DEBUG):
                logger.debug(
                    "inbound %s handled message %s",
                    self.name,
                    message.id,
                    extra=self._fields(message, attempt=attempt),
                )
            return

    async def _dead_letter(self, delivery: Delivery, reason: str) -> None:
        await delivery.dead_letter(reason)
        self.dead_lettered += 1
        message = delivery.message
        logger.error(
            "inbound %s: message %s dead-lettered: %s",
            self.name,
            message.id,
            reason,
            extra=self._fields(message),
        )


class _Stop(Exception):
    """Stopped while waiting to retry a message (left unacknowledged for the broker)."""


class AsyncInbound:
    """Consumes ``source`` (a JetStream consumer, a RabbitMQ queue, a Redis consumer group of
    :mod:`chronik.brokers`) into ``handle``, on the running event loop (see the module
    docstring). The source is the caller's to close."""

    def __init__(
        self,
        source: AsyncSource,
        handle: MessageHandler,
        *,
        policy: InboundPolicy | None = None,
        batch_size: int = 10,
        idle_timeout: float = 1.0,
        name: str | None = None,
    ) -> None:
        self._loop = _Loop(source, handle, policy, batch_size, idle_timeout, name, offload=False)
        self._task: asyncio.Task[int] | None = None

    @property
    def error(self) -> BaseException | None:
        """Why it stopped, if it failed."""
        return self._loop.error

    async def run(self) -> None:
        """Handle messages until :meth:`stop`."""
        await self._loop.run(until_idle=False)

    async def run_until_idle(self) -> int:
        """Handle messages until none comes within ``idle_timeout``; returns how many
        were handled or dead-lettered."""
        return await self._loop.run(until_idle=True)

    def run_in_background(self) -> AsyncInbound:
        """Run as a task of the running loop until :meth:`stop`."""
        if self._task is not None and not self._task.done():
            raise InvalidInputError(f"{self!r} is already running")
        self._loop.requested = False
        self._task = asyncio.get_running_loop().create_task(self._loop.run(until_idle=False))
        return self

    async def stop(self) -> None:
        """Stop after the message being handled (a retrying one stays unacknowledged)."""
        self._loop.stop()
        if self._task is not None:
            await asyncio.wait({self._task})

    def status(self) -> InboundStatus:
        return self._loop.status()

    def __repr__(self) -> str:
        return f"AsyncInbound({self._loop.source!r})"


class Inbound:
    """The sync face of :class:`AsyncInbound`: ``handle`` is a plain function (called on a
    worker thread) and the loop runs on an event loop of its own."""

    def __init__(
        self,
        source: AsyncSource,
        handle: Callable[[InboundMessage], object],
        *,
        policy: InboundPolicy | None = None,
        batch_size: int = 10,
        idle_timeout: float = 1.0,
        name: str | None = None,
    ) -> None:
        if inspect.iscoroutinefunction(handle):
            raise ConfigurationError(
                "Inbound takes a plain function: use AsyncInbound for a coroutine function"
            )
        self._loop = _Loop(source, handle, policy, batch_size, idle_timeout, name, offload=True)
        self._thread: threading.Thread | None = None
        self._event_loop: asyncio.AbstractEventLoop | None = None

    @property
    def error(self) -> BaseException | None:
        """Why it stopped, if it failed."""
        return self._loop.error

    def _run(self, until_idle: bool) -> int:
        async def main() -> int:
            self._event_loop = asyncio.get_running_loop()
            try:
                return await self._loop.run(until_idle=until_idle)
            finally:
                await self._loop.source.close()

        try:
            return asyncio.run(main())
        finally:
            self._event_loop = None

    def run(self) -> None:
        """Handle messages until :meth:`stop` (from another thread); closes the source after."""
        self._run(until_idle=False)

    def run_until_idle(self) -> int:
        """Handle messages until none comes within ``idle_timeout``, then close the source;
        returns how many were handled or dead-lettered."""
        return self._run(until_idle=True)

    def run_in_background(self) -> Inbound:
        """Run on a daemon thread until :meth:`stop`."""
        if self._thread is not None and self._thread.is_alive():
            raise InvalidInputError(f"{self!r} is already running")
        self._loop.requested = False

        def run() -> None:
            with contextlib.suppress(Exception):  # kept in .error and the log
                self.run()

        self._thread = threading.Thread(target=run, name=f"chronik-inbound-{self._loop.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float | None = None) -> None:
        """Stop after the message being handled; in the background, wait for it to end."""
        self._loop.requested = True  # seen by a loop that has not started yet
        loop = self._event_loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop ended meanwhile
                loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def status(self) -> InboundStatus:
        return self._loop.status()

    def __repr__(self) -> str:
        return f"Inbound({self._loop.source!r})"
