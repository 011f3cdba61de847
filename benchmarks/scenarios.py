"""The workloads of issue 19, (a) to (i): what users run, written once against ``Contender``.

As in ``workloads.py``, each job runs in a worker process on fresh stores and
returns its figures; set-up (filling a store to read or command) is untimed and
uses each contender's bulk path; an untimed check after the timed part proves the
work was done. Jobs that need other processes (writers in several processes, a
writer for the cross-process latency) start them here, with ``children.py``.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Final

from benchmarks import children
from benchmarks.contenders import Contender
from benchmarks.domain import CATEGORY, MEMO, OWNER, amount_for
from benchmarks.memory import PeakRSS
from benchmarks.spec import Sizes
from benchmarks.stats import percentile
from benchmarks.workloads import (
    CheckFailed,
    Contenders,
    Result,
    check,
    result,
    stored,
    timed_threads,
    wait_until_readable,
)

__all__ = ["JOBS"]

_perf: Final = time.perf_counter
_WARM: Final = 20


def _ms(seconds: list[float], p: float) -> float:
    return percentile(seconds, p) * 1000


def a_commands(cs: Contenders, sizes: Sizes, params: Mapping[str, Any]) -> Result:
    """Commands on existing small aggregates: load the stream, decide, append (one transaction)."""
    c = cs["main"]
    ids = c.bulk_build(sizes.a_accounts, sizes.a_events, sizes.bulk_chunk)
    analyze: Callable[[], None] | None = params.get("analyze")
    if analyze is not None:
        analyze()
    pick = random.Random(19).choice
    for i in range(_WARM):
        c.deposit_command(pick(ids), [amount_for(i)])
    command = c.deposit_command
    latencies: list[float] = []
    start = _perf()
    for i in range(sizes.a_commands):
        account_id = pick(ids)
        before = _perf()
        command(account_id, [amount_for(i)])
        latencies.append(_perf() - before)
    elapsed = _perf() - start
    stored(c, sizes.a_accounts * sizes.a_events + _WARM + sizes.a_commands)
    return result(
        {
            "a.commands_per_s": sizes.a_commands / elapsed,
            "a.p50_ms": _ms(latencies, 50),
            "a.p99_ms": _ms(latencies, 99),
        }
    )


def b_processes(cs: Contenders, sizes: Sizes, params: Mapping[str, Any]) -> Result:
    """Writers in several processes on one SQLite file: single-event commands each."""
    c = cs["main"]
    runs = children.run_writers(params["_request"], sizes.b_processes, sizes.b_per_process)
    started = min(run["started"] for run in runs)
    ended = max(run["ended"] for run in runs)
    total = sizes.b_processes * sizes.b_per_process
    stored(c, sizes.b_processes * (sizes.b_per_process + children.WARM))
    return result({"b.events_per_s": total / (ended - started)})


def _many_writers(c: Contender[Any], key: str, writers: int, per: int) -> Result:
    warm = 2
    elapsed = timed_threads(c, writers, per, warm)
    expected = writers * (per + warm)
    events, streams = c.audit_log()
    check(
        events == expected and streams == expected,
        f"the log holds {events} events of {streams} streams, expected {expected} of each",
    )
    return result({key: writers * per / elapsed})


def c_small(cs: Contenders, sizes: Sizes, params: Mapping[str, Any]) -> Result:
    """16 concurrent writers of single-event commands; every event in the log once."""
    return _many_writers(cs["main"], "c.small_events_per_s", sizes.c_writers_small, sizes.c_per_writer)


def c_large(cs: Contenders, sizes: Sizes, params: Mapping[str, Any]) -> Result:
    """64 concurrent writers of single-event commands; every event in the log once."""
    return _many_writers(cs["main"], "c.large_events_per_s", sizes.c_writers_large, sizes.c_per_writer)


def _latencies(c: Contender[Any], sizes: Sizes, write: Callable[[], None]) -> list[float]:
    """Follow the log, run ``write`` (which appends ``d_events`` deposits whose amount is
    the perf_counter_ns at the append), and return append-to-handler latencies (seconds)."""
    received: list[float] = []
    done = threading.Event()

    def on_deposit(amount: int) -> None:
        received.append((time.perf_counter_ns() - amount) / 1e9)
        if len(received) >= sizes.d_events:
            done.set()

    stop = c.follow(on_deposit)
    try:
        write()
        if not done.wait(30):
            raise CheckFailed(f"the handler saw {len(received)} of {sizes.d_events} events within 30s")
    finally:
        stop()
    return received


def d_local(cs: Contenders, sizes: Sizes, params: Mapping[str, Any]) -> Result:
    """Append-to-handler latency, the writer and the subscriber in this process."""
    c = cs["main"]

    def write() -> None:
        children.write_spaced(c, sizes.d_events, sizes.d_interval_ms)

    latencies = _latencies(c, sizes, write)
    return result({"d.local_p50_ms": _ms(latencies, 50), "d.local_p99_ms": _ms(latencies, 99)})


def d_remote(cs: Contenders, sizes: Sizes, params: Mapping[str, Any]) -> Result:
    """Append-to-handler latency, the writer in another process."""
    c = cs["main"]
    writer = children.Writer(params["_request"], sizes.d_events, sizes.d_interval_ms)
    try:
        latencies = _latencies(c, sizes, writer.go)
    finally:
        writer.close()
    return result({"d.remote_p50_ms": _ms(latencies, 50), "d.remote_p99_ms": _ms(latencies, 99)})


def e_projection(cs: Contenders, sizes: Sizes, params: Mapping[str, Any]) -> Result:
    """Project a prebuilt log into a SQL read model (balances), checkpoints committed with it."""
    c = cs["main"]
    per = sizes.e_events_per_stream
    streams = sizes.e_events // per
    c.bulk_build(streams, per, sizes.bulk_chunk)
    analyze: Callable[[], None] | None = params.get("analyze")
    if analyze is not None:
        analyze()
    wait_until_readable(c, streams * per, sizes.page_size)
    start = _perf()
    c.project()
    elapsed = _perf() - start
    accounts, total = c.balances()
    expected = streams * sum(amount_for(i) for i in range(1, per))
    check(
        (accounts, total) == (streams, expected),
        f"the read model holds {accounts} accounts, {total} in all; expected {streams}, {expected}",
    )
    return result({"e.events_per_s": streams * per / elapsed})


def f_read(cs: Contenders, sizes: Sizes, params: Mapping[str, Any]) -> Result:
    """Read one category of the workload-5 log (its streams spread over several), decoded."""
    c = cs["main"]
    per = sizes.w5_events_per_stream
    streams = sizes.w5_events // per
    expected = len(range(0, streams, sizes.f_categories)) * per
    start = _perf()
    count = c.read_category(CATEGORY, page_size=sizes.page_size)
    elapsed = _perf() - start
    check(count == expected, f"read {count} events of the category, expected {expected}")
    return result({"f.decoded_events_per_s": count / elapsed})


def g_hot_stream(cs: Contenders, sizes: Sizes, params: Mapping[str, Any]) -> Result:
    """Threads each running commands on the same stream: conflicts, decided again."""
    c = cs["main"]
    account_id = c.open_account()
    threads, per = sizes.g_threads, sizes.g_commands
    attempts: list[int] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(threads + 1)

    def work(n: int) -> None:
        try:
            barrier.wait()
            mine = 0
            for i in range(per):
                mine += c.hot_command(account_id, amount_for(n * per + i))
            attempts.append(mine)
        except BaseException as err:
            errors.append(err)

    workers = [threading.Thread(target=work, args=(n,), name=f"g-{n}") for n in range(threads)]
    for worker in workers:
        worker.start()
    barrier.wait()
    start = _perf()
    for worker in workers:
        worker.join()
    elapsed = _perf() - start
    if errors:
        raise errors[0]
    commands = threads * per
    version = c.load(account_id)
    check(version == commands + 1, f"the stream is at version {version}, expected {commands + 1}")
    return result(
        {
            "g.commands_per_s": commands / elapsed,
            "g.conflicts_per_command": (sum(attempts) - commands) / commands,
        }
    )


def _payload_mib(events: int) -> float:
    """What the events' payloads come to as JSON (chronik's and raw's stored form)."""
    size = len(json.dumps({"owner": OWNER}, separators=(",", ":")))
    for i in range(1, events):
        size += len(json.dumps({"amount": amount_for(i), "memo": MEMO}, separators=(",", ":")))
    return size / 2**20


def h_load(cs: Contenders, sizes: Sizes, params: Mapping[str, Any]) -> Result:
    """Peak memory loading the one large aggregate of the store (its own process)."""
    c = cs["main"]
    (account_id,) = params["sample"]
    payload = _payload_mib(sizes.h_events)
    rss = PeakRSS()
    rss.start()
    version = c.load(account_id)
    added = rss.added_mib()
    check(version == sizes.h_events, f"loaded version {version}, expected {sizes.h_events}")
    return result({"h.load_rss_mib": added, "h.load_rss_x": added / payload})


def h_write(cs: Contenders, sizes: Sizes, params: Mapping[str, Any]) -> Result:
    """Peak memory writing one aggregate's events in one append (its own process).

    The events are recorded on the aggregate first, as an application holds them;
    what is measured is the save alone."""
    c = cs["main"]
    account = c.create()
    for i in range(1, sizes.h_events):
        c.deposit(account, amount_for(i))
    payload = _payload_mib(sizes.h_events)
    rss = PeakRSS()
    rss.start()
    c.save([account])
    added = rss.added_mib()
    del account
    stored(c, sizes.h_events)
    return result({"h.write_rss_mib": added, "h.write_rss_x": added / payload})


def i_start(cs: Contenders, sizes: Sizes, params: Mapping[str, Any]) -> Result:
    """Single-event commands through the asyncio API, one after the other."""
    c = cs["main"]
    c.run_async("start", _WARM, 1, [])
    elapsed = c.run_async("start", sizes.i_commands, 1, [])
    stored(c, _WARM + sizes.i_commands)
    return result({"i.events_per_s": sizes.i_commands / elapsed})


def i_handle(cs: Contenders, sizes: Sizes, params: Mapping[str, Any]) -> Result:
    """Commands on existing aggregates through the asyncio API, several tasks at once."""
    c = cs["main"]
    ids = c.bulk_build(sizes.a_accounts, sizes.a_events, sizes.bulk_chunk)
    analyze: Callable[[], None] | None = params.get("analyze")
    if analyze is not None:
        analyze()
    elapsed = c.run_async("handle", sizes.i_commands, sizes.i_tasks, ids)
    stored(c, sizes.a_accounts * sizes.a_events + sizes.i_commands)
    return result({"i.commands_per_s": sizes.i_commands / elapsed})


JOBS: Final[dict[str, Callable[[Contenders, Sizes, Mapping[str, Any]], Result]]] = {
    "a": a_commands,
    "b": b_processes,
    "c-small": c_small,
    "c-large": c_large,
    "d-local": d_local,
    "d-remote": d_remote,
    "e": e_projection,
    "f-read": f_read,
    "g": g_hot_stream,
    "h-load": h_load,
    "h-write": h_write,
    "i-start": i_start,
    "i-handle": i_handle,
}
