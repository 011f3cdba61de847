"""``python -m benchmarks.soak``: a projection runner's memory over a long run.

A SQLite store starts with a backlog (``--backlog`` events, 200,000 by default) that
the runner must catch up on, then a writer in another process appends steadily
(``--rate`` events a second) for ``--minutes`` while the runner, in this process,
follows live with its read model in the same file. The resident memory of this
process (the runner's; the writer's is its own) is sampled at regular intervals and
printed with the events written, handled and the lag, then the figure: RSS at the
start of the steady phase against its end. A runner whose memory grows with the
events it has seen (a cache that is never trimmed, a buffer of the whole backlog)
shows here as growth from start to end; flat memory is the claim (issue 12).

    python -m benchmarks.soak --minutes 10         # the figure (make soak)
    python -m benchmarks.soak --minutes 0.1 --backlog 2000   # seconds: the harness works

Not part of ``make bench``: it takes as long as it is told to.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import re
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import chronik
from chronik import NewEvent, RecordedEvent
from chronik.projections import Projection, ProjectionRunner
from chronik.store import StoreTransaction

__all__ = ["main"]

STREAMS = 1000
BATCH = 10


def rss_mib() -> float:
    """This process's resident set size (VmRSS), in MiB (Linux; ru_maxrss elsewhere)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            match = re.search(r"^VmRSS:\s+(\d+) kB", status.read(), re.MULTILINE)
        if match:
            return int(match.group(1)) / 1024
    except OSError:
        pass
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def _events(start: int, count: int) -> list[tuple[str, list[NewEvent]]]:
    out = []
    for n in range(start, start + count, BATCH):
        out.append(
            (f"account-{n % STREAMS}", [NewEvent("Deposited", {"amount": n + i}) for i in range(BATCH)])
        )
    return out


def _write_backlog(url: str, count: int) -> None:
    store = chronik.connect(url)
    try:
        for stream_id, events in _events(0, count):
            store.append(stream_id, events)
    finally:
        store.close()


def _writer(url: str, rate: float, seconds: float, start: int, written: Any) -> None:
    """Append ``rate`` events a second for ``seconds`` (in batches of ``BATCH``)."""
    store = chronik.connect(url)
    began = time.monotonic()
    n = start
    try:
        while (elapsed := time.monotonic() - began) < seconds:
            due = int(elapsed * rate) + start
            while n < due:
                store.append(
                    f"account-{n % STREAMS}", [NewEvent("Deposited", {"amount": n + i}) for i in range(BATCH)]
                )
                n += BATCH
                written.value = n - start
            time.sleep(0.01)
    finally:
        store.close()


def _projection() -> Projection[StoreTransaction]:
    def setup(tx: StoreTransaction) -> None:
        tx.execute(
            "CREATE TABLE balances (account TEXT PRIMARY KEY, total INTEGER NOT NULL, n INTEGER NOT NULL)"
        )

    def deposited(event: RecordedEvent, tx: StoreTransaction) -> None:
        tx.execute(
            "INSERT INTO balances VALUES (:a, :t, 1) "
            "ON CONFLICT (account) DO UPDATE SET total = total + :t, n = n + 1",
            {"a": event.stream_id, "t": event.data["amount"]},
        )

    return Projection("balances", {"Deposited": deposited}, setup=setup)


def soak(minutes: float, rate: float, backlog: int, workdir: Path, samples: int) -> dict[str, Any]:
    url = f"sqlite:///{workdir / 'soak.db'}"
    print(
        f"soak: SQLite at {workdir / 'soak.db'}; backlog {backlog:,} events, then {rate:g} events/s "
        f"for {minutes:g} min",
        flush=True,
    )
    began = time.monotonic()
    _write_backlog(url, backlog)
    print(f"backlog written in {time.monotonic() - began:.1f} s", flush=True)
    store = chronik.connect(url)
    runner = ProjectionRunner(store, _projection())
    baseline = rss_mib()
    rows: list[dict[str, Any]] = []
    seconds = minutes * 60

    def sample(phase: str, written: int) -> dict[str, Any]:
        status = runner.status()
        row = {
            "t": round(time.monotonic() - began, 1),
            "phase": phase,
            "written": backlog + written,
            "handled": runner.handled,
            "lag": None if status.lag is None else status.lag.events,
            "state": status.state,
            "rss_mib": round(rss_mib(), 1),
        }
        rows.append(row)
        lag = "?" if row["lag"] is None else row["lag"]
        print(
            f"{row['t']:>8.1f} s  {phase:<9} written {row['written']:>10,}  handled {row['handled']:>10,}  "
            f"lag {lag:>8}  {row['state']:<10} RSS {row['rss_mib']:7.1f} MiB",
            flush=True,
        )
        return row

    # Catch-up: the runner reads the backlog page by page; its memory must not grow with it.
    began = time.monotonic()
    catch_up_peak = baseline
    runner.run_in_background()
    while runner.status(lag=False).state not in ("caught_up", "stopped"):
        catch_up_peak = max(catch_up_peak, rss_mib())
        time.sleep(0.2)
    caught = sample("caught up", 0)
    catch_up_seconds = caught["t"]
    # Steady writes, followed live.
    context = multiprocessing.get_context("spawn")
    written = context.Value("q", 0)
    writer = context.Process(target=_writer, args=(url, rate, seconds, backlog, written), daemon=True)
    writer.start()
    interval = max(seconds / samples, 1.0)
    start_row = None
    while writer.is_alive():
        writer.join(interval)
        row = sample("steady", int(written.value))
        if start_row is None:
            start_row = row  # the first steady sample: caches and pools warmed up
    writer.join()
    total = backlog + int(written.value)
    head = store.head()
    runner.wait_for(head, timeout=600)
    end_row = sample("end", int(written.value))
    runner.stop(timeout=60)
    if runner.error is not None:
        raise SystemExit(f"the runner failed: {runner.error}")
    store.close()
    assert start_row is not None
    result = {
        "minutes": minutes,
        "rate": rate,
        "backlog": backlog,
        "events": total,
        "handled": runner.handled,
        "rss_before_mib": round(baseline, 1),
        "rss_catch_up_peak_mib": round(catch_up_peak, 1),
        "catch_up_seconds": catch_up_seconds,
        "rss_start_mib": start_row["rss_mib"],
        "rss_end_mib": end_row["rss_mib"],
        "rss_max_steady_mib": max(r["rss_mib"] for r in rows if r["phase"] != "caught up"),
        "samples": rows,
    }
    growth = result["rss_end_mib"] - result["rss_start_mib"]
    print(
        f"\nsoak figure: RSS {result['rss_start_mib']:.1f} MiB at the start of the steady phase, "
        f"{result['rss_end_mib']:.1f} MiB at its end ({growth:+.1f} MiB) after {minutes:g} min and "
        f"{total:,} events handled; catching up on {backlog:,} events peaked at "
        f"{catch_up_peak:.1f} MiB (from {baseline:.1f} MiB before)",
        flush=True,
    )
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="steady phase length (default 10)")
    parser.add_argument("--rate", type=float, default=500.0, help="events written per second (default 500)")
    parser.add_argument(
        "--backlog", type=int, default=200_000, help="events to catch up on first (default 200,000)"
    )
    parser.add_argument(
        "--samples", type=int, default=20, help="RSS samples in the steady phase (default 20)"
    )
    parser.add_argument(
        "--workdir", type=Path, help="where the SQLite file goes (default: a temporary directory)"
    )
    parser.add_argument("--out", type=Path, help="also write the figures as JSON to this file")
    args = parser.parse_args(argv)
    if args.minutes <= 0 or args.rate <= 0 or args.backlog < 0 or args.samples < 1:
        parser.error("--minutes and --rate must be > 0, --backlog >= 0, --samples >= 1")
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
        result = soak(args.minutes, args.rate, args.backlog, args.workdir, args.samples)
    else:
        with tempfile.TemporaryDirectory(prefix="chronik-soak-") as tmp:
            result = soak(args.minutes, args.rate, args.backlog, Path(tmp), args.samples)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    threading.current_thread().name = "soak"
    sys.exit(main())
