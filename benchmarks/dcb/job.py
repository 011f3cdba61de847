"""One job in a process of its own: ``python -m benchmarks.dcb.job REQUEST``.

REQUEST is JSON: ``{"contender", "where", "workload", "writers", "per_writer",
"seats", "mode"}``. The job defines the courses (untimed), starts its writers (one
process each with ``mode=processes``, spawned, each with its own connection; threads
of this process with ``mode=threads``, and always for the memory backend, whose
store lives in this process), releases them at once, checks the rules afterwards,
and prints ``RESULT <json>`` (or ``ERROR <json>`` and exits 1).

Decisions per second is the commands settled (subscribed or refused) divided by the
time from the release to the last writer's end.
"""

from __future__ import annotations

import json
import multiprocessing
import queue
import sys
import threading
import traceback
from typing import Any, Final

from benchmarks.databases import Location, analyze
from benchmarks.dcb.contenders import Event, Where, new_shared, open_contender
from benchmarks.dcb.workloads import check_rules, commands, courses, run_writer, writer_process

__all__ = ["ERROR_MARK", "RESULT_MARK", "main", "run"]

RESULT_MARK: Final = "RESULT "
ERROR_MARK: Final = "ERROR "
_SPAWN_TIMEOUT: Final = 120.0


def _define(contender: Any, request: dict[str, Any]) -> None:
    defined = courses(request["workload"], request["writers"], request["per_writer"], request["seats"])
    events = [Event("CourseDefined", (f"course:{c}",), {"course": c, "capacity": n}) for c, n in defined]
    for start in range(0, len(events), 500):
        contender.append_plain(events[start : start + 500])


def run(request: dict[str, Any]) -> dict[str, Any]:
    where = Where(**request["where"])
    writers = request["writers"]
    threads = request["mode"] == "threads" or where.backend == "memory"
    shared = new_shared(request["contender"], where) if where.backend == "memory" else None
    setup = open_contender(request["contender"], where, shared)
    try:
        _define(setup, request)
        if where.backend == "postgres":  # fresh planner statistics, for every contender alike
            analyze(Location("postgres", where.schema, postgres_url=where.postgres_url))
        info = setup.info()
        outcomes = _run_threads(request, where, shared) if threads else _run_processes(request)
        check_rules(setup, request["workload"], writers, request["per_writer"], request["seats"])
    finally:
        setup.close()
        if shared is not None and hasattr(shared, "close"):
            shared.close()
    began = min(o["began"] for o in outcomes)
    ended = max(o["ended"] for o in outcomes)
    settled = sum(o["subscribed"] + o["refused"] for o in outcomes)
    server = [o["server_cpu_s"] for o in outcomes]
    # A thread's process_time is the whole process's: the longest covers them all.
    cpu = max(o["cpu_s"] for o in outcomes) if threads else sum(o["cpu_s"] for o in outcomes)
    return {
        "decisions_per_s": settled / (ended - began),
        "seconds": ended - began,
        "settled": settled,
        "subscribed": sum(o["subscribed"] for o in outcomes),
        "refused": sum(o["refused"] for o in outcomes),
        "conflicts": sum(o["conflicts"] for o in outcomes),
        "client_cpu_us": 1e6 * cpu / settled,
        "server_cpu_us": None if None in server else 1e6 * sum(server) / settled,
        "info": info,
    }


def _run_processes(request: dict[str, Any]) -> list[dict[str, Any]]:
    context = multiprocessing.get_context("spawn")
    ready, results, start = context.Queue(), context.Queue(), context.Event()
    processes = [
        context.Process(target=writer_process, args=(request, i, ready, start, results), daemon=True)
        for i in range(request["writers"])
    ]
    for process in processes:
        process.start()
    try:
        for _ in processes:
            ready.get(timeout=_SPAWN_TIMEOUT)
        start.set()
        outcomes = [results.get(timeout=3600) for _ in processes]
    finally:
        for process in processes:
            process.join(30)
            if process.is_alive():
                process.terminate()
    errors = [detail for kind, detail in outcomes if kind == "error"]
    if errors:
        raise RuntimeError(errors[0])
    return [outcome for _, outcome in outcomes]


def _run_threads(request: dict[str, Any], where: Where, shared: Any) -> list[dict[str, Any]]:
    writers = request["writers"]
    barrier = threading.Barrier(writers + 1)
    outcomes: queue.Queue[tuple[str, Any]] = queue.Queue()

    def work(index: int) -> None:
        try:
            contender = open_contender(request["contender"], where, shared)
        except BaseException as err:
            barrier.abort()
            outcomes.put(("error", f"{type(err).__name__}: {err}"))
            return
        try:
            plan = commands(request["workload"], index, request["per_writer"])
            outcomes.put(("ok", run_writer(contender, plan, barrier.wait)))
        except BaseException as err:
            barrier.abort()
            outcomes.put(("error", f"{type(err).__name__}: {err}\n{traceback.format_exc()}"))
        finally:
            contender.close()

    pool = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(writers)]
    for thread in pool:
        thread.start()
    try:
        barrier.wait(timeout=_SPAWN_TIMEOUT)
    except threading.BrokenBarrierError:
        pass
    for thread in pool:
        thread.join()
    done = [outcomes.get() for _ in pool]
    errors = [detail for kind, detail in done if kind == "error"]
    if errors:
        raise RuntimeError(errors[0])
    return [outcome for _, outcome in done]


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    request = json.loads(args[0])
    try:
        result = run(request)
    except Exception as err:
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        error = {"type": type(err).__name__, "message": message, "traceback": traceback.format_exc()}
        print(ERROR_MARK + json.dumps(error), flush=True)
        return 1
    print(RESULT_MARK + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
