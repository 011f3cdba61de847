"""The plan: which jobs run, in which order, on which fresh databases; and the medians.

For every backend and workload, repetitions alternate between contenders (chronik,
eventsourcing, raw, chronik, eventsourcing, raw, ...), each job in its own worker
process on a database created for it and dropped after it. A figure is the median
of its repetitions; ratios only ever compare figures of the same run.

Workload 7's stores (10,000 and 1,000,000 events) are built once per contender and
backend, then the loads alternate for every repetition; the peak RSS of reading the
large log is measured once per contender (it does not vary from run to run the way
times do).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import platform
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as dist_version
from pathlib import Path
from typing import Any, Final

from benchmarks.contenders import NOT_APPLICABLE, NOT_APPLICABLE_JOBS
from benchmarks.databases import (
    Location,
    create_location,
    drop_location,
    nats_reachable,
    nats_server_version,
    postgres_reachable,
    postgres_server_version,
)
from benchmarks.spec import (
    BACKEND_WORKLOADS,
    CONTENDERS,
    FAST,
    FIGURES,
    NORMAL,
    TARGETS,
    VARIANTS,
    WORKLOADS,
    Backend,
    Figure,
    Sizes,
    Variant,
    sizes_for,
    speed_ratio,
)
from benchmarks.stats import median
from benchmarks.worker import ERROR_MARK, RESULT_MARK

__all__ = ["Config", "run_benchmarks"]

ROOT: Final = Path(__file__).resolve().parent.parent
# jobs of each simple workload (one worker per job, contender and repetition)
_SIMPLE_JOBS: Final[dict[str, tuple[str, ...]]] = {
    "1": ("w1",),
    "2": ("w2", "w2s", "w2c"),
    "3": ("w3",),
    "4": ("w4",),
    "6": ("w6",),
    "a": ("a",),
    "b": ("b",),
    "c": ("c-small", "c-large"),
    "d": ("d-local", "d-remote"),
    "e": ("e",),
    "g": ("g",),
    "i": ("i-start", "i-handle"),
}
_EXTRA_JOBS: Final = frozenset({"w2c"})  # they measure only Figure.extra figures
_JOB_OPTIONS: Final[dict[str, dict[str, Any]]] = {
    "w2s": {"snapshot_every": None},  # filled from the sizes
    "w2c": {"snapshot_every": None},
    "w4": {"snapshots": True},
    "b": {"processes": True},
    "d-local": {"notify": True},
    "d-remote": {"notify": True},
}


@dataclasses.dataclass
class Config:
    sizes: Sizes
    backends: Sequence[Backend]
    workloads: Sequence[str]
    repeat: int
    workdir: Path | None = None
    postgres_url: str = ""
    nats_url: str = ""
    normal: bool = True  # the labelled chronik synchronous=NORMAL row on SQLite
    fast: bool = True  # the labelled rows of eventsourcing on its fastest settings
    extras: bool = False  # the figures beyond the (Figure.extra)
    timeout: float = 3600.0
    label: str = "full"
    progress: Callable[[str], None] = lambda message: None


class WorkerError(Exception):
    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.detail = detail


@dataclasses.dataclass
class _Backend:
    backend: Backend
    status: str = "ran"
    reason: str | None = None
    contenders: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    samples: dict[str, dict[str, list[float]]] = dataclasses.field(default_factory=dict)
    errors: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    not_applicable: list[dict[str, str]] = dataclasses.field(default_factory=list)
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)
    seconds: dict[str, float] = dataclasses.field(default_factory=dict)

    def available(self, contender: str) -> bool:
        entry = self.contenders.get(contender)
        return entry is not None and entry["available"]

    def add(self, contender: str, figures: dict[str, float]) -> None:
        for key, value in figures.items():
            self.samples.setdefault(key, {}).setdefault(contender, []).append(value)


class _Run:
    def __init__(self, config: Config, workdir: Path) -> None:
        self.config = config
        self.workdir = workdir
        self.counter = 0
        self.sizes = config.sizes  # the sizes of the backend running (see spec.sizes_for)

    # -- workers -------------------------------------------------------------------

    def worker(
        self,
        job: str,
        contender: str,
        locations: dict[str, Location],
        options: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        variant = VARIANTS.get(contender)
        module = variant.contender if variant else contender
        changed = dict(variant.options) if variant else {}
        request = {
            "job": job,
            "contender": module,
            "locations": {role: loc.to_json() for role, loc in locations.items()},
            "options": {**(options or {}), **changed},
            "sizes": dataclasses.asdict(self.sizes),
            "params": params or {},
        }
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        try:
            done = subprocess.run(
                [sys.executable, "-m", "benchmarks.worker", json.dumps(request)],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=self.config.timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as err:
            raise WorkerError(f"timed out after {self.config.timeout:.0f}s") from err
        for line in reversed(done.stdout.splitlines()):
            if line.startswith(RESULT_MARK):
                result: dict[str, Any] = json.loads(line[len(RESULT_MARK) :])
                return result
            if line.startswith(ERROR_MARK):
                error = json.loads(line[len(ERROR_MARK) :])
                raise WorkerError(f"{error['type']}: {error['message']}", error["traceback"])
        tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
        raise WorkerError(f"worker exited with {done.returncode}: {' | '.join(tail)}", done.stderr)

    @contextmanager
    def location(self, backend: Backend, name: str) -> Iterator[Location]:
        self.counter += 1
        location = create_location(
            backend,
            f"bench_{self.counter}_{name}_{os.getpid()}",
            workdir=self.workdir,
            postgres_url=self.config.postgres_url,
            nats_url=self.config.nats_url,
        )
        try:
            yield location
        finally:
            drop_location(location)

    # -- the plan ------------------------------------------------------------------

    def variant_runs(self, b: _Backend, variant: Variant, workload: str, job: str) -> bool:
        if variant.name == NORMAL and not self.config.normal:
            return False
        if variant.name == FAST and not self.config.fast:
            return False
        return (
            b.backend in variant.backends
            and workload in variant.workloads
            and (variant.jobs is None or job in variant.jobs)
            and b.available(variant.name)
        )

    def contenders_for(self, b: _Backend, workload: str, job: str, rep: int) -> list[str]:
        names = [c for c in CONTENDERS if b.available(c) and self.applies(b, c, workload)]
        names += [v.name for v in VARIANTS.values() if self.variant_runs(b, v, workload, job)]
        # A, B, C, A, B, C, ... with the starting contender rotating each repetition,
        # so that none always runs first (on a cold cache) or last.
        shift = rep % len(names) if names else 0
        return names[shift:] + names[:shift]

    def applies(self, b: _Backend, contender: str, workload: str) -> bool:
        """Whether ``contender`` has ``workload`` on this backend (else noted once as n/a)."""
        reason = NOT_APPLICABLE.get((contender, b.backend, workload))
        if reason is None:
            return True
        entry = {"workload": workload, "contender": contender, "reason": reason}
        if entry not in b.not_applicable:
            b.not_applicable.append(entry)
        return False

    def job_options(self, job: str) -> dict[str, Any]:
        options = dict(_JOB_OPTIONS.get(job, {}))
        if job in ("w2s", "w2c"):
            options["snapshot_every"] = self.sizes.w2_snapshot_every
        return options

    def record_error(self, b: _Backend, workload: str, contender: str, job: str, err: WorkerError) -> None:
        self.config.progress(f"  [{b.backend}] {job} {contender}: ERROR {err}")
        b.errors.append(
            {
                "workload": workload,
                "contender": contender,
                "job": job,
                "message": str(err),
                "detail": err.detail,
            }
        )

    def probe(self, b: _Backend) -> None:
        names = list(CONTENDERS)
        for variant in VARIANTS.values():
            wanted = (variant.name != NORMAL or self.config.normal) and (
                variant.name != FAST or self.config.fast
            )
            if (
                wanted
                and b.backend in variant.backends
                and set(variant.workloads) & set(self.config.workloads)
            ):
                names.append(variant.name)
        for name in names:
            try:
                with self.location(b.backend, f"probe_{name}") as loc:
                    result = self.worker("probe", name, {"main": loc})
            except WorkerError as err:
                reason = str(err)
                self.config.progress(f"  [{b.backend}] {name}: not available ({reason})")
                b.contenders[name] = {"available": False, "reason": reason, "info": {}}
                continue
            except Exception as err:  # creating the location itself failed
                reason = f"{type(err).__name__}: {err}"
                b.contenders[name] = {"available": False, "reason": reason, "info": {}}
                continue
            b.contenders[name] = {"available": True, "reason": None, "info": result["data"]["info"]}

    def simple(self, b: _Backend, workload: str) -> None:
        for job in _SIMPLE_JOBS[workload]:
            if job in _EXTRA_JOBS and not self.config.extras:
                continue
            for rep in range(self.config.repeat):
                for name in self.contenders_for(b, workload, job, rep):
                    try:
                        with self.location(b.backend, f"{job}_{name}_{rep}") as loc:
                            result = self.worker(job, name, {"main": loc}, self.job_options(job))
                    except WorkerError as err:
                        self.record_error(b, workload, name, job, err)
                        continue
                    b.add(name, result["figures"])
                    self.config.progress(
                        f"  [{b.backend}] {job} rep {rep + 1} {name}: {_brief(result['figures'])}"
                    )

    def w5(self, b: _Backend) -> None:
        """Workloads 5 and f share their store: the log, its streams over several categories."""
        sizes = self.sizes
        chosen = set(_workloads(b.backend, self.config.workloads)) & {"5", "f"}
        params = {
            "events": sizes.w5_events,
            "events_per_stream": sizes.w5_events_per_stream,
            "categories": sizes.f_categories,
        }
        for rep in range(self.config.repeat):
            names = self.contenders_for(b, "5", "w5", rep) if "5" in chosen else []
            names += [n for n in self.contenders_for(b, "f", "f-read", rep) if n not in names]
            for name in names:
                jobs = []
                if "5" in chosen and name in self.contenders_for(b, "5", "w5", rep):
                    jobs += [("5", "w5-undecoded"), ("5", "w5-decoded")]
                if "f" in chosen and name in self.contenders_for(b, "f", "f-read", rep):
                    jobs.append(("f", "f-read"))
                current = jobs[0][0]
                try:
                    with self.location(b.backend, f"w5_{name}_{rep}") as loc:
                        built = self.worker("build", name, {"main": loc}, params=params)
                        b.extra.setdefault("w5_build_s", {}).setdefault(name, []).append(
                            built["data"]["build_s"]
                        )
                        for current, job in jobs:  # noqa: B007 - the one a failure is recorded under
                            result = self.worker(job, name, {"main": loc})
                            b.add(name, result["figures"])
                            self.config.progress(
                                f"  [{b.backend}] {job} rep {rep + 1} {name}: {_brief(result['figures'])}"
                            )
                except WorkerError as err:
                    self.record_error(b, current, name, "w5", err)

    def h(self, b: _Backend) -> None:
        """Peak memory, once per contender (it does not vary from run to run as times do)."""
        sizes = self.sizes
        params = {"events": sizes.h_events, "events_per_stream": sizes.h_events, "sample": 1}
        for name in self.contenders_for(b, "h", "h", 0):
            try:
                with self.location(b.backend, f"h_{name}") as loc:
                    built = self.worker("build", name, {"main": loc}, params=params)
                    result = self.worker(
                        "h-load", name, {"main": loc}, params={"sample": built["data"]["sample"]}
                    )
                b.add(name, result["figures"])
                self.config.progress(f"  [{b.backend}] h-load {name}: {_brief(result['figures'])}")
                reason = NOT_APPLICABLE_JOBS.get(
                    (VARIANTS[name].contender if name in VARIANTS else name, b.backend, "h-write")
                )
                if reason is not None:
                    b.not_applicable.append({"workload": "h", "contender": name, "reason": reason})
                    continue
                with self.location(b.backend, f"h_write_{name}") as loc:
                    result = self.worker("h-write", name, {"main": loc})
                b.add(name, result["figures"])
                self.config.progress(f"  [{b.backend}] h-write {name}: {_brief(result['figures'])}")
            except WorkerError as err:
                self.record_error(b, "h", name, "h", err)

    def build_w7(self, b: _Backend, name: str, location: Location, events: int) -> list[str]:
        """Fill one of workload 7's stores; the ids of the aggregates to load from it."""
        sizes = self.sizes
        params = {
            "events": events,
            "events_per_stream": sizes.w7_aggregate_events,
            "sample": sizes.w7_loads + 1,
        }
        built = self.worker("build", name, {"main": location}, params=params)
        seconds = built["data"]["build_s"]
        b.extra.setdefault("w7_build_s", {}).setdefault(name, {})[str(events)] = seconds
        self.config.progress(f"  [{b.backend}] w7 build {events:,} events {name}: {seconds:.1f}s")
        sample: list[str] = built["data"]["sample"]
        return sample

    def w7(self, b: _Backend) -> None:
        sizes = self.sizes
        stores: dict[str, tuple[Location, Location, list[str], list[str]]] = {}
        with ExitStack() as stack:
            for name in self.contenders_for(b, "7", "w7", 0):
                small = stack.enter_context(self.location(b.backend, f"w7s_{name}"))
                large = stack.enter_context(self.location(b.backend, f"w7l_{name}"))
                try:
                    small_ids = self.build_w7(b, name, small, sizes.w7_small)
                    large_ids = self.build_w7(b, name, large, sizes.w7_large)
                except WorkerError as err:
                    self.record_error(b, "7", name, "w7-build", err)
                    continue
                stores[name] = (small, large, small_ids, large_ids)
            for rep in range(self.config.repeat):
                for name in self.contenders_for(b, "7", "w7", rep):
                    if name not in stores:
                        continue
                    small, large, small_ids, large_ids = stores[name]
                    params = {"small_ids": small_ids, "large_ids": large_ids}
                    try:
                        result = self.worker(
                            "w7-loads", name, {"small": small, "large": large}, params=params
                        )
                    except WorkerError as err:
                        self.record_error(b, "7", name, "w7-loads", err)
                        continue
                    b.add(name, result["figures"])
                    self.config.progress(
                        f"  [{b.backend}] w7 loads rep {rep + 1} {name}: {_brief(result['figures'])}"
                    )
            for name, (_, large, _, _) in stores.items():
                try:
                    result = self.worker("w7-rss", name, {"main": large})
                except WorkerError as err:
                    self.record_error(b, "7", name, "w7-rss", err)
                    continue
                b.add(name, result["figures"])
                b.extra.setdefault("w7_read_events_per_s", {})[name] = result["data"]["read_events_per_s"]
                self.config.progress(f"  [{b.backend}] w7 rss {name}: {_brief(result['figures'])}")

    def backend(self, backend: Backend) -> _Backend:
        b = _Backend(backend)
        self.sizes = sizes_for(backend, self.config.sizes)
        if backend == "nats":
            reason = nats_reachable(self.config.nats_url)
            if reason is not None:
                b.status, b.reason = "skipped", reason
                self.config.progress(f"[nats] skipped: {reason}")
                return b
            b.extra["server"] = nats_server_version(self.config.nats_url)
        if backend == "postgres":
            reason = postgres_reachable(self.config.postgres_url)
            if reason is not None:
                b.status, b.reason = "skipped", reason
                self.config.progress(f"[postgres] skipped: {reason}")
                return b
            b.extra["server"] = postgres_server_version(self.config.postgres_url)
        self.config.progress(f"[{backend}] probing contenders")
        self.probe(b)
        for workload in _workloads(backend, self.config.workloads):
            started = time.perf_counter()
            self.config.progress(f"[{backend}] workload {workload}: {WORKLOADS[workload]}")
            if workload == "f" and "5" in _workloads(backend, self.config.workloads):
                continue  # measured on workload 5's store, with it
            if workload in ("5", "f"):
                self.w5(b)
            elif workload == "7":
                self.w7(b)
            elif workload == "h":
                self.h(b)
            else:
                self.simple(b, workload)
            b.seconds[workload] = time.perf_counter() - started
        return b


def _brief(figures: dict[str, float]) -> str:
    return ", ".join(f"{k.split('.', 1)[1]}={v:,.4g}" for k, v in figures.items())


def _versions() -> dict[str, str]:
    versions = {"python": platform.python_version(), "sqlite": sqlite3.sqlite_version}
    for dist in ("chronik", "eventsourcing", "psycopg", "msgspec"):
        try:
            versions[dist] = dist_version(dist)
        except PackageNotFoundError:
            versions[dist] = "not installed"
    return versions


def _machine() -> dict[str, Any]:
    machine: dict[str, Any] = {
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
    }
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    machine["processor"] = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo", encoding="utf-8") as meminfo:
            machine["memory_gib"] = round(int(meminfo.readline().split()[1]) / 1024**2, 1)
    except OSError:
        pass
    return machine


def _workloads(backend: str, workloads: Sequence[str]) -> list[str]:
    return [w for w in workloads if w in BACKEND_WORKLOADS[backend]]


def _variant_row(
    figure: Figure, sizes: Sizes, variant: Variant, value: float, values: dict[str, Any], samples: list[float]
) -> dict[str, Any]:
    """The labelled row of a variant, its figure in its column."""
    if variant.column == "chronik":
        # The variant is chronik run otherwise: its speed over the others.
        ratios = {other: speed_ratio(figure, value, values[other]) for other in ("eventsourcing", "raw")}
    elif variant.against == "chronik":
        ratios = {"eventsourcing": speed_ratio(figure, values["chronik"], value), "raw": None}
    else:
        ratios = {"eventsourcing": speed_ratio(figure, value, values[variant.column]), "raw": None}
    return {
        "key": figure.key,
        "workload": figure.workload,
        "title": f"{figure.workload}.   the same, {variant.label}",
        "unit": figure.unit,
        "better": figure.better,
        "variant": variant.name,
        "values": {name: (value if name == variant.column else None) for name in CONTENDERS},
        "samples": {variant.column: samples},
        "ratios": ratios,
        "targets": [],
    }


def _rows(b: _Backend, sizes: Sizes, workloads: Sequence[str], extras: bool) -> list[dict[str, Any]]:
    sizes = sizes_for(b.backend, sizes)
    workloads = _workloads(b.backend, workloads)
    rows: list[dict[str, Any]] = []
    for figure in FIGURES:
        if figure.workload not in workloads or (figure.extra and not extras):
            continue
        samples = b.samples.get(figure.key, {})
        values = {name: median(samples.get(name, [])) for name in CONTENDERS}
        chronik = values["chronik"]
        ratios = {other: speed_ratio(figure, chronik, values[other]) for other in ("eventsourcing", "raw")}
        targets = []
        for target in TARGETS:
            if target.backend != b.backend or target.key != figure.key:
                continue
            actual = chronik if target.against is None else ratios[target.against]
            targets.append(
                {
                    "against": target.against,
                    "value": target.value,
                    "text": target.describe(),
                    "actual": actual,
                    "met": None if actual is None else target.met(actual),
                }
            )
        rows.append(
            {
                "key": figure.key,
                "workload": figure.workload,
                "title": figure.title(sizes),
                "unit": figure.unit,
                "better": figure.better,
                "variant": None,
                "values": values,
                "samples": {name: samples.get(name, []) for name in CONTENDERS},
                "ratios": ratios,
                "targets": targets,
            }
        )
        for variant in VARIANTS.values():
            measured = samples.get(variant.name)
            if measured:
                value = median(measured)
                assert value is not None
                rows.append(_variant_row(figure, sizes, variant, value, values, measured))
    return rows


def run_benchmarks(config: Config) -> dict[str, Any]:
    """Run the plan and return everything ``bench.json`` holds."""
    started = time.perf_counter()
    began = datetime.datetime.now(datetime.UTC)
    own_workdir = config.workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="chronik-bench-")) if config.workdir is None else config.workdir
    workdir.mkdir(parents=True, exist_ok=True)
    run = _Run(config, workdir)
    backends: list[dict[str, Any]] = []
    missed: list[dict[str, Any]] = []
    unmeasured: list[dict[str, Any]] = []
    try:
        for backend in config.backends:
            b = run.backend(backend)
            rows = _rows(b, config.sizes, config.workloads, config.extras) if b.status == "ran" else []
            for row in rows:
                for target in row["targets"]:
                    if target["met"] is True:
                        continue
                    entry = {
                        "backend": backend,
                        "key": row["key"],
                        "title": row["title"],
                        "target": target["text"],
                        "against": target["against"],
                        "actual": target["actual"],
                    }
                    (missed if target["met"] is False else unmeasured).append(entry)
            backends.append(
                {
                    "backend": backend,
                    "status": b.status,
                    "reason": b.reason,
                    "contenders": b.contenders,
                    "rows": rows,
                    "errors": b.errors,
                    "not_applicable": b.not_applicable,
                    "extra": b.extra,
                    "seconds": b.seconds,
                    "sizes": dataclasses.asdict(sizes_for(backend, config.sizes)),
                }
            )
    finally:
        if own_workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    return {
        "meta": {
            "date": began.isoformat(timespec="seconds"),
            "label": config.label,
            "command": " ".join(["python -m benchmarks", *sys.argv[1:]]),
            "repeat": config.repeat,
            "workloads": list(config.workloads),
            "sizes": dataclasses.asdict(config.sizes),
            "versions": _versions(),
            "machine": _machine(),
            "duration_s": round(time.perf_counter() - started, 1),
            "ratios": (
                "speed ratios: above 1 means chronik is faster (rates: chronik/other; times: other/chronik)"
            ),
        },
        "backends": backends,
        "missed": missed,
        "unmeasured": unmeasured,
    }
