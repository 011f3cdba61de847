"""Output: a rich table per backend on the terminal, and the same as JSON and Markdown.

Everything is rendered from the dict that ``bench.json`` holds, so a saved run can
be rendered again (``python -m benchmarks --render bench.json``).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any, Final

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from benchmarks import validation
from benchmarks.spec import FAST, ON_CHRONIK, VARIANT_COLUMN

__all__ = [
    "machine_slug",
    "markdown",
    "print_tables",
    "run_summary",
    "table_lines",
    "targets_lines",
    "write_outputs",
]

PASS: Final = "✓"
MISS: Final = "✗"
_TITLES: Final = {
    "sqlite": "SQLite: one file, WAL, synchronous=FULL for every contender",
    "postgres": "PostgreSQL",
    "nats": "NATS JetStream (chronik against raw nats-py; eventsourcing has no NATS store)",
}
_COLUMNS: Final = ("chronik", "eventsourcing", "raw")
_NOISE: Final = frozenset({"r", "tm", "cpu", "processor", "core", "with", "radeon", "graphics", "ghz"})


def _number(value: float | None, unit: str) -> str:
    if value is None:
        return ""
    if unit.endswith("/s"):
        return f"{value:,.0f}"
    if unit == "x":
        return f"{value:.2f}"
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}" if value >= 0.01 else f"{value:.4f}"


def _missing(backend: dict[str, Any], row: dict[str, Any], name: str) -> str:
    if row["variant"] is not None and name != VARIANT_COLUMN[row["variant"]]:
        return ""
    entry = backend["contenders"].get(row["variant"] or name)
    if entry is None or not entry["available"]:
        return "n/a"
    contender = row["variant"] or name
    if any(
        e["workload"] == row["workload"] and e["contender"] == contender
        for e in backend.get("not_applicable", [])
    ):
        return "n/a"
    if any(e["workload"] == row["workload"] and e["contender"] == contender for e in backend["errors"]):
        return "error"
    return "—"


def _cells(backend: dict[str, Any], row: dict[str, Any]) -> tuple[list[str], list[str], list[bool | None]]:
    """(value cells, ratio cells, pass/miss of each) for one row, as plain text."""
    values = []
    absolute = [t for t in row["targets"] if t["against"] is None]
    for name in _COLUMNS:
        value = row["values"].get(name)
        text = _number(value, row["unit"]) if value is not None else _missing(backend, row, name)
        if name == "chronik" and absolute:
            text = f"{text} {_mark(absolute[0])}"
        values.append(text)
    ratios, marks = [], []
    for other in ("eventsourcing", "raw"):
        ratio = row["ratios"].get(other)
        text = "" if ratio is None else f"{ratio:.2f}x"
        met: bool | None = None
        for target in row["targets"]:
            if target["against"] == other:
                met = target["met"]
                text = f"{text or '—'} {_mark(target)}"
        ratios.append(text)
        marks.append(met)
    if absolute:
        marks.insert(0, absolute[0]["met"])
    return values, ratios, marks


def _mark(target: dict[str, Any]) -> str:
    """``✓ ≥1.5x`` / ``✗ ≥1.5x``, or the bare target when there is no figure to judge."""
    mark = {True: PASS + " ", False: MISS + " ", None: "target "}[target["met"]]
    return f"{mark}{target['text']}"


def _style(met: bool | None) -> str:
    return "" if met is None else ("green" if met else "red")


def print_tables(result: dict[str, Any], console: Console | None = None) -> None:
    console = console or Console()
    if not console.is_terminal and console.width < 170:
        console.width = 170  # a log or a pipe: keep each row on one line
    meta = result["meta"]
    for backend in result["backends"]:
        title = _TITLES[backend["backend"]]
        if backend["backend"] in ("postgres", "nats") and backend["extra"].get("server"):
            title += f" {backend['extra']['server']}"
        if backend["status"] != "ran":
            console.print(f"[bold]{escape(title)}[/bold]: skipped — {escape(str(backend['reason']))}")
            continue
        table = Table(title=title, title_justify="left", show_lines=False)
        table.add_column("figure")
        table.add_column("unit")
        for name in _COLUMNS:
            table.add_column(name, justify="right")
        table.add_column("chronik/eventsourcing", justify="right")
        table.add_column("chronik/raw", justify="right")
        last_workload = None
        for row in backend["rows"]:
            if last_workload is not None and row["workload"] != last_workload:
                table.add_section()
            last_workload = row["workload"]
            values, ratios, _ = _cells(backend, row)
            value_cells = [Text(v) for v in values]
            absolute = [t for t in row["targets"] if t["against"] is None]
            if absolute:
                value_cells[0].stylize(_style(absolute[0]["met"]))
            ratio_cells = []
            for other, text in zip(("eventsourcing", "raw"), ratios, strict=True):
                cell = Text(text)
                for target in row["targets"]:
                    if target["against"] == other:
                        cell.stylize(_style(target["met"]))
                ratio_cells.append(cell)
            table.add_row(Text(row["title"]), Text(row["unit"]), *value_cells, *ratio_cells)
        console.print(table)
        for note in _notes(backend):
            console.print(f"  {note}", highlight=False, markup=False)
        console.print()
    console.print(
        f"{meta['ratios']}. Medians of {meta['repeat']} repetitions ({meta['label']} sizes), "
        f"{meta['duration_s']:.0f}s in all."
    )
    for line in _summary(result):
        console.print(line, highlight=False, markup=False)
    if "validation" in result:
        console.print(validation.summary(result["validation"]), highlight=False, markup=False)


def _summary(result: dict[str, Any]) -> list[str]:
    lines = []
    missed, unmeasured = result["missed"], result.get("unmeasured", [])
    if missed:
        lines.append(f"Targets missed ({len(missed)}):")
        for m in missed:
            lines.append(f"- {m['backend']}: {m['title']} — {_actual(m)}, target {m['target']}")
    else:
        lines.append("Every target measured in this run is met.")
    if unmeasured:
        lines.append(f"Targets not measured ({len(unmeasured)}), for want of a figure:")
        for m in unmeasured:
            lines.append(f"- {m['backend']}: {m['title']}, target {m['target']}")
    return lines


def _actual(m: dict[str, Any]) -> str:
    if m["against"] is None:
        return f"{m['actual']:,.3g}"
    return f"{m['actual']:.2f}x {m['against']}"


def _notes(backend: dict[str, Any]) -> list[str]:
    notes = []
    for name, entry in backend["contenders"].items():
        if not entry["available"]:
            notes.append(f"{name}: not available — {entry['reason']}")
            continue
        info = entry["info"]
        settings = ", ".join(
            f"{k}={v}"
            for k, v in info.items()
            if k in ("synchronous", "journal_mode", "synchronous_commit", "persistence")
        )
        notes.append(
            f"{name}: {info.get('library', '')}; {info.get('api', '')}"
            + (f"; {settings}" if settings else "")
        )
    for entry in backend.get("not_applicable", []):
        notes.append(f"{entry['contender']} on workload {entry['workload']}: n/a, {entry['reason']}")
    if any(row["variant"] == FAST for row in backend["rows"]):
        notes.append(
            "the same, eventsourcing on its fastest settings: the eventsourcing contender with the "
            "orjson transcoder of its documentation"
            + (" and POSTGRES_ENABLE_DB_FUNCTIONS" if backend["backend"] == "postgres" else "")
            + "; its ratio is chronik's speed over it"
        )
    if any(row["variant"] == ON_CHRONIK for row in backend["rows"]):
        notes.append(
            "the same, eventsourcing on chronik's PostgreSQL store: the eventsourcing contender's "
            "application with PERSISTENCE_MODULE=chronik.compat.eventsourcing; its ratio is its speed "
            "over eventsourcing on its own module (above 1: faster on chronik)"
        )
    for error in backend["errors"]:
        where = f"workload {error['workload']} ({error['job']}, {error['contender']})"
        notes.append(f"error in {where}: {error['message']}")
    return notes


def machine_slug(machine: dict[str, Any]) -> str:
    """A short name for a machine, for file names: ``amd-epyc-7b13-2cpu``."""
    words = re.findall(r"[a-z0-9]+", str(machine.get("processor", "machine")).lower())
    kept = [w for w in words if w not in _NOISE][:3] or ["machine"]
    return "-".join([*kept, f"{machine.get('cpus', '?')}cpu"])


def run_summary(result: dict[str, Any], source: str | None = None) -> str:
    """One paragraph: when, where, with what, how, and (when given) the file it comes from."""
    meta = result["meta"]
    machine, versions = meta["machine"], meta["versions"]
    text = (
        f"Run {meta['date']} on {machine.get('processor', '?')}, {machine.get('cpus', '?')} CPUs, "
        f"{machine.get('memory_gib', '?')} GiB ({machine.get('platform', '')}); "
        + ", ".join(f"{k} {v}" for k, v in versions.items())
        + f". `{meta['command']}`: medians of {meta['repeat']} repetitions, {meta['label']} sizes, "
        f"{meta['duration_s']:.0f}s. Ratios are {meta['ratios']}."
    )
    if meta.get("note"):
        text += f" {meta['note']}"
    if source:
        text += f" Generated from [`{source}`]({source})."
    return text


def table_lines(backend: dict[str, Any], *, variants: bool = True, notes: bool = True) -> list[str]:
    """One backend's table in Markdown (with its title; labelled rows and notes if asked)."""
    title = _TITLES[backend["backend"]]
    if backend["backend"] in ("postgres", "nats") and backend["extra"].get("server"):
        title += f" {backend['extra']['server']}"
    lines = [f"#### {title}", ""]
    if backend["status"] != "ran":
        return [*lines, f"Skipped: {backend['reason']}"]
    lines.append("| figure | unit | chronik | eventsourcing | raw | chronik/eventsourcing | chronik/raw |")
    lines.append("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for row in backend["rows"]:
        if row["variant"] is not None and not variants:
            continue
        values, ratios, _ = _cells(backend, row)
        cells = [row["title"], row["unit"], *values, *ratios]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    if notes:
        lines.append("")
        lines += [f"- {note}" for note in _notes(backend)]
    return lines


def targets_lines(result: dict[str, Any]) -> list[str]:
    """The targets missed (and not measured) in a run, as a Markdown list under a sentence."""
    lines: list[str] = []
    for line in _summary(result):
        lines += [line] if line.startswith("- ") else (["", line, ""] if lines else [line, ""])
    return lines


def markdown(result: dict[str, Any]) -> str:
    """The tables as GitHub Markdown, with the run's date, machine and versions."""
    lines = [run_summary(result), ""]
    for backend in result["backends"]:
        lines += [
            line.replace("#### ", "### ", 1) if line.startswith("#### ") else line
            for line in table_lines(backend)
        ]
        lines.append("")
    for line in _summary(result):
        lines += [line] if line.startswith("- ") else ["", line, ""]
    if "validation" in result:
        lines += ["", validation.summary(result["validation"]), ""]
    return "\n".join(lines).replace("\n\n\n", "\n\n") + "\n"


def write_outputs(result: dict[str, Any], out: Path) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out / "bench.json", out / "bench.md"
    json_path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    md_path.write_text(markdown(result), encoding="utf-8")
    return json_path, md_path


if __name__ == "__main__":
    from benchmarks.published import main

    sys.exit(main())
