"""chronik's OpenTelemetry: spans, metrics and the trace context that events carry.

The library depends on ``opentelemetry-api`` only (the ``otel`` extra), and only
when it is installed: the API is imported the first time chronik would use it, and
without it every hook here returns a shared object that does nothing, so chronik
without the extra pays a function call and a comparison per append
(``benchmarks/otel_overhead.py`` measures it). The application chooses the SDK and
its exporters; chronik takes its tracer and meter from the global providers, or
from those given to :func:`chronik.telemetry.configure`.

What is recorded (``docs/integrations.md`` lists names and attributes):

- a PRODUCER span around every append (:func:`appending`, which each backend's
  append, append_many and append_if and each transaction's append go through),
  current while the events are encoded, so the W3C ``traceparent`` and
  ``tracestate`` of that span go into each event's metadata (:func:`trace_metadata`,
  called by ``chronik._append.prepare_write``); counters of appends, events and
  conflicts; and a DEBUG line on the ``chronik.store`` logger;
- a span around a command (:func:`handling`), with each conflict that makes the
  handler decide again as a span event (:func:`conflicted`), and a span for each
  load of a stream (:func:`loading`);
- a span around each batch a projection runner commits (:func:`batch`) linked to
  the traces of its events, and inside it, for each event that carries a trace
  context, a span whose *parent* is that context (:func:`processing`): a
  projection's work and a process manager's step, with the commands and events it
  causes, are in the trace of the request that appended the event.

Payloads never go into spans, metrics or logs: they may hold personal data.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence, Sized
from typing import TYPE_CHECKING, Any, Final, TypeVar

from chronik.errors import AppendConditionFailedError, ConcurrencyError, WrongExpectedVersionError
from chronik.events import AppendResult, RecordedEvent, StreamState, category_of

if TYPE_CHECKING:
    from types import ModuleType, TracebackType

    from opentelemetry.context import Context
    from opentelemetry.metrics import Counter, Meter, MeterProvider
    from opentelemetry.trace import Span, SpanKind, Tracer, TracerProvider
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

__all__ = [
    "TRACEPARENT",
    "TRACESTATE",
    "Otel",
    "appending",
    "batch",
    "configure",
    "conflicted",
    "context_of",
    "current",
    "handling",
    "loading",
    "processing",
    "trace_metadata",
]

TRACEPARENT: Final = "traceparent"
"""The metadata key of an event's W3C ``traceparent`` (the span that appended it)."""
TRACESTATE: Final = "tracestate"
"""The metadata key of an event's W3C ``tracestate``, when the trace has one."""

SCOPE: Final = "chronik"
"""The instrumentation scope of chronik's tracer and meter."""
MAX_LINKS: Final = 128
"""Links from a batch span to its events' traces, at most (the SDK's default limit)."""

store_log: Final = logging.getLogger("chronik.store")
handling_log: Final = logging.getLogger("chronik.handling")

R = TypeVar("R")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("chronik")
    except PackageNotFoundError:
        return ""


class Otel:
    """The OpenTelemetry API, loaded, with chronik's tracer, meter, counters and propagator."""

    def __init__(self, tracer_provider: TracerProvider | None, meter_provider: MeterProvider | None) -> None:
        from opentelemetry import context, metrics, trace
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self.context: ModuleType = context
        self.trace: ModuleType = trace
        version = _version()
        self.tracer: Tracer = trace.get_tracer(SCOPE, version, tracer_provider)
        self.meter: Meter = metrics.get_meter(SCOPE, version, meter_provider)
        self.propagator: TraceContextTextMapPropagator = TraceContextTextMapPropagator()
        self.producer: SpanKind = trace.SpanKind.PRODUCER
        self.consumer: SpanKind = trace.SpanKind.CONSUMER
        self.internal: SpanKind = trace.SpanKind.INTERNAL
        self.error_status = trace.Status(trace.StatusCode.ERROR)
        meter = self.meter
        self.appends: Counter = meter.create_counter(
            "chronik.appends", unit="{append}", description="Appends committed (one per stream written)"
        )
        self.events: Counter = meter.create_counter(
            "chronik.events.appended",
            unit="{event}",
            description="Events appended (its rate: events per second)",
        )
        self.conflicts: Counter = meter.create_counter(
            "chronik.conflicts",
            unit="{conflict}",
            description="Appends refused because another writer got there first "
            "(wrong expected version, or a DCB append condition that failed)",
        )
        from chronik._lag_metrics import register_gauges

        register_gauges(meter)

    def start(
        self,
        name: str,
        kind: SpanKind,
        attributes: dict[str, Any],
        parent: Context | None = None,
    ) -> Span:
        return self.tracer.start_span(name, parent, kind, attributes)

    def attach(self, span: Span) -> object:
        return self.context.attach(self.trace.set_span_in_context(span))

    def fail(self, span: Span, error: BaseException) -> None:
        """Mark ``span`` as failed by ``error`` (its class as ``error.type``, the exception as an event)."""
        span.set_attribute("error.type", type(error).__qualname__)
        span.record_exception(error)
        span.set_status(self.error_status)


class _State:
    resolved = False
    otel: Otel | None = None


_state: Final = _State()
_lock: Final = threading.Lock()


def current() -> Otel | None:
    """chronik's OpenTelemetry, loaded at the first call; None without the API, or when disabled."""
    if _state.resolved:
        return _state.otel
    with _lock:
        if not _state.resolved:
            try:
                _state.otel = Otel(None, None)
            except ImportError:
                _state.otel = None
            _state.resolved = True
    return _state.otel


def configure(
    tracer_provider: TracerProvider | None, meter_provider: MeterProvider | None, enabled: bool
) -> None:
    """See :func:`chronik.telemetry.configure`."""
    with _lock:
        otel: Otel | None = None
        if enabled:
            try:
                otel = Otel(tracer_provider, meter_provider)
            except ImportError:
                if tracer_provider is not None or meter_provider is not None:
                    raise
        _state.otel, _state.resolved = otel, True


# -- trace context in events ---------------------------------------------------------------


def trace_metadata() -> dict[str, str] | None:
    """The current span's W3C ``traceparent`` (and ``tracestate``) as event metadata, or
    None when no span is current (or OpenTelemetry is off)."""
    otel = _state.otel if _state.resolved else current()
    if otel is None:
        return None
    carrier: dict[str, str] = {}
    otel.propagator.inject(carrier)
    return carrier or None


def context_of(metadata: Mapping[str, Any], otel: Otel) -> Context | None:
    """The trace context stored in an event's metadata, or None when it has none (or a
    malformed one: the propagator ignores what is not a W3C ``traceparent``)."""
    traceparent = metadata.get(TRACEPARENT)
    if not isinstance(traceparent, str):
        return None
    carrier = {TRACEPARENT: traceparent}
    tracestate = metadata.get(TRACESTATE)
    if isinstance(tracestate, str):
        carrier[TRACESTATE] = tracestate
    # Extracted into an empty context: the event's trace, not whatever the runner's is.
    context = otel.propagator.extract(carrier)
    if not otel.trace.get_current_span(context).get_span_context().is_valid:
        return None
    return context


# -- appends -------------------------------------------------------------------------------


def _expected(expected: object) -> str | int:
    if isinstance(expected, StreamState):
        return expected.value
    if isinstance(expected, int) and not isinstance(expected, bool):
        return expected
    return repr(expected)


class _NoAppend:
    """What :func:`appending` gives when there is nothing to record."""

    __slots__ = ()

    def __enter__(self) -> _NoAppend:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def done(self, result: R) -> R:
        return result


_NO_APPEND: Final = _NoAppend()


class _Append:
    """One append's span, counters and log line (see :func:`appending`)."""

    __slots__ = (
        "_count",
        "_expected",
        "_operation",
        "_otel",
        "_result",
        "_span",
        "_stream",
        "_system",
        "_token",
    )

    def __init__(
        self, otel: Otel | None, system: str, operation: str, stream: str | None, expected: object, count: int
    ) -> None:
        self._otel = otel
        self._system = system
        self._operation = operation
        self._stream = stream
        self._expected = expected
        self._count = count
        self._result: AppendResult | list[AppendResult] | None = None
        self._span: Span | None = None
        self._token: object = None

    def __enter__(self) -> _Append:
        otel = self._otel
        if otel is None:
            return self
        stream = self._stream
        attributes: dict[str, Any] = {
            "messaging.system": "chronik",
            "messaging.operation.type": "send",
            "messaging.operation.name": self._operation,
            "db.system.name": self._system,
        }
        if self._count:
            attributes["messaging.batch.message_count"] = self._count
            attributes["chronik.event_count"] = self._count
        if stream is not None:
            attributes["messaging.destination.name"] = stream
            attributes["chronik.stream"] = stream
            attributes["chronik.category"] = category_of(stream)
        if self._expected is not None:
            attributes["chronik.expected_version"] = _expected(self._expected)
        name = self._operation if stream is None else f"{self._operation} {category_of(stream)}"
        span = self._span = otel.start(name, otel.producer, attributes)
        # Current while the events are encoded: their traceparent is this span's.
        self._token = otel.attach(span)
        return self

    def done(self, result: R) -> R:
        """Record what the append returned (an AppendResult, or a list of them); returns it."""
        if isinstance(result, AppendResult | list):
            self._result = result
        return result

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        otel, span = self._otel, self._span
        if otel is not None and span is not None:
            otel.context.detach(self._token)
        result = self._result
        results = [] if result is None else [result] if isinstance(result, AppendResult) else result
        if error is None:
            self._committed(results)
        else:
            self._refused(error)
        if span is not None:
            span.end()

    def _committed(self, results: list[AppendResult]) -> None:
        otel, span = self._otel, self._span
        if span is not None and len(results) == 1:
            last = results[0]
            span.set_attribute("chronik.version", last.version)
            span.set_attribute("chronik.position", last.position)
            if self._stream is None:  # append_if to a stream of its own
                span.set_attribute("chronik.stream", last.stream_id)
        elif span is not None and results:
            span.set_attribute("chronik.stream_count", len(results))
            span.set_attribute("chronik.streams", [r.stream_id for r in results])
        if otel is not None:
            for r in results:
                attributes = {"db.system.name": self._system, "chronik.category": category_of(r.stream_id)}
                otel.appends.add(1, attributes)
                if len(results) == 1 and self._count:
                    otel.events.add(self._count, attributes)
            if len(results) > 1 and self._count:
                otel.events.add(self._count, {"db.system.name": self._system})
        if store_log.isEnabledFor(logging.DEBUG):
            for r in results:
                store_log.debug(
                    "appended to %s: version %d, position %d",
                    r.stream_id,
                    r.version,
                    r.position,
                    extra={
                        "stream_id": r.stream_id,
                        "version": r.version,
                        "position": r.position,
                        "event_count": self._count if len(results) == 1 else None,
                        "expected_version": _expected(self._expected) if len(results) == 1 else None,
                        "backend": self._system,
                    },
                )

    def _refused(self, error: BaseException) -> None:
        otel, span = self._otel, self._span
        if span is not None and otel is not None:
            otel.fail(span, error)
            if isinstance(error, WrongExpectedVersionError):
                span.set_attribute("chronik.actual_version", error.actual)
        if not isinstance(error, ConcurrencyError):
            return
        stream = error.stream_id if isinstance(error, WrongExpectedVersionError) else self._stream
        if otel is not None:
            attributes = {"db.system.name": self._system, "error.type": type(error).__qualname__}
            if stream is not None:
                attributes["chronik.category"] = category_of(stream)
            otel.conflicts.add(1, attributes)
        if store_log.isEnabledFor(logging.DEBUG):
            extra: dict[str, Any] = {"stream_id": stream, "backend": self._system}
            if isinstance(error, WrongExpectedVersionError):
                extra["expected_version"] = _expected(error.expected)
                extra["version"] = error.actual
            elif isinstance(error, AppendConditionFailedError):
                extra["position"] = getattr(error, "position", None)
            store_log.debug("append refused: %s", error, extra=extra)


def appending(
    system: str,
    operation: str,
    stream_id: object = None,
    expected_version: object = None,
    events: object = None,
) -> _Append | _NoAppend:
    """A context manager around one append, append_many or append_if of a backend.

    ``system`` names the backend (``db.system.name``: ``"sqlite"``, ``"postgresql"``),
    ``operation`` the method. The arguments are the caller's, not yet validated (the
    append validates them inside the block). Call ``.done(result)`` on what the
    append returns: its version and position go on the span.
    """
    otel = _state.otel if _state.resolved else current()
    if otel is None and not store_log.isEnabledFor(logging.DEBUG):
        return _NO_APPEND
    stream = stream_id if isinstance(stream_id, str) else None
    count = len(events) if isinstance(events, Sized) and not isinstance(events, str | bytes) else 0
    return _Append(otel, system, operation, stream, expected_version, count)


def append_many_events(writes: object) -> list[object]:
    """The events of an append_many's writes, for :func:`appending`'s count (none when
    they are not what append_many takes: it refuses them itself)."""
    if not isinstance(writes, Sequence) or isinstance(writes, str | bytes):
        return []
    found: list[object] = []
    for write in writes:
        events = getattr(write, "events", None)
        if isinstance(events, Sequence) and not isinstance(events, str | bytes):
            found.extend(events)
    return found


# -- commands ------------------------------------------------------------------------------


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
    otel = _state.otel if _state.resolved else current()
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
    otel = _state.otel if _state.resolved else current()
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
    otel = _state.otel if _state.resolved else current()
    attributes: dict[str, Any] = {
        "chronik.stream": error.stream_id,
        "chronik.expected_version": _expected(error.expected),
        "chronik.actual_version": error.actual,
        "chronik.attempt": attempt,
    }
    if otel is not None:
        otel.trace.get_current_span().add_event("chronik.conflict", attributes)
    handling_log.info(
        "stream %s moved on (expected version %s, actual %d): deciding again (attempt %d of %d)",
        error.stream_id,
        _expected(error.expected),
        error.actual,
        attempt + 1,
        attempts,
        extra={
            "stream_id": error.stream_id,
            "expected_version": _expected(error.expected),
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
    otel = _state.otel if _state.resolved else current()
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


def processing(event: RecordedEvent, kind: str, name: str) -> _Process | _NoSpan:
    """A span around one event's handler, current while it runs, when the event carries
    a trace context: its parent is that context (the span that appended the event), so
    what the handler does, and the events it appends, continue the event's trace.

    An event without one gets no span of its own (it is in its batch's span): a replay
    of old, untraced history costs one span per batch, not one per event.
    """
    otel = _state.otel if _state.resolved else current()
    if otel is None:
        return _NO_SPAN
    parent = context_of(event.metadata, otel)
    if parent is None:
        return _NO_SPAN
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
