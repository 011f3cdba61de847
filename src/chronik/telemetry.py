"""OpenTelemetry for chronik: spans, metrics, and the trace context that events carry.

chronik is instrumented natively: with ``opentelemetry-api`` installed (the
``otel`` extra) and an SDK configured by the application, it records

- a span for each append, load, command, projection batch, process-manager step,
  message the relay publishes and message an inbound consumer handles, following
  OpenTelemetry's messaging and database conventions where they fit;
- the W3C trace context of each append in the metadata of the events it writes
  (:data:`TRACEPARENT`, :data:`TRACESTATE`), continued as the *parent* of the span
  in which a projection, a process manager or the relay handles the event, and
  carried in the relay's messages to the consumers beyond the broker, so one trace
  covers a request, its events and everything they cause;
- counters of appends, events appended and conflicts, and gauges of each runner's
  lag (events and seconds behind the head).

Without the API installed chronik records nothing and costs nothing measurable;
with the API and no SDK, it only passes trace context on. Payloads never go into
spans, metrics or logs (they may hold personal data). ``docs/integrations.md``
lists every span, attribute, metric, logger and log field.

This module is what an application or an integration of its own (to a broker
chronik has no publisher or source for) uses directly: :func:`configure` (which providers chronik uses),
:func:`publishing` and :func:`consuming` (a message's span, and the headers that
carry the trace on), :func:`trace_headers` (an event's stored trace context),
:func:`observe_lag` (the lag gauges for a runner of your own).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Final

from chronik import _lag_metrics, _otel, _spans
from chronik.errors import ConfigurationError
from chronik.events import RecordedEvent

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import TracerProvider

__all__ = [
    "LOGGERS",
    "TRACEPARENT",
    "TRACESTATE",
    "configure",
    "consuming",
    "forget_lag",
    "observe_lag",
    "publishing",
    "trace_headers",
]

TRACEPARENT: Final = _otel.TRACEPARENT
"""``"traceparent"``: the metadata key (and message header) of the W3C trace parent."""
TRACESTATE: Final = _otel.TRACESTATE
"""``"tracestate"``: the metadata key (and message header) of the W3C trace state."""

LOGGERS: Final = (
    "chronik.store",
    "chronik.handling",
    "chronik.projections",
    "chronik.subscriptions",
    "chronik.inbound",
    "chronik.brokers",
    "chronik.telemetry",
)
"""The loggers chronik writes to (``docs/integrations.md`` lists their fields)."""


def configure(
    *,
    tracer_provider: TracerProvider | None = None,
    meter_provider: MeterProvider | None = None,
    enabled: bool = True,
) -> None:
    """Choose where chronik's spans and metrics go.

    By default chronik uses OpenTelemetry's global providers (set with
    ``trace.set_tracer_provider``, ``metrics.set_meter_provider``, or by
    ``opentelemetry-instrument``), and needs no call here. Pass providers to keep
    chronik's telemetry apart from the global ones (as OpenTelemetry's own
    instrumentations take ``tracer_provider=``), ``enabled=False`` to turn it off
    (no spans, no metrics, no trace context in events), and call it with no
    arguments to go back to the global providers. Each call with a meter provider
    registers chronik's instruments on it: give each provider once.

    Raises :class:`~chronik.ConfigurationError` when providers are given but
    ``opentelemetry-api`` is not installed.
    """
    try:
        _otel.configure(tracer_provider, meter_provider, enabled)
    except ImportError as err:
        raise ConfigurationError(
            "chronik.telemetry needs the OpenTelemetry API: pip install 'chronik[otel]'"
        ) from err


def trace_headers(event: RecordedEvent) -> dict[str, str]:
    """The W3C trace context stored with ``event`` (``traceparent`` and, when the
    trace has one, ``tracestate``), ready to be message headers; empty when the
    event was appended outside any trace."""
    return _otel.trace_of(event.metadata)


@contextmanager
def publishing(
    event: RecordedEvent, *, system: str, destination: str, message_id: str | None = None
) -> Iterator[dict[str, str]]:
    """A PRODUCER span for sending ``event`` to a broker, whose parent is the trace
    context stored in the event (the span that appended it); yields the headers
    that carry the trace on to the message's consumers.

    ``system`` is the broker (``messaging.system``: ``"rabbitmq"``, ``"nats"``,
    ``"redis"``), ``destination`` where it goes (a subject, an exchange, a stream),
    ``message_id`` the message id (default: the event id). The headers are the
    publish span's ``traceparent`` and ``tracestate``, or, without an SDK (or
    without the API), the event's stored ones, so the trace goes on either way::

        with telemetry.publishing(event, system="nats", destination=subject) as headers:
            await js.publish(subject, body, headers={**headers, "Nats-Msg-Id": str(event.event_id)})

    An event appended outside any trace gets no span (and no headers). The relay's
    publishers make the same span for each message they send. An error raised in the
    block marks the span failed, and goes on.
    """
    attributes = {
        "chronik.stream": event.stream_id,
        "chronik.version": event.version,
        "chronik.position": event.position,
        "chronik.event_type": event.type,
    }
    message = message_id if message_id is not None else str(event.event_id)
    with _spans.sending(trace_headers(event), system, destination, message, attributes, current=True) as sent:
        yield sent.headers


@contextmanager
def consuming(
    headers: Mapping[str, Any],
    *,
    system: str,
    destination: str,
    message_id: str | None = None,
) -> Iterator[None]:
    """A CONSUMER span for handling a message received from a broker, whose parent is
    the trace context in its ``headers`` (``traceparent``, ``tracestate``, in any
    case), current in the block: a command handled in it appends events that carry
    the sender's trace on. Inbound consumers (:mod:`chronik.inbound`) make the same
    span for each message they handle.

    ``headers`` values may be ``str`` or ``bytes``; other headers are ignored. An
    error raised in the block marks the span failed, and goes on.
    """
    with _spans.receiving(headers, system, destination, message_id):
        yield


def observe_lag(runner: Any) -> None:
    """Report ``runner``'s lag in the ``chronik.lag.events`` and ``chronik.lag.seconds``
    gauges, from its ``status()`` (a :class:`~chronik.projections.RunnerStatus`, or
    anything with ``name``, ``kind`` and ``lag.events``/``lag.seconds``).

    Projection runners, process managers and relays do this themselves when they
    start running, if a meter provider is set by then; this is for runners of your
    own, or for one started before the application set its providers. An asyncio
    runner (whose ``status()`` is a coroutine function) is observed from its own
    event loop. Held weakly: a runner that is garbage collected drops out.
    """
    _lag_metrics.observe(runner)


def forget_lag(runner: Any) -> None:
    """Stop reporting ``runner``'s lag."""
    _lag_metrics.forget(runner)
