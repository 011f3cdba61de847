"""Fixtures and set-up shared by every test.

``tests/plugin`` goes on ``sys.path``: it holds ``chronik_dictstore``, a third-party
backend, beside its ``chronik_dictstore-0.1.0.dist-info``, so that
``importlib.metadata`` finds the distribution and its entry point
(``chronik.backends``: ``dict``) as it would an installed package's.

``telemetry`` records what chronik's OpenTelemetry instrumentation emits, with the
SDK's in-memory span exporter and metric reader. The brokers' fixtures
(``tests/backends/_brokers.py``: ``nats_broker``, ``rabbitmq_url``, ``redis_url``,
``kafka``, ``nats_server``, ``proxy``) serve every test that needs a broker: the
relay's, inbound messages', traces across brokers and the FastAPI example's.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

PLUGIN = str(Path(__file__).with_name("plugin"))
if PLUGIN not in sys.path:
    sys.path.append(PLUGIN)

pytest_plugins = ["tests.backends._brokers"]


# -- OpenTelemetry -----------------------------------------------------------------------------


if TYPE_CHECKING:
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import Tracer


@dataclasses.dataclass
class Recorded:
    """What chronik's telemetry recorded during a test: finished spans, and metrics."""

    exporter: InMemorySpanExporter
    reader: InMemoryMetricReader
    provider: TracerProvider

    @property
    def tracer(self) -> Tracer:
        """The test's own tracer, on the provider chronik records to (a request's span)."""
        return self.provider.get_tracer("tests")

    def spans(self, prefix: str = "") -> list[ReadableSpan]:
        """Finished spans whose name starts with ``prefix``, in the order they ended."""
        return [s for s in self.exporter.get_finished_spans() if s.name.startswith(prefix)]

    def span(self, name: str) -> ReadableSpan:
        """The one finished span called ``name``."""
        found = [s for s in self.exporter.get_finished_spans() if s.name == name]
        assert len(found) == 1, f"{len(found)} spans named {name!r}: {[s.name for s in self.spans()]}"
        return found[0]

    def points(self, metric: str) -> list[tuple[dict[str, Any], Any]]:
        """The data points of ``metric`` now (attributes, value); a collection per call."""
        data = self.reader.get_metrics_data()
        if data is None:
            return []
        return [
            (dict(point.attributes or {}), getattr(point, "value", None))
            for resource in data.resource_metrics
            for scope in resource.scope_metrics
            for found in scope.metrics
            if found.name == metric
            for point in found.data.data_points
        ]


@pytest.fixture
def telemetry() -> Iterator[Recorded]:
    """chronik's telemetry recorded by the OpenTelemetry SDK's in-memory exporter and
    metric reader, for one test (the global providers are never set: other tests'
    events must not carry trace context)."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    import chronik.telemetry

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader])
    chronik.telemetry.configure(tracer_provider=provider, meter_provider=meters)
    try:
        yield Recorded(exporter, reader, provider)
    finally:
        chronik.telemetry.configure()
        provider.shutdown()
        meters.shutdown()
