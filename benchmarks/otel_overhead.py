"""What chronik's OpenTelemetry costs on the append path: the same appends timed in fresh
processes without the API installed (hidden), with the API and no SDK, turned off, and
with the SDK recording every span and metric. A figure to read, not a test::

    python -m benchmarks.otel_overhead [--appends 3000] [--repeats 3] [--rounds 5]

Each mode runs in a process of its own, once per round, the modes taking turns (so a
burst of load elsewhere on the machine falls on all of them); a cell is the median
over rounds and repeats of the time per call, in microseconds, and its ratio to the
same work without the API (the peer in the same run). The SDK mode sends its spans
through a ``BatchSpanProcessor`` (as production does) to an exporter that drops
them: what is measured is chronik's instrumentation and the SDK's span and metric
processing, not an exporter's I/O.
"""

from __future__ import annotations

import argparse
import importlib.abc
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

MODES = {
    "absent": "without the API (not installed)",
    "api": "API installed, no SDK",
    "off": "API installed, telemetry.configure(enabled=False)",
    "sdk": "SDK: every span and metric recorded",
}
WORKLOADS = ("append, memory", "append, SQLite", "command, memory")


class _Hidden(importlib.abc.MetaPathFinder):
    """Finds ``opentelemetry`` nowhere: importing it fails as it does where it is not installed."""

    def find_spec(self, name: str, path: Any, target: Any = None) -> None:
        if name == "opentelemetry" or name.startswith("opentelemetry."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return


def _worker(mode: str, appends: int, repeats: int) -> dict[str, list[float]]:
    """Runs in a fresh interpreter: set the mode up, then time each workload."""
    if mode == "absent":
        sys.meta_path.insert(0, _Hidden())  # as if not installed
    import chronik
    import chronik.telemetry
    from chronik.examples import registry
    from chronik.examples.orders import AddItem, CreateOrder, order_decider

    if mode == "off":
        chronik.telemetry.configure(enabled=False)
    elif mode == "sdk":
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

        class Drop(SpanExporter):
            def export(self, spans: Any) -> SpanExportResult:
                return SpanExportResult.SUCCESS

        provider = TracerProvider()
        provider.add_span_processor(BatchSpanProcessor(Drop()))
        chronik.telemetry.configure(
            tracer_provider=provider, meter_provider=MeterProvider(metric_readers=[InMemoryMetricReader()])
        )

    def appends_on(url: str) -> list[float]:
        with chronik.connect(url, registry=registry) as store:
            event = chronik.NewEvent("Noted", {"n": 1})
            for i in range(200):  # warm up
                store.append(f"warm-{i}", [event])
            times = []
            for repeat in range(repeats):
                start = time.perf_counter()
                for i in range(appends):
                    store.append(f"note-{repeat}-{i % 100}", [event])
                times.append((time.perf_counter() - start) / appends * 1e6)
        return times

    def commands() -> list[float]:
        with chronik.connect("memory://", registry=registry) as store:
            orders = chronik.CommandHandler(store, order_decider)
            times = []
            for repeat in range(repeats):
                streams = [f"order-{repeat}-{i}" for i in range(appends // 10)]
                for stream in streams:
                    orders.start(stream, CreateOrder("ada"))
                start = time.perf_counter()
                for i in range(appends):
                    orders.handle(streams[i % len(streams)], AddItem("book", 1, 100))
                times.append((time.perf_counter() - start) / appends * 1e6)
        return times

    with tempfile.TemporaryDirectory() as folder:
        return {
            "append, memory": appends_on("memory://"),
            "append, SQLite": appends_on(f"sqlite:///{Path(folder) / 'bench.db'}?synchronous=normal"),
            "command, memory": commands(),
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--appends", type=int, default=3000, help="calls per repeat")
    parser.add_argument("--repeats", type=int, default=3, help="repeats per process")
    parser.add_argument("--rounds", type=int, default=5, help="processes per mode, the modes taking turns")
    parser.add_argument("--worker", choices=sorted(MODES), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(_worker(args.worker, args.appends, args.repeats)))
        return 0
    samples: dict[str, dict[str, list[float]]] = {m: {w: [] for w in WORKLOADS} for m in MODES}
    for _ in range(args.rounds):
        for mode in MODES:
            command = [sys.executable, "-m", "benchmarks.otel_overhead", "--worker", mode]
            done = subprocess.run(
                [*command, "--appends", str(args.appends), "--repeats", str(args.repeats)],
                capture_output=True,
                text=True,
                check=True,
            )
            for workload, times in json.loads(done.stdout).items():
                samples[mode][workload].extend(times)
    results = {m: {w: statistics.median(t) for w, t in by.items()} for m, by in samples.items()}
    width = max(len(m) for m in MODES.values())
    print(f"{'':{width}}  " + "  ".join(f"{w:>24}" for w in WORKLOADS))
    for mode, label in MODES.items():
        cells = []
        for workload in WORKLOADS:
            value, peer = results[mode][workload], results["absent"][workload]
            cells.append(f"{value:9.1f} µs  x{value / peer:5.2f}".rjust(24))
        print(f"{label:{width}}  " + "  ".join(cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())
