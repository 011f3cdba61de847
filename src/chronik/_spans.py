"""chronik's spans of commands, loads and runners (see ``chronik._otel`` for the rest).

- a span around a command (:func:`handling`), with each conflict that makes the
  handler decide again as a span event (:func:`conflicted`), and a span for each
  load of a stream (:func:`loading`);
- a span around each batch a projection runner commits (:func:`batch`), linked to
  the traces of its events, and inside it, for each event that carries a trace
  context, a span whose *parent* is that context (:func:`processing`): a
  projection's work and a process manager's step, with the commands and events it
  causes, are in the trace of the request that appended the event.

Without spans to make (no API, no SDK, or turned off) each returns a shared object
that does nothing; :func:`processing` still makes an event's trace context current
for its handler, so what the handler appends carries it on.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final, TypeVar

from chronik._otel import MAX_LINKS, Carry, Otel, context_of, current, expected_value, tracer
from chronik.errors import WrongExpectedVersionError
from chronik.events import RecordedEvent, category_of

if TYPE_CHECKING:
    from types import TracebackType

    from opentelemetry.trace import Span

__all__ = ["batch", "conflicted", "handling", "handling_log", "loading", "processing"]

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


class _Handle:
    """The span of one command (see :func:`handling`)."""

    __slots__ = ("_attributes", "_name", "_otel", "_span", "_token")

    def __init__(self, otel: Otel, name: str, attributes: dict[str, Any]) -> None:
        self._otel = otel
        self._name = name
        self._attributes = attributes
        self._span: Span | None = None
        self._token: object = None

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

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        otel, span = self._otel, self._span
        otel.context.detach(self._token)
        if span is None:
            return
        if error is not None:
            otel.fail(span, error)
        span.end()


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


class _Batch:
    """The span of one batch a runner handles (see :func:`batch`)."""

    __slots__ = ("_attributes", "_events", "_name", "_otel", "_span", "_token")

    def __init__(self, otel: Otel, name: str, attributes: dict[str, Any], events: Sequence[RecordedEvent]):
        self._otel = otel
        self._name = name
        self._attributes = attributes
        self._events = events
        self._span: Span | None = None
        self._token: object = None

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

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        otel, span = self._otel, self._span
        otel.context.detach(self._token)
        if span is None:
            return
        if error is not None:
            otel.fail(span, error)
        span.end()


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


class _Process:
    """The span of one event a runner handles (see :func:`processing`)."""

    __slots__ = ("_otel", "_span", "_token")

    def __init__(self, otel: Otel, span: Span) -> None:
        self._otel = otel
        self._span = span
        self._token: object = None

    def __enter__(self) -> _Process:
        self._token = self._otel.attach(self._span)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        otel, span = self._otel, self._span
        otel.context.detach(self._token)
        if error is not None:
            # The runner wraps a handler's error; the handler's own is what tells.
            otel.fail(span, error.__cause__ or error)
        span.end()


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
