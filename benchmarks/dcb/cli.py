"""``python -m benchmarks.dcb [--quick] [--backend ...] [--repeat N] [--out DIR]``."""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from rich.console import Console

from benchmarks.databases import DEFAULT_POSTGRES_URL
from benchmarks.dcb.report import print_tables, write_outputs
from benchmarks.dcb.runner import BACKENDS, FULL, QUICK, Config, run_dcb

__all__ = ["main", "parser", "run"]


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.dcb",
        description="DCB decisions per second: chronik against eventsourcing.dcb, on memory, SQLite and "
        "PostgreSQL, with and without conflicts, and by writers on PostgreSQL (issue 17).",
    )
    p.add_argument(
        "--quick", action="store_true", help="tiny sizes, one repetition: proves the harness works"
    )
    p.add_argument("--backend", choices=[*BACKENDS, "all"], default="all", help="default: all")
    p.add_argument("--repeat", type=_positive_int, help="repetitions per figure (default 3; 1 with --quick)")
    p.add_argument("--no-scaling", action="store_true", help="skip the PostgreSQL series by writers")
    p.add_argument("--out", type=Path, help="write dcb.json and dcb.md into this directory")
    p.add_argument(
        "--postgres-url",
        default=os.environ.get("CHRONIK_BENCH_POSTGRES_URL")
        or os.environ.get("CHRONIK_TEST_POSTGRES_URL")
        or DEFAULT_POSTGRES_URL,
        help="server for the PostgreSQL runs; each job gets a fresh schema, dropped afterwards "
        "(default: $CHRONIK_BENCH_POSTGRES_URL, $CHRONIK_TEST_POSTGRES_URL, or %(default)s)",
    )
    p.add_argument("--workdir", type=Path, help="where the SQLite files go (default: a temporary directory)")
    p.add_argument("--render", type=Path, metavar="DCB_JSON", help="print the tables of a saved dcb.json")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines, only the tables")
    return p


def run(
    *,
    quick: bool,
    backends: list[str],
    repeat: int | None,
    postgres_url: str,
    workdir: Path | None,
    scaling: bool,
    console: Console,
    quiet: bool,
) -> dict[str, Any]:
    """Run the DCB benchmark (also what ``python -m benchmarks`` calls for ``--only dcb``)."""
    sizes, label = (QUICK, "quick") if quick else (FULL, "full")
    with tempfile.TemporaryDirectory(prefix="chronik-dcb-") as scratch:
        config = Config(
            sizes=sizes,
            backends=backends,
            repeat=repeat or (1 if quick else 3),
            postgres_url=postgres_url,
            workdir=workdir or Path(scratch),
            scaling=scaling,
            label=label,
            timeout=600.0 if quick else 1800.0,
            progress=(lambda message: None)
            if quiet
            else (lambda message: console.print(message, highlight=False, markup=False)),
        )
        return run_dcb(config)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    console = Console()
    if args.render:
        print_tables(json.loads(args.render.read_text(encoding="utf-8")), console)
        return 0
    if importlib.util.find_spec("eventsourcing") is None:
        console.print("eventsourcing is not installed: pip install -r benchmarks/requirements.txt")
        return 2
    result = run(
        quick=args.quick,
        backends=list(BACKENDS) if args.backend == "all" else [args.backend],
        repeat=args.repeat,
        postgres_url=args.postgres_url,
        workdir=args.workdir,
        scaling=not args.no_scaling,
        console=console,
        quiet=args.quiet,
    )
    print_tables(result, console)
    if args.out:
        json_path, md_path = write_outputs(result, args.out)
        console.print(f"wrote {json_path} and {md_path}")
    return 0
