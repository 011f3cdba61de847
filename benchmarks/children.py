"""Other processes for the jobs that need them: writers on one SQLite file (workload b)
and the writer of the cross-process latency (workload d).

Each child opens the job's contender on the job's store for itself (the request the
worker was given says which), in a fresh interpreter (``spawn``: nothing of the
parent's connections or threads is inherited). Times are ``time.perf_counter``,
which on Linux reads CLOCK_MONOTONIC, one clock for every process of the machine.
"""

from __future__ import annotations

import multiprocessing
import time
import traceback
from multiprocessing.synchronize import Barrier, Event
from typing import Any, Final

from benchmarks.contenders import Contender, Options, open_contender
from benchmarks.databases import Location

__all__ = ["WARM", "Writer", "run_writers", "write_spaced"]

WARM: Final = 2  # untimed commands each writer runs first (connections, statements)
_ctx: Final = multiprocessing.get_context("spawn")


def _open(request: dict[str, Any]) -> Contender[Any]:
    location = Location.from_json(request["locations"]["main"])
    return open_contender(request["contender"], location, Options(**request.get("options", {})))


def write_spaced(c: Contender[Any], events: int, interval_ms: float) -> None:
    """Open an account, then ``events`` deposits ``interval_ms`` apart, each saved alone;
    each one's amount is the ``perf_counter_ns`` just before it is recorded and saved."""
    account = c.create()
    c.save([account])
    _deposits(c, account, events, interval_ms)


def _deposits(c: Contender[Any], account: Any, events: int, interval_ms: float) -> None:
    due = time.perf_counter()
    for _ in range(events):
        due += interval_ms / 1000
        pause = due - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        c.deposit(account, time.perf_counter_ns())
        c.save([account])


def _failure(err: BaseException) -> dict[str, str]:
    return {"error": f"{type(err).__name__}: {err}", "traceback": traceback.format_exc()}


def _writer_main(request: dict[str, Any], per: int, barrier: Barrier, results: Any) -> None:
    try:
        c = _open(request)
    except BaseException as err:
        barrier.abort()
        results.put(_failure(err))
        return
    try:
        for _ in range(WARM):
            c.open_account()
        barrier.wait(120)
        started = time.perf_counter()
        for _ in range(per):
            c.open_account()
        results.put({"started": started, "ended": time.perf_counter()})
    except BaseException as err:
        barrier.abort()
        results.put(_failure(err))
    finally:
        c.close()


def run_writers(request: dict[str, Any], processes: int, per: int) -> list[dict[str, float]]:
    """``processes`` writers, ``WARM`` then ``per`` single-event commands each, released
    together: when each started and ended its timed part."""
    barrier = _ctx.Barrier(processes + 1)
    results = _ctx.Queue()
    workers = [
        _ctx.Process(target=_writer_main, args=(request, per, barrier, results)) for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
    try:
        try:
            barrier.wait(120)
        except Exception:  # a child failed: its report says why
            pass
        runs = [results.get(timeout=600) for _ in workers]
    finally:
        for worker in workers:
            worker.join(60)
            if worker.is_alive():
                worker.terminate()
    failed = [run for run in runs if "error" in run]
    if failed:
        raise RuntimeError(f"a writer process failed: {failed[0]['error']}\n{failed[0]['traceback']}")
    return runs


def _spaced_main(
    request: dict[str, Any], events: int, interval_ms: float, ready: Event, go: Event, results: Any
) -> None:
    try:
        c = _open(request)
    except BaseException as err:
        results.put(_failure(err))
        ready.set()
        return
    try:
        account = c.create()
        c.save([account])
        ready.set()
        go.wait(120)
        _deposits(c, account, events, interval_ms)
        results.put({"done": True})
    except BaseException as err:
        results.put(_failure(err))
        ready.set()
    finally:
        c.close()


class Writer:
    """A writer in another process: ready once it has opened its store and an account;
    :meth:`go` makes it write its spaced deposits and waits until it has."""

    def __init__(self, request: dict[str, Any], events: int, interval_ms: float) -> None:
        self._ready, self._go = _ctx.Event(), _ctx.Event()
        self._results = _ctx.Queue()
        self._process = _ctx.Process(
            target=_spaced_main, args=(request, events, interval_ms, self._ready, self._go, self._results)
        )
        self._process.start()
        if not self._ready.wait(120):
            self.close()
            raise RuntimeError("the writer process did not start within 120s")
        if not self._results.empty():
            failed = self._results.get()
            self.close()
            raise RuntimeError(f"the writer process failed: {failed['error']}\n{failed['traceback']}")

    def go(self) -> None:
        self._go.set()
        report = self._results.get(timeout=600)
        if "error" in report:
            raise RuntimeError(f"the writer process failed: {report['error']}\n{report['traceback']}")

    def close(self) -> None:
        self._go.set()
        self._process.join(60)
        if self._process.is_alive():
            self._process.terminate()
