"""The seven workloads of issue 6, written once against the ``Contender`` Protocol.

Each job runs inside a worker process on freshly created stores and returns its
figures. What is timed is the whole command as an application runs it: creating
or changing the aggregate in memory, encoding, writing and committing (or reading,
decoding and folding). Set-up that a workload does not measure (building a store to
read from) uses each contender's fastest bulk path and is never timed. After a
timed part, a check (never timed) proves the contender did the work.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Final

from benchmarks.contenders import Contender
from benchmarks.domain import amount_for
from benchmarks.memory import PeakRSS
from benchmarks.spec import Sizes
from benchmarks.stats import median, percentile

__all__ = [
    "JOBS",
    "CheckFailed",
    "Contenders",
    "Job",
    "Result",
    "check",
    "result",
    "stored",
    "timed_threads",
    "wait_until_readable",
]

Result = dict[str, Any]  # {"figures": {key: number}, "checks": {...}, "data": {...}}
Contenders = Mapping[str, Contender[Any]]  # by role: "main", or "small" and "large"
Job = Callable[[Contenders, Sizes, Mapping[str, Any]], Result]

_perf: Final = time.perf_counter


class CheckFailed(AssertionError):
    """A contender did not do what the workload asked: its figures would be meaningless."""


def check(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


def stored(c: Contender[Any], expected: int) -> int:
    stored = c.count_events()
    check(stored == expected, f"{stored} events stored, expected {expected}")
    return stored


_VISIBLE_TIMEOUT: Final = 120.0


def wait_until_readable(c: Contender[Any], expected: int, page_size: int) -> None:
    """Wait (untimed) until a reader of the global log sees all ``expected`` events.

    A store that keeps the ordering guarantee on PostgreSQL (chronik) shows a commit
    to log readers only once every older transaction on the server has ended, so a
    transaction left open elsewhere holds the log back.
    """
    if not c.log_lags_commits:
        return
    deadline = time.monotonic() + _VISIBLE_TIMEOUT
    while True:
        count = c.read_log(decode=False, page_size=page_size)
        if count >= expected:
            return
        if time.monotonic() > deadline:
            raise CheckFailed(
                f"the global log shows {count} of {expected} events after {_VISIBLE_TIMEOUT:.0f}s: "
                "a transaction open elsewhere on the server may be holding it back"
            )
        time.sleep(0.2)


def result(figures: dict[str, float], **checks: Any) -> Result:
    return {"figures": figures, "checks": checks, "data": {}}


def _single_commands(c: Contender[Any], count: int, latencies: list[float] | None = None) -> None:
    open_account = c.open_account
    if latencies is None:
        for _ in range(count):
            open_account()
        return
    for _ in range(count):
        start = _perf()
        open_account()
        latencies.append(_perf() - start)


def probe(cs: Contenders, sizes: Sizes, params: Mapping[str, Any]) -> Result:
    """Does the contender work at all here? One command, one load, one read."""
    c = cs["main"]
    account = c.create()
    c.deposit(account, 1)
    c.save([account])
    account_id = c.open_account()
    c.deposit_command(account_id, [1, 2])
    for stream, expected in ((c.account_id(account), 2), (account_id, 3)):
        version = c.load(stream)
        check(version == expected, f"loaded version {version}, expected {expected}")
    stored(c, 5)
    wait_until_readable(c, 5, sizes.page_size)
    check(c.read_log(decode=True, page_size=sizes.page_size) == 5, "reading the log gave other than 5 events")
    return {"figures": {}, "checks": {}, "data": {"info": c.info()}}


def w1_commands(cs: Contenders, sizes: Sizes, params: Mapping[str, Any]) -> Result:
    """5,000 single-event commands, a new aggregate each, one transaction each."""
    c = cs["main"]
    warm = min(20, max(1, sizes.w1_commands // 10))
    _single_commands(c, warm)
    latencies: list[float] = []
    start = _perf()
    _single_commands(c, sizes.w1_commands, latencies)
    elapsed = _perf() - start
    events = stored(c, warm + sizes.w1_commands)
    done = result(
        {
            "w1.events_per_s": sizes.w1_commands / elapsed,
            "w1.p50_ms": percentile(latencies, 50) * 1000,
            "w1.p99_ms": percentile(latencies, 99) * 1000,
        },
        events=events,
    )
    done["data"]["info"] = c.info()
    return done


def _w2(cs: Contenders, sizes: Sizes, key: str) -> Result:
    c = cs["main"]
    total, batch = sizes.w2_events, sizes.w2_batch
    start = _perf()
    account = c.create()
    pending = 1
    for i in range(1, total):
        c.deposit(account, amount_for(i))
        pending += 1
        if pending == batch:
            c.save([account])
            pending = 0
    if pending:
        c.save([account])
    elapsed = _perf() - start
    version = c.load(c.account_id(account))
    check(version == total, f"loaded version {version}, expected {total}")
    return result({key: total / elapsed}, version=version)


def w2_batches(cs: Contenders, sizes: Sizes, params: Mapping[str, Any]) -> Result:
    """One aggregate held by the application, 10,000 events saved 10 at a time."""
    return _w2(cs, sizes, "w2.events_per_s")


def w2_batches_snapshots(cs: Contenders, sizes: Sizes, params: Mapping[str, Any]) -> Result:
    """The same with the contender's snapshot policy set to every 100 events."""
    return _w2(cs, sizes, "w2.snapshot_events_per_s")


def w2_commands_snapshots(cs: Contenders, sizes: Sizes, params: Mapping[str, Any]) -> Result:
    """One aggregate, 10 events per command, each command loading it (snapshot + later events)."""
    c = cs["main"]
    total, batch = sizes.w2_events, sizes.w2_batch
    start = _perf()
    account_id = c.open_account()
    done = 1
    while done < total:
        count = min(batch, total - done)
        c.deposit_command(account_id, [amount_for(done + i) for i in range(count)])
        done += count
    elapsed = _perf() - start
    version = c.load(account_id)
    check(version == total, f"loaded version {version}, expected {total}")
    return result({"w2.command_snapshot_events_per_s": total / elapsed}, version=version)


def w3_one_transaction(cs: Contenders, sizes: Sizes, params: Mapping[str, Any]) -> Result:
    """100 aggregates x 100 events, made in memory and saved in one call (one transaction).

    One untimed round first, then three timed rounds in the same store: the median.
    """
    c = cs["main"]
    n, per = sizes.w3_aggregates, sizes.w3_events_per_aggregate
    rates: list[float] = []
    for round_ in range(4):
        start = _perf()
        accounts = []
        for _ in range(n):
            account = c.create()
            for i in range(1, per):
                c.deposit(account, amount_for(i))
            accounts.append(account)
        c.save(accounts)
        elapsed = _perf() - start
        if round_:
            rates.append(n * per / elapsed)
    events = stored(c, 4 * n * per)
    rate = median(rates)
    assert rate is not None
    return result({"w3.events_per_s": rate}, events=events)


def _timed_loads(c: Contender[Any], account_id: str, times: int, expected: int) -> float:
    version = c.load(account_id)  # warm: statements prepared, pages cached
    check(version == expected, f"loaded version {version}, expected {expected}")
    samples = []
    for _ in range(times):
        start = _perf()
        c.load(account_id)
        samples.append(_perf() - start)
    ms = median(samples)
    assert ms is not None
    return ms * 1000


def w4_loads(cs: Contenders, sizes: Sizes, params: Mapping[str, Any]) -> Result:
    """Load a 1,000- and a 10,000-event aggregate; then snapshot both at their last version and load again."""
    c = cs["main"]
    (small,) = c.bulk_build(1, sizes.w4_small, sizes.bulk_chunk)
    (large,) = c.bulk_build(1, sizes.w4_large, sizes.bulk_chunk)
    analyze: Callable[[], None] | None = params.get("analyze")
    if analyze is not None:
        analyze()
    figures = {
        "w4.load_small_ms": _timed_loads(c, small, sizes.w4_loads, sizes.w4_small),
        "w4.load_large_ms": _timed_loads(c, large, sizes.w4_loads, sizes.w4_large),
    }
    c.take_snapshot(small)
    c.take_snapshot(large)
    figures["w4.load_small_snapshot_ms"] = _timed_loads(c, small, sizes.w4_loads, sizes.w4_small)
    figures["w4.load_large_snapshot_ms"] = _timed_loads(c, large, sizes.w4_loads, sizes.w4_large)
    return result(figures)


def build_log(cs: Contenders, sizes: Sizes, params: Mapping[str, Any]) -> Result:
    """Set-up for workloads 5, 7 and h: fill a store with the fastest bulk path (untimed figure)."""
    c = cs["main"]
    events, per = int(params["events"]), int(params["events_per_stream"])
    start = _perf()
    ids = c.bulk_build(events // per, per, sizes.bulk_chunk, int(params.get("categories", 1)))
    elapsed = _perf() - start
    check(len(ids) * per == events, f"built {len(ids)} streams of {per}, expected {events} events")
    stored(c, events)
    wait_until_readable(c, events, sizes.page_size)
    sample = random.Random(6).sample(ids, min(len(ids), int(params.get("sample", 0))))
    return {"figures": {}, "checks": {"streams": len(ids)}, "data": {"sample": sample, "build_s": elapsed}}


def _read(c: Contender[Any], sizes: Sizes, events: int, *, decode: bool) -> tuple[float, float]:
    rss = PeakRSS()
    rss.start()
    start = _perf()
    count = c.read_log(decode=decode, page_size=sizes.page_size)
    elapsed = _perf() - start
    added = rss.added_mib()
    check(count == events, f"read {count} events, expected {events}")
    return count / elapsed, added


def w5_read_undecoded(cs: Contenders, sizes: Sizes, params: Mapping[str, Any]) -> Result:
    """Read the whole global log in pages of 1,000 without decoding payloads (own process)."""
    rate, rss = _read(cs["main"], sizes, sizes.w5_events, decode=False)
    return result({"w5.undecoded_events_per_s": rate, "w5.undecoded_rss_mib": rss})


def w5_read_decoded(cs: Contenders, sizes: Sizes, params: Mapping[str, Any]) -> Result:
    """Read the whole global log in pages of 1,000, decoding each event (own process)."""
    rate, rss = _read(cs["main"], sizes, sizes.w5_events, decode=True)
    return result({"w5.decoded_events_per_s": rate, "w5.decoded_rss_mib": rss})


def timed_threads(c: Contender[Any], threads: int, per: int, warm: int) -> float:
    """``threads`` threads sharing ``c``, ``per`` single-event commands each after ``warm``
    untimed ones: the seconds from the moment all start until the last is done."""
    barrier = threading.Barrier(threads + 1)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            _single_commands(c, warm)  # connections opened, statements prepared
        except BaseException as err:
            errors.append(err)
            barrier.abort()
            return
        try:
            barrier.wait()
            _single_commands(c, per)
        except BaseException as err:
            errors.append(err)

    workers = [threading.Thread(target=work, name=f"writer-{i}") for i in range(threads)]
    for worker in workers:
        worker.start()
    try:
        barrier.wait()
    except threading.BrokenBarrierError:
        pass
    start = _perf()
    for worker in workers:
        worker.join()
    elapsed = _perf() - start
    if errors:
        raise errors[0]
    return elapsed


def w6_threads(cs: Contenders, sizes: Sizes, params: Mapping[str, Any]) -> Result:
    """4 threads, 1,000 new single-event aggregates each, one shared contender (and store)."""
    c = cs["main"]
    threads, per, warm = sizes.w6_threads, sizes.w6_per_thread, 2
    elapsed = timed_threads(c, threads, per, warm)
    events = stored(c, threads * (per + warm))
    return result({"w6.events_per_s": threads * per / elapsed}, events=events)


def w7_loads(cs: Contenders, sizes: Sizes, params: Mapping[str, Any]) -> Result:
    """Load 100-event aggregates from the small and the large store, alternately: medians and ratio."""
    small, large = cs["small"], cs["large"]
    small_ids: list[str] = list(params["small_ids"])
    large_ids: list[str] = list(params["large_ids"])
    expected = sizes.w7_aggregate_events
    for c, ids in ((small, small_ids), (large, large_ids)):
        version = c.load(ids.pop())  # warm
        check(version == expected, f"loaded version {version}, expected {expected}")
    small_ms: list[float] = []
    large_ms: list[float] = []
    for small_id, large_id in zip(small_ids, large_ids, strict=False):
        for c, account_id, samples in ((small, small_id, small_ms), (large, large_id, large_ms)):
            start = _perf()
            c.load(account_id)
            samples.append((_perf() - start) * 1000)
    small_median, large_median = median(small_ms), median(large_ms)
    assert small_median is not None
    assert large_median is not None
    return result(
        {
            "w7.load_small_store_ms": small_median,
            "w7.load_large_store_ms": large_median,
            "w7.load_ratio": large_median / small_median,
        },
        loads=len(small_ms),
    )


def w7_read_large(cs: Contenders, sizes: Sizes, params: Mapping[str, Any]) -> Result:
    """Read the large store's whole log, decoded, in pages: the peak RSS it adds (own process)."""
    rate, rss = _read(cs["main"], sizes, sizes.w7_large, decode=True)
    done = result({"w7.rss_mib": rss})
    done["data"]["read_events_per_s"] = rate
    return done


JOBS: Final[dict[str, Job]] = {
    "probe": probe,
    "w1": w1_commands,
    "w2": w2_batches,
    "w2s": w2_batches_snapshots,
    "w2c": w2_commands_snapshots,
    "w3": w3_one_transaction,
    "w4": w4_loads,
    "build": build_log,
    "w5-undecoded": w5_read_undecoded,
    "w5-decoded": w5_read_decoded,
    "w6": w6_threads,
    "w7-loads": w7_loads,
    "w7-rss": w7_read_large,
}
# Issue 19's workloads (scenarios.py) join these when the worker looks a job up.
