"""chronik's spans of commands, loads and runners (see ``chronik._otel`` for the rest).

- a span around a command (:func:`handling`), with each conflict that makes the
  handler decide again as a span event (:func:`conflicted`), and a span for each
  load of a stream (:func:`loading`);
- a span around each batch a projection runner commits (:func:`batch`), linked to
  the traces of its events, and inside it, for each event that carries a trace
  context, a span whose *parent* is that context (:func:`processing`): a
  projection's work and a process manager's step, with the commands and events it
  causes, are in the trace of the request that appended the event;
- a PRODUCER span for each message sent to a broker (:func:`sending`: the relay's
  publishers, and ``chronik.telemetry.publishing``), whose parent is the trace context
  the message carries from its event, and a CONSUMER span for each message handled
  from one (:func:`receiving`: inbound consumers, and ``chronik.telemetry.consuming``),
  whose parent is the sender's, so a trace goes on across the broker.

Without spans to make (no API, no SDK, or turned off) each returns a shared object
that does nothing; :func:`processing` and :func:`receiving` still make an event's (a
message's) trace context current for its handler, so what the handler appends
carries it on, and :func:`sending` gives the headers with the trace context as the
message has it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, TypeVar

from chronik._otel import (
    MAX_LINKS,
    TRACE_KEYS,
    Carry,
    Otel,
    context_of,
    current,
    expected_value,
    tracer,
)
from chronik.errors import WrongExpectedVersionError
from chronik.events import RecordedEvent, category_of

if TYPE_CHECKING:
    from types import TracebackType

    from opentelemetry.context import Context
    from opentelemetry.trace import Span

__all__ = [
    "MessageSpan",
    "batch",
    "conflicted",
    "handling",
    "handling_log",
    "loading",
    "processing",
    "receiving",
    "sending",
]

handling_log: Final = logging.getLogger("chronik.handling")

R = TypeVar("R")


class _NoSpan:
    """A span-shaped object that records nothing."""

    __slots__ = ()

    def __enter__(self) -> _NoSpan:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def done(self, result: R) -> R:
        return result

    def loaded(self, version: int, snapshot_version: int | None, events: int | None) -> None:
        return None

    def failed(self, error: BaseException) -> None:
        return None


_NO_SPAN: Final = _NoSpan()


class _Current:
    """A span current for a block and ended after it, failed by an error raised in it."""

    __slots__ = ("_otel", "_span", "_token")

    def __init__(self, otel: Otel, span: Span | None = None) -> None:
        self._otel = otel
        self._span = span
        self._token: object = None

    def _failure(self, error: BaseException) -> BaseException:
        return error

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        otel, span = self._otel, self._span
        otel.context.detach(self._token)
        if span is None:
            return
        if error is not None:
            otel.fail(span, self._failure(error))
        span.end()


class _Handle(_Current):
    """The span of one command (see :func:`handling`)."""

    __slots__ = ("_attributes", "_name")

    def __init__(self, otel: Otel, name: str, attributes: dict[str, Any]) -> None:
        super().__init__(otel)
        self._name = name
        self._attributes = attributes

    def __enter__(self) -> _Handle:
        otel = self._otel
        self._span = otel.start(self._name, otel.internal, self._attributes)
        self._token = otel.attach(self._span)
        return self

    def done(self, result: R) -> R:
        """Record a ``CommandResult`` (version, attempts, events appended); returns it."""
        span = self._span
        if span is not None:
            for attribute, name in (
                ("version", "chronik.version"),
                ("position", "chronik.position"),
                ("attempts", "chronik.attempts"),
                ("already_handled", "chronik.already_handled"),
            ):
                value = getattr(result, attribute, None)
                if value is not None:
                    span.set_attribute(name, value)
            events = getattr(result, "events", None)
            if isinstance(events, tuple):
                span.set_attribute("chronik.event_count", len(events))
        return result


def handling(operation: str, model: str, stream_id: object, command: object = None) -> _Handle | _NoSpan:
    """A span around a command handler's ``operation`` (``handle``, ``start``, ``load``,
    ``execute``) of ``model`` on ``stream_id``, current while it runs."""
    otel = tracer()
    if otel is None:
        return _NO_SPAN
    attributes: dict[str, Any] = {"chronik.model": model, "chronik.operation": operation}
    if isinstance(stream_id, str):
        attributes["chronik.stream"] = stream_id
        attributes["chronik.category"] = category_of(stream_id)
    if command is not None and not callable(command):
        attributes["chronik.command"] = type(command).__qualname__
    return _Handle(otel, f"{operation} {model}", attributes)


class _Load:
    """The span of one load of a stream (started, never current: see :func:`loading`)."""

    __slots__ = ("_otel", "_span")

    def __init__(self, otel: Otel, span: Span) -> None:
        self._otel = otel
        self._span = span

    def loaded(self, version: int, snapshot_version: int | None, events: int | None) -> None:
        span = self._span
        span.set_attribute("chronik.version", version)
        if events is not None:
            span.set_attribute("chronik.events_read", events)
        if snapshot_version is not None:
            span.set_attribute("chronik.snapshot_version", snapshot_version)
        span.end()

    def failed(self, error: BaseException) -> None:
        if not isinstance(error, GeneratorExit):
            self._otel.fail(self._span, error)
        self._span.end()


def loading(model: str, stream_id: str) -> _Load | _NoSpan:
    """A span for loading ``stream_id`` (its snapshot and the events after it), a child
    of the current span. It is never made current: the load runs as a generator whose
    steps the caller performs, and a context attached in one step could be detached in
    another context than it was attached in."""
    otel = tracer()
    if otel is None:
        return _NO_SPAN
    attributes = {
        "chronik.model": model,
        "chronik.stream": stream_id,
        "chronik.category": category_of(stream_id),
    }
    return _Load(otel, otel.start(f"load {model}", otel.internal, attributes))


def conflicted(error: WrongExpectedVersionError, attempt: int, attempts: int) -> None:
    """A command's append met a conflict and it will be decided again: an event on the
    command's span and an INFO line on ``chronik.handling``."""
    otel = tracer()
    attributes: dict[str, Any] = {
        "chronik.stream": error.stream_id,
        "chronik.expected_version": expected_value(error.expected),
        "chronik.actual_version": error.actual,
        "chronik.attempt": attempt,
    }
    if otel is not None:
        otel.trace.get_current_span().add_event("chronik.conflict", attributes)
    handling_log.info(
        "stream %s moved on (expected version %s, actual %d): deciding again (attempt %d of %d)",
        error.stream_id,
        expected_value(error.expected),
        error.actual,
        attempt + 1,
        attempts,
        extra={
            "stream_id": error.stream_id,
            "expected_version": expected_value(error.expected),
            "version": error.actual,
            "attempt": attempt,
        },
    )


# -- projections and process managers ------------------------------------------------------


class _Batch(_Current):
    """The span of one batch a runner handles (see :func:`batch`)."""

    __slots__ = ("_attributes", "_events", "_name")

    def __init__(self, otel: Otel, name: str, attributes: dict[str, Any], events: Sequence[RecordedEvent]):
        super().__init__(otel)
        self._name = name
        self._attributes = attributes
        self._events = events

    def __enter__(self) -> _Batch:
        otel = self._otel
        span = self._span = otel.start(self._name, otel.consumer, self._attributes)
        if span.is_recording():
            # Links, not a parent: a batch holds events of many traces, and a span has one
            # parent. Each event's own span (``processing``) is in its trace.
            linked = 0
            for event in self._events:
                context = context_of(event.metadata, otel)
                if context is None:
                    continue
                span.add_link(otel.trace.get_current_span(context).get_span_context())
                linked += 1
                if linked == MAX_LINKS:
                    break
        self._token = otel.attach(span)
        return self


def batch(kind: str, name: str, version: int, events: Sequence[RecordedEvent]) -> _Batch | _NoSpan:
    """A span around a batch of ``events`` that the runner of ``kind`` (``projection``,
    ``process manager``) ``name`` handles and commits, current while it does."""
    otel = tracer()
    if otel is None:
        return _NO_SPAN
    attributes: dict[str, Any] = {
        "messaging.system": "chronik",
        "messaging.operation.type": "process",
        "messaging.consumer.group.name": name,
        "messaging.batch.message_count": len(events),
        "chronik.kind": kind,
        "chronik.projection": name,
        "chronik.projection_version": version,
        "chronik.event_count": len(events),
    }
    if events:
        attributes["chronik.position"] = events[-1].position
    return _Batch(otel, f"{kind} batch {name}", attributes, events)


class _Process(_Current):
    """The span of one event a runner handles (see :func:`processing`)."""

    __slots__ = ()

    def __enter__(self) -> _Process:
        assert self._span is not None
        self._token = self._otel.attach(self._span)
        return self

    def _failure(self, error: BaseException) -> BaseException:
        # The runner wraps a handler's error; the handler's own is what tells.
        return error.__cause__ or error


def processing(event: RecordedEvent, kind: str, name: str) -> _Process | Carry | _NoSpan:
    """A span around one event's handler, current while it runs, when the event carries
    a trace context: its parent is that context (the span that appended the event), so
    what the handler does, and the events it appends, continue the event's trace.

    An event without one gets no span of its own (it is in its batch's span): a replay
    of old, untraced history costs one span per batch, not one per event.
    """
    otel = current()
    if otel is None:
        return _NO_SPAN
    parent = context_of(event.metadata, otel)
    if parent is None:
        return _NO_SPAN
    if not otel.tracing():
        # No spans, but the event's trace goes on to what the handler appends.
        return Carry(otel, parent)
    current_span = otel.trace.get_current_span()
    attributes: dict[str, Any] = {
        "messaging.system": "chronik",
        "messaging.operation.type": "process",
        "messaging.consumer.group.name": name,
        "messaging.destination.name": event.stream_id,
        "messaging.message.id": str(event.event_id),
        "chronik.kind": kind,
        "chronik.projection": name,
        "chronik.stream": event.stream_id,
        "chronik.version": event.version,
        "chronik.position": event.position,
        "chronik.event_type": event.type,
    }
    span = otel.start(f"{kind} {name}", otel.consumer, attributes, parent)
    batch_context = current_span.get_span_context()
    if batch_context.is_valid and span.is_recording():
        span.add_link(batch_context)
    return _Process(otel, span)


# -- messages to and from brokers --------------------------------------------------------------


class _Message(_Current):
    """The span of one message sent to a broker or handled from one (see :func:`sending`,
    :func:`receiving`); ``headers``: the headers to send it with, which carry its trace on."""

    __slots__ = ("_context", "_current", "headers")

    def __init__(
        self,
        otel: Otel,
        span: Span | None,
        headers: dict[str, str],
        *,
        current: bool,
        context: Context | None = None,
    ) -> None:
        super().__init__(otel, span)
        self.headers = headers
        self._current = current
        self._context = context

    def __enter__(self) -> _Message:
        if self._current:
            span = self._span
            if span is not None:
                self._token = self._otel.attach(span)
            elif self._context is not None:
                # No spans go anywhere: only the sender's trace goes on.
                self._token = self._otel.context.attach(self._context)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._token is not None:
            super().__exit__(kind, error, tb)
            return
        span = self._span
        if span is not None:
            if error is not None:
                self._otel.fail(span, error)
            span.end()

    def retried(self, error: BaseException, attempt: int) -> None:
        """A try failed and the message is handled again: a ``chronik.retry`` span event."""
        span = self._span
        if span is not None:
            span.add_event(
                "chronik.retry", {"error.type": type(error).__qualname__, "chronik.attempt": attempt}
            )

    def failed(self, error: BaseException, reason: str) -> None:
        """It could not be handled (``reason``: why, as its dead letter says): the span failed."""
        span = self._span
        if span is not None:
            self._otel.fail(span, error)
            span.set_attribute("chronik.dead_letter_reason", reason[:500])


class _NoMessage:
    """What :func:`sending` and :func:`receiving` give when there is nothing to record."""

    __slots__ = ("headers",)

    def __init__(self, headers: dict[str, str]) -> None:
        self.headers = headers

    def __enter__(self) -> _NoMessage:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def retried(self, error: BaseException, attempt: int) -> None:
        return None

    def failed(self, error: BaseException, reason: str) -> None:
        return None


MessageSpan = _Message | _NoMessage
"""What :func:`sending` and :func:`receiving` give: a context manager, with the ``headers``
to send the message with, ``retried`` and ``failed``."""


def sending(
    headers: Mapping[str, str],
    system: str,
    destination: str,
    message_id: str,
    attributes: Mapping[str, Any] | None = None,
    *,
    name: str | None = None,
    current: bool = False,
) -> MessageSpan:
    """A PRODUCER span for sending a message to a broker, whose parent is the trace context
    in ``headers`` (an event's, as the relay's messages carry it), and which links to the
    span current where it is sent (the relay's batch). Its ``headers`` are ``headers``
    with the trace context of this span instead, so the message's consumers continue it;
    without spans to make, ``headers`` as they are.

    A message without a trace context (an event appended with telemetry off, or before
    it was on) gets no span, as such an event gets none when a projection handles it: a
    relay publishing years of untraced history costs a span per batch, not one per event.

    ``name`` is the span's name without the operation (default: ``destination``: give a
    template where the destination names a stream, so names stay few); ``current``:
    make the span current in the block (for a broker client's own spans inside it).
    """
    otel = tracer()
    parent = None if otel is None else context_of(headers, otel)
    if otel is None or parent is None:
        return _NoMessage(dict(headers))
    every: dict[str, Any] = {
        "messaging.system": system,
        "messaging.operation.type": "send",
        "messaging.operation.name": "publish",
        "messaging.destination.name": destination,
        "messaging.message.id": message_id,
    }
    if attributes:
        every.update(attributes)
    span = otel.start(f"send {name or destination}", otel.producer, every, parent)
    here = otel.trace.get_current_span().get_span_context()
    if here.is_valid and span.is_recording():
        span.add_link(here)
    carrier: dict[str, str] = {}
    otel.propagator.inject(carrier, otel.trace.set_span_in_context(span))
    sent = {k: v for k, v in headers.items() if k not in TRACE_KEYS} if carrier else dict(headers)
    sent.update(carrier)
    return _Message(otel, span, sent, current=current)


def receiving(
    headers: Mapping[str, Any], system: str, destination: str, message_id: str | None = None
) -> MessageSpan:
    """A CONSUMER span for handling a message received from a broker, current in the
    block, whose parent is the trace context in its ``headers`` (``traceparent``,
    ``tracestate``, in any case; ``str`` or ``bytes``): a command handled in it appends
    events in the sender's trace. Without spans to make, the sender's context alone is
    current in the block."""
    otel = current()
    if otel is None:
        return _NoMessage({})
    carrier: dict[str, str] = {}
    for key, value in headers.items():
        lowered = key.lower() if isinstance(key, str) else ""
        if lowered in TRACE_KEYS:
            carrier[lowered] = value.decode() if isinstance(value, bytes) else str(value)
    parent = context_of(carrier, otel)
    if not otel.tracing():
        return _Message(otel, None, {}, current=True, context=parent)
    attributes: dict[str, Any] = {
        "messaging.system": system,
        "messaging.operation.type": "process",
        "messaging.destination.name": destination,
    }
    if message_id is not None:
        attributes["messaging.message.id"] = message_id
    span = otel.start(f"process {destination}", otel.consumer, attributes, parent)
    return _Message(otel, span, {}, current=True)
