"""The command line: ``python -m benchmarks [--quick] [--backend ...] [--only ...] [--out DIR]``."""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
from pathlib import Path
from typing import Final

from rich.console import Console

from benchmarks import validation
from benchmarks.databases import DEFAULT_NATS_URL, DEFAULT_POSTGRES_URL
from benchmarks.report import print_tables, write_outputs
from benchmarks.runner import Config, run_benchmarks
from benchmarks.spec import BACKENDS, FULL, QUICK, WORKLOADS, Backend

__all__ = ["main", "parser"]


DCB: Final = "dcb"


def _workloads(text: str) -> list[str]:
    """Workload ids (1-7 and a-i), and ``dcb`` for the DCB section (``benchmarks.dcb``)."""
    wanted = {part.strip().lower() for part in text.split(",") if part.strip()}
    unknown = sorted(wanted - set(WORKLOADS) - {DCB})
    if unknown or not wanted:
        raise argparse.ArgumentTypeError(
            f"workloads are {', '.join(WORKLOADS)} and dcb (e.g. 1,3,a,dcb), got {text!r}"
        )
    return [w for w in WORKLOADS if w in wanted] + ([DCB] if DCB in wanted else [])


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="chronik against eventsourcing and the raw drivers, on SQLite, PostgreSQL and NATS "
        "(issues 6, 13 and 19).",
    )
    size = p.add_mutually_exclusive_group()
    size.add_argument(
        "--quick", action="store_true", help="tiny sizes, one repetition: proves the harness works"
    )
    size.add_argument(
        "--scale", type=_positive_float, help="multiply the issue's event counts by this factor"
    )
    p.add_argument("--backend", choices=[*BACKENDS, "all"], default="all", help="default: all")
    p.add_argument(
        "--only",
        type=_workloads,
        help="workloads to run, e.g. 1,3,a,d, and dcb for the DCB section (python -m benchmarks.dcb; "
        "default: all of 1-7 and a-i, and dcb)",
    )
    p.add_argument("--repeat", type=_positive_int, help="repetitions per figure (default 3; 1 with --quick)")
    p.add_argument("--out", type=Path, help="write bench.json and bench.md into this directory")
    p.add_argument(
        "--postgres-url",
        default=os.environ.get("CHRONIK_BENCH_POSTGRES_URL")
        or os.environ.get("CHRONIK_TEST_POSTGRES_URL")
        or DEFAULT_POSTGRES_URL,
        help="server for the PostgreSQL runs; each job gets a fresh schema, dropped afterwards "
        "(default: $CHRONIK_BENCH_POSTGRES_URL, $CHRONIK_TEST_POSTGRES_URL, or %(default)s)",
    )
    p.add_argument(
        "--nats-url",
        default=os.environ.get("CHRONIK_BENCH_NATS_URL")
        or os.environ.get("CHRONIK_TEST_NATS_URL")
        or DEFAULT_NATS_URL,
        help="NATS server (JetStream) for the NATS runs; each job gets a fresh stream, deleted afterwards "
        "(default: $CHRONIK_BENCH_NATS_URL, $CHRONIK_TEST_NATS_URL, or %(default)s)",
    )
    p.add_argument("--workdir", type=Path, help="where the SQLite files go (default: a temporary directory)")
    p.add_argument(
        "--no-normal", action="store_true", help="skip the labelled chronik synchronous=NORMAL rows"
    )
    p.add_argument(
        "--no-fast",
        action="store_true",
        help="skip the labelled rows of eventsourcing on its fastest documented settings",
    )
    p.add_argument(
        "--extras",
        action="store_true",
        help="also the figures beyond the issue's: workload 2 as commands that load the aggregate first",
    )
    p.add_argument(
        "--publish",
        action="store_true",
        help="also commit-ready: write the run's JSON to benchmarks/results/<date>-<time>-<machine>.json, "
        "which python -m benchmarks.report --readme turns into the README's tables",
    )
    p.add_argument("--note", help="a sentence on the run (the machine's state, ...) kept with its JSON")
    p.add_argument("--render", type=Path, metavar="BENCH_JSON", help="print the tables of a saved bench.json")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines, only the tables")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    console = Console()
    if args.render:
        print_tables(json.loads(args.render.read_text(encoding="utf-8")), console)
        return 0
    if importlib.util.find_spec("eventsourcing") is None:
        console.print("eventsourcing is not installed: pip install -r benchmarks/requirements.txt")
        return 2
    chosen = args.only or [*WORKLOADS, DCB]
    workloads = [w for w in chosen if w != DCB]
    if workloads:
        _main_section(args, workloads, console)
    if DCB in chosen:
        _dcb_section(args, console)
    return 0


def _main_section(args: argparse.Namespace, workloads: list[str], console: Console) -> None:
    if args.quick:
        sizes, label, repeat = QUICK, "quick", args.repeat or 1
    elif args.scale:
        sizes, label, repeat = FULL.scaled(args.scale), f"scale {args.scale:g}", args.repeat or 3
    else:
        sizes, label, repeat = FULL, "full (issues 6 and 19)", args.repeat or 3
    backends: list[Backend] = list(BACKENDS) if args.backend == "all" else [args.backend]
    config = Config(
        sizes=sizes,
        backends=backends,
        workloads=workloads,
        repeat=repeat,
        workdir=args.workdir,
        postgres_url=args.postgres_url,
        nats_url=args.nats_url,
        normal=not args.no_normal,
        fast=not args.no_fast,
        extras=args.extras,
        timeout=600.0 if args.quick else 3600.0,
        label=label,
        progress=(lambda message: None)
        if args.quiet
        else (lambda message: console.print(message, highlight=False, markup=False)),
    )
    result = run_benchmarks(config)
    if args.note:
        result["meta"]["note"] = args.note
    result["validation"] = validation.measure(rounds=5 if args.quick else 15)
    print_tables(result, console)
    if args.out:
        json_path, md_path = write_outputs(result, args.out)
        console.print(f"wrote {json_path} and {md_path}")
    if args.publish:
        from benchmarks.published import RESULTS, result_path

        RESULTS.mkdir(parents=True, exist_ok=True)
        path = result_path(result)
        path.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
        console.print(f"wrote {path}: python -m benchmarks.report --readme makes the README's tables from it")


def _dcb_section(args: argparse.Namespace, console: Console) -> None:
    """The DCB benchmark (``benchmarks.dcb``) on the chosen backends that have DCB."""
    from benchmarks.dcb import cli as dcb_cli
    from benchmarks.dcb import report as dcb_report

    backends = ["memory", "sqlite", "postgres"] if args.backend == "all" else [args.backend]
    if "nats" in backends:
        console.print(
            "DCB on NATS: not measured: chronik's NATS store has no DCB (docs/nats.md says why) "
            "and eventsourcing has no NATS recorder",
            highlight=False,
            markup=False,
        )
        backends.remove("nats")
    if not backends:
        return
    result = dcb_cli.run(
        quick=args.quick,
        backends=backends,
        repeat=args.repeat,
        postgres_url=args.postgres_url,
        workdir=args.workdir,
        scaling=True,
        console=console,
        quiet=args.quiet,
    )
    dcb_report.print_tables(result, console)
    if args.out:
        json_path, md_path = dcb_report.write_outputs(result, args.out)
        console.print(f"wrote {json_path} and {md_path}")
