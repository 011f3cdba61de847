"""chronik's OpenTelemetry: spans, metrics and the trace context that events carry.

The library depends on ``opentelemetry-api`` only (the ``otel`` extra), and only
when it is installed: the API is imported the first time chronik would use it, and
without it every hook here returns a shared object that does nothing, so chronik
without the extra pays a function call and a comparison per append
(``benchmarks/otel_overhead.py`` measures it). The application chooses the SDK and
its exporters; chronik takes its tracer and meter from the global providers, or
from those given to :func:`chronik.telemetry.configure`.

What is recorded here (``docs/integrations.md`` lists names and attributes; the
spans of commands and runners are in ``chronik._spans``): a PRODUCER span around
every append (:func:`appending`, which each backend's append, append_many and
append_if and each transaction's append go through), current while the events are
encoded, so the W3C ``traceparent`` and ``tracestate`` of that span go into each
event's metadata (:func:`trace_metadata`, called by
``chronik._append.prepare_write``); counters of appends, events and conflicts; and a
DEBUG line on the ``chronik.store`` logger.

Payloads never go into spans, metrics or logs: they may hold personal data.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence, Sized
from typing import TYPE_CHECKING, Any, Final, TypeVar

from chronik.errors import AppendConditionFailedError, ConcurrencyError, WrongExpectedVersionError
from chronik.events import AppendResult, StreamState, category_of

if TYPE_CHECKING:
    from types import ModuleType, TracebackType

    from opentelemetry.context import Context
    from opentelemetry.metrics import Counter, Meter, MeterProvider
    from opentelemetry.trace import Span, SpanKind, Tracer, TracerProvider
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

__all__ = [
    "MAX_LINKS",
    "TRACEPARENT",
    "TRACESTATE",
    "TRACE_KEYS",
    "Carry",
    "Otel",
    "append_many_events",
    "appending",
    "configure",
    "context_of",
    "current",
    "expected_value",
    "missing",
    "trace_metadata",
    "trace_of",
    "tracer",
]

TRACEPARENT: Final = "traceparent"
"""The metadata key of an event's W3C ``traceparent`` (the span that appended it)."""
TRACESTATE: Final = "tracestate"
"""The metadata key of an event's W3C ``tracestate``, when the trace has one."""

SCOPE: Final = "chronik"
"""The instrumentation scope of chronik's tracer and meter."""
RECHECK: Final = 1.0
"""Seconds before chronik looks again for a global provider it found unset."""
MAX_LINKS: Final = 128
"""Links from a batch span to its events' traces, at most (the SDK's default limit)."""

store_log: Final = logging.getLogger("chronik.store")

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
        self.metrics: ModuleType = metrics
        self._tracer_provider = tracer_provider
        self._meter_provider = meter_provider
        self._tracing = False
        self._metering = False
        self._tracing_checked = 0.0
        self._metering_checked = 0.0
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

    def tracing(self) -> bool:
        """Whether spans go anywhere: a tracer provider other than the API's no-op ones
        (the global one is a proxy that does nothing until the application sets one).
        When not, chronik makes no spans, and only passes trace context on."""
        if self._tracing:
            return True
        now = time.monotonic()
        if now < self._tracing_checked:
            return False
        given = self._tracer_provider
        provider = given if given is not None else self.trace.get_tracer_provider()
        if isinstance(provider, self.trace.ProxyTracerProvider | self.trace.NoOpTracerProvider):
            # Asked again in a second (not at every append: the API's look-up reads the
            # environment); a global provider set later is used from then on.
            self._tracing_checked = now + RECHECK
            return False
        # For good: a global provider, once set, cannot be replaced (configure() makes a new Otel).
        self._tracing = True
        return True

    def metering(self) -> bool:
        """Whether metrics go anywhere (as :meth:`tracing`, for the meter provider)."""
        if self._metering:
            return True
        now = time.monotonic()
        if now < self._metering_checked:
            return False
        given = self._meter_provider
        provider = given if given is not None else self.metrics.get_meter_provider()
        # The API's global meter provider is a private proxy class until one is set.
        proxy = type(provider).__name__ == "_ProxyMeterProvider"
        if proxy or isinstance(provider, self.metrics.NoOpMeterProvider):
            self._metering_checked = now + RECHECK
            return False
        self._metering = True
        return True

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
    missing = False  # the API is not installed (else: None is chronik's telemetry turned off)
    # The one on the global providers, made once: its instruments and gauges are
    # registered on the global meter, and registering them again would repeat them.
    on_globals: Otel | None = None


_state: Final = _State()
_lock: Final = threading.Lock()


def current() -> Otel | None:
    """chronik's OpenTelemetry, loaded at the first call; None without the API, or when disabled."""
    if _state.resolved:
        return _state.otel
    with _lock:
        if not _state.resolved:
            try:
                _state.otel = _on_globals()
            except ImportError:
                _state.otel, _state.missing = None, True
            _state.resolved = True
    return _state.otel


def _on_globals() -> Otel:
    if _state.on_globals is None:
        _state.on_globals = Otel(None, None)
    return _state.on_globals


def tracer() -> Otel | None:
    """chronik's OpenTelemetry when spans go somewhere (see :meth:`Otel.tracing`), else None."""
    otel = _state.otel if _state.resolved else current()
    return otel if otel is not None and otel.tracing() else None


def configure(
    tracer_provider: TracerProvider | None, meter_provider: MeterProvider | None, enabled: bool
) -> None:
    """See :func:`chronik.telemetry.configure`."""
    with _lock:
        otel: Otel | None = None
        if enabled:
            try:
                given = tracer_provider is not None or meter_provider is not None
                otel = Otel(tracer_provider, meter_provider) if given else _on_globals()
            except ImportError:
                if tracer_provider is not None or meter_provider is not None:
                    raise
                _state.missing = True
        _state.otel, _state.resolved = otel, True


def missing() -> bool:
    """Whether the OpenTelemetry API is not installed, so that no trace context goes on
    through the current context (as it does with the API, and not at all when chronik's
    telemetry is turned off)."""
    if not _state.resolved:
        current()
    return _state.missing


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


TRACE_KEYS: Final = (TRACEPARENT, TRACESTATE)


def trace_of(metadata: Mapping[str, Any]) -> dict[str, str]:
    """The W3C trace context stored in an event's metadata, as headers (empty when it
    has none): what the relay's messages and ``chronik.telemetry.trace_headers`` carry."""
    return {key: value for key in TRACE_KEYS if isinstance(value := metadata.get(key), str) and value}


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


class Carry:
    """A trace context made current for a block, without a span of chronik's own."""

    __slots__ = ("_context", "_otel", "_token")

    def __init__(self, otel: Otel, context: Context) -> None:
        self._otel = otel
        self._context = context
        self._token: object = None

    def __enter__(self) -> Carry:
        self._token = self._otel.context.attach(self._context)
        return self

    def __exit__(self, *exc: object) -> None:
        self._otel.context.detach(self._token)


# -- appends -------------------------------------------------------------------------------


def expected_value(expected: object) -> str | int:
    """An expected version as an attribute value: ``any``, ``no_stream``, ``stream_exists`` or the number."""
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
        "_meter",
        "_operation",
        "_otel",
        "_result",
        "_span",
        "_stream",
        "_system",
        "_token",
    )

    def __init__(
        self,
        otel: Otel | None,
        meter: Otel | None,
        system: str,
        operation: str,
        stream: str | None,
        expected: object,
        count: int,
    ) -> None:
        self._otel = otel  # for the span: None when spans go nowhere
        self._meter = meter  # for the counters: None when metrics go nowhere
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
            attributes["chronik.expected_version"] = expected_value(self._expected)
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
        span, otel = self._span, self._meter
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
                        "expected_version": expected_value(self._expected) if len(results) == 1 else None,
                        "backend": self._system,
                    },
                )

    def _refused(self, error: BaseException) -> None:
        span = self._span
        if span is not None and self._otel is not None:
            self._otel.fail(span, error)
            if isinstance(error, WrongExpectedVersionError):
                span.set_attribute("chronik.actual_version", error.actual)
        if not isinstance(error, ConcurrencyError):
            return
        otel = self._meter
        stream = error.stream_id if isinstance(error, WrongExpectedVersionError) else self._stream
        if otel is not None:
            attributes = {"db.system.name": self._system, "error.type": type(error).__qualname__}
            if stream is not None:
                attributes["chronik.category"] = category_of(stream)
            otel.conflicts.add(1, attributes)
        if store_log.isEnabledFor(logging.DEBUG):
            extra: dict[str, Any] = {"stream_id": stream, "backend": self._system}
            if isinstance(error, WrongExpectedVersionError):
                extra["expected_version"] = expected_value(error.expected)
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
    tracer = otel if otel is not None and otel.tracing() else None
    meter = otel if otel is not None and otel.metering() else None
    if tracer is None and meter is None and not store_log.isEnabledFor(logging.DEBUG):
        return _NO_APPEND
    stream = stream_id if isinstance(stream_id, str) else None
    count = len(events) if isinstance(events, Sized) and not isinstance(events, str | bytes) else 0
    return _Append(tracer, meter, system, operation, stream, expected_version, count)


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
