"""The plan of the DCB benchmark: which jobs, in which order, on fresh stores; the medians.

Every figure is the median of its repetitions; within a repetition the contenders
take turns (chronik, eventsourcing, the handler row; the next repetition starts with
the next one), each job in a process of its own on a store made for it and removed
after it. Ratios compare figures of the same run only: chronik's decisions per second
over eventsourcing's (above 1: chronik is faster).

The scaling series (PostgreSQL) runs the disjoint workload with 1, 2, 4, 8 and 16
writers: chronik's writers as processes and as threads of one process, and
eventsourcing's as processes; with each figure, the CPU a decision took in the
writers (their own process time) and in their PostgreSQL backends (from /proc), and
the ceiling that CPU puts on a machine with this many cores.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import platform
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from importlib.metadata import version as dist_version
from pathlib import Path
from typing import Any, Final

from benchmarks.databases import create_location, drop_location, postgres_reachable, postgres_server_version
from benchmarks.dcb.contenders import CONTENDERS, HANDLER, Where, missing
from benchmarks.dcb.job import ERROR_MARK, RESULT_MARK
from benchmarks.stats import median

__all__ = ["BACKENDS", "FULL", "QUICK", "Config", "Sizes", "run_dcb"]

ROOT: Final = Path(__file__).resolve().parents[2]
BACKENDS: Final = ("memory", "sqlite", "postgres")
ROW_CONTENDERS: Final = (*CONTENDERS, HANDLER)


@dataclasses.dataclass(frozen=True)
class Sizes:
    disjoint: int  # decisions of a disjoint job, shared among its writers (20 a writer at least)
    contended: int  # commands of a contended job, shared among its writers
    seats: int  # the contended course's seats
    writers: tuple[int, ...]  # writers of the disjoint figures
    contended_writers: int
    scaling: tuple[int, ...]  # writers of the scaling series (PostgreSQL)


FULL: Final = Sizes(2000, 400, 300, (1, 4), 4, (1, 2, 4, 8, 16))
QUICK: Final = Sizes(80, 40, 30, (1, 2), 2, (1, 2))


@dataclasses.dataclass
class Config:
    sizes: Sizes
    backends: Sequence[str]
    repeat: int
    postgres_url: str
    workdir: Path
    scaling: bool = True
    label: str = "full"
    timeout: float = 1800.0
    progress: Callable[[str], None] = lambda message: None


def per_writer(workload: str, total: int, writers: int) -> int:
    if workload == "contended":
        return max(1, total // writers)
    return max(20, total // writers // 20 * 20)


def _job(config: Config, backend: str, request: dict[str, Any]) -> dict[str, Any]:
    """Run one job on a fresh store; its result, or {"error": ...}."""
    name = f"dcb_{request['contender'].replace('-', '_')}_{uuid.uuid4().hex[:8]}"
    location = None
    if backend == "memory":
        where = Where("memory")
    else:
        location = create_location(backend, name, workdir=config.workdir, postgres_url=config.postgres_url)  # type: ignore[arg-type]
        where = Where(backend, location.sqlite_path, location.postgres_url, location.schema)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "benchmarks.dcb.job", json.dumps({**request, "where": where.to_json()})],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=config.timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {config.timeout:.0f}s"}
    finally:
        if location is not None:
            drop_location(location)
    for line in done.stdout.splitlines():
        if line.startswith(RESULT_MARK):
            result: dict[str, Any] = json.loads(line[len(RESULT_MARK) :])
            return result
        if line.startswith(ERROR_MARK):
            return {"error": json.loads(line[len(ERROR_MARK) :])["message"]}
    return {"error": f"the job printed no result (exit {done.returncode}): {done.stderr.strip()[-500:]}"}


def _figures(sizes: Sizes) -> list[dict[str, Any]]:
    figures = []
    for writers in sizes.writers:
        total = per_writer("disjoint", sizes.disjoint, writers) * writers
        noun = "writer" if writers == 1 else "writers"
        figures.append(
            {
                "key": f"disjoint.w{writers}",
                "title": f"disjoint tags: {total:,} subscriptions by {writers} {noun}, no conflicts",
                "workload": "disjoint",
                "writers": writers,
                "seats": 0,
            }
        )
    writers = sizes.contended_writers
    commands = per_writer("contended", sizes.contended, writers) * writers
    figures.append(
        {
            "key": f"contended.w{writers}",
            "title": f"one course: {commands:,} students for {sizes.seats:,} seats, {writers} writers racing",
            "workload": "contended",
            "writers": writers,
            "seats": sizes.seats,
        }
    )
    return figures


def _request(figure: dict[str, Any], sizes: Sizes, contender: str, mode: str) -> dict[str, Any]:
    total = sizes.contended if figure["workload"] == "contended" else sizes.disjoint
    return {
        "contender": contender,
        "workload": figure["workload"],
        "writers": figure["writers"],
        "per_writer": per_writer(figure["workload"], total, figure["writers"]),
        "seats": figure["seats"],
        "mode": mode,
    }


def _summary(results: list[dict[str, Any]]) -> dict[str, Any] | None:
    ok = [r for r in results if "error" not in r]
    if not ok:
        return None

    def mid(key: str) -> float | None:
        values = [r[key] for r in ok if r.get(key) is not None]
        return median(values) if values else None

    return {
        "decisions_per_s": mid("decisions_per_s"),
        "samples": [r["decisions_per_s"] for r in ok],
        "conflicts": mid("conflicts"),
        "client_cpu_us": mid("client_cpu_us"),
        "server_cpu_us": mid("server_cpu_us"),
    }


def _ratio(chronik: dict[str, Any] | None, other: dict[str, Any] | None) -> float | None:
    if not chronik or not other or not other["decisions_per_s"]:
        return None
    return float(chronik["decisions_per_s"] / other["decisions_per_s"])


def _backend(config: Config, backend: str) -> dict[str, Any]:
    entry: dict[str, Any] = {"backend": backend, "status": "ran", "reason": None, "server": None}
    entry.update(contenders={}, rows=[], errors=[])
    if backend == "postgres":
        reason = postgres_reachable(config.postgres_url)
        if reason:
            entry.update(status="skipped", reason=reason)
            return entry
        entry["server"] = postgres_server_version(config.postgres_url)
    for name in ROW_CONTENDERS:
        why = missing(name, backend)
        entry["contenders"][name] = {"available": why is None, "reason": why, "info": {}}
    mode = "threads" if backend == "memory" else "processes"
    figures = _figures(config.sizes)
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {
        f["key"]: {n: [] for n in ROW_CONTENDERS} for f in figures
    }
    for repetition in range(config.repeat):
        for figure in figures:
            turn = repetition % len(ROW_CONTENDERS)
            for name in ROW_CONTENDERS[turn:] + ROW_CONTENDERS[:turn]:
                if not entry["contenders"][name]["available"]:
                    continue
                config.progress(f"dcb {backend}: {figure['key']} {name} ({repetition + 1}/{config.repeat})")
                result = _job(config, backend, _request(figure, config.sizes, name, mode))
                if "error" in result:
                    entry["errors"].append(
                        {"figure": figure["key"], "contender": name, "message": result["error"]}
                    )
                else:
                    entry["contenders"][name]["info"] = result.pop("info")
                runs[figure["key"]][name].append(result)
    for figure in figures:
        values = {name: _summary(runs[figure["key"]][name]) for name in ROW_CONTENDERS}
        entry["rows"].append(
            {
                **figure,
                "values": values,
                "ratio": _ratio(values["chronik"], values["eventsourcing"]),
                "handler_ratio": _ratio(values[HANDLER], values["eventsourcing"]),
            }
        )
    return entry


def _scaling(config: Config) -> dict[str, Any]:
    series: list[dict[str, Any]] = []
    columns = (("chronik", "processes"), ("chronik", "threads"), ("eventsourcing", "processes"))
    errors: list[dict[str, Any]] = []
    for writers in config.sizes.scaling:
        figure = {"workload": "disjoint", "writers": writers, "seats": 0}
        runs: dict[str, list[dict[str, Any]]] = {f"{n}/{m}": [] for n, m in columns}
        for repetition in range(config.repeat):
            turn = repetition % len(columns)
            for name, mode in columns[turn:] + columns[:turn]:
                config.progress(
                    f"dcb scaling: {writers} writers, {name} ({mode}) ({repetition + 1}/{config.repeat})"
                )
                result = _job(config, "postgres", _request(figure, config.sizes, name, mode))
                if "error" in result:
                    errors.append(
                        {"writers": writers, "contender": f"{name}/{mode}", "message": result["error"]}
                    )
                result.pop("info", None)
                runs[f"{name}/{mode}"].append(result)
        values = {key: _summary(results) for key, results in runs.items()}
        series.append(
            {
                "writers": writers,
                "decisions": per_writer("disjoint", config.sizes.disjoint, writers) * writers,
                "values": values,
                "ratio": _ratio(values["chronik/processes"], values["eventsourcing/processes"]),
            }
        )
    return {"series": series, "errors": errors, "cpus": os.cpu_count()}


def run_dcb(config: Config) -> dict[str, Any]:
    """Every backend's figures and, with PostgreSQL, the scaling series."""
    began = time.monotonic()
    result: dict[str, Any] = {
        "meta": {
            "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "machine": {
                "cpus": os.cpu_count(),
                "platform": platform.platform(),
                "python": platform.python_version(),
            },
            "versions": {"chronik": dist_version("chronik"), "eventsourcing": dist_version("eventsourcing")},
            "repeat": config.repeat,
            "label": config.label,
            "sizes": dataclasses.asdict(config.sizes),
        },
        "backends": [_backend(config, backend) for backend in config.backends],
        "scaling": None,
    }
    postgres = next((b for b in result["backends"] if b["backend"] == "postgres"), None)
    if config.scaling and postgres is not None and postgres["status"] == "ran":
        result["scaling"] = _scaling(config)
    result["meta"]["duration_s"] = time.monotonic() - began
    return result
