"""The DCB benchmark's output: tables on the terminal, and the same as Markdown and JSON.

Rendered from the result dict alone (``dcb.json``), so a saved run renders again.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Final

from rich.console import Console
from rich.table import Table

from benchmarks.dcb.contenders import HANDLER

__all__ = ["lines", "markdown", "print_tables", "write_outputs"]

_TITLES: Final = {
    "memory": "in memory (chronik memory:// against eventsourcing.dcb.popo; threads of one process)",
    "sqlite": "SQLite (one file, WAL, synchronous=FULL; writers are processes)",
    "postgres": "PostgreSQL (writers are processes, one connection each)",
}
_HEAD: Final = (
    "figure",
    "chronik",
    "eventsourcing.dcb",
    "chronik/eventsourcing",
    "conflicts",
    "µs CPU client+server",
)


def _rate(value: dict[str, Any] | None) -> str:
    return "" if value is None or value["decisions_per_s"] is None else f"{value['decisions_per_s']:,.0f}"


def _x(ratio: float | None) -> str:
    return "" if ratio is None else f"{ratio:.2f}x"


def _cpu(value: dict[str, Any] | None) -> str:
    if value is None or value["client_cpu_us"] is None:
        return ""
    if value["server_cpu_us"] is None:
        return f"{value['client_cpu_us']:,.0f}"
    return f"{value['client_cpu_us']:,.0f}+{value['server_cpu_us']:,.0f}"


def _conflicts(values: dict[str, Any], names: tuple[str, ...]) -> str:
    parts = [f"{values[n]['conflicts']:,.0f}" if values.get(n) else "" for n in names]
    return " / ".join(parts)


def _absent(backend: dict[str, Any], name: str) -> str:
    entry = backend["contenders"][name]
    return "n/a" if not entry["available"] else "error"


def _rows(backend: dict[str, Any]) -> list[list[str]]:
    rows = []
    for row in backend["rows"]:
        values = row["values"]
        cells = [
            row["title"],
            _rate(values["chronik"]) or _absent(backend, "chronik"),
            _rate(values["eventsourcing"]) or _absent(backend, "eventsourcing"),
            _x(row["ratio"]),
            _conflicts(values, ("chronik", "eventsourcing")),
            " / ".join(c for c in (_cpu(values["chronik"]), _cpu(values["eventsourcing"])) if c),
        ]
        rows.append(cells)
        handler = values[HANDLER]
        rows.append(
            [
                "   the same, chronik through DCBCommandHandler",
                _rate(handler) or _absent(backend, HANDLER),
                "",
                _x(row["handler_ratio"]),
                _conflicts(values, (HANDLER,)),
                _cpu(handler),
            ]
        )
    return rows


def _notes(backend: dict[str, Any]) -> list[str]:
    notes = []
    for name, entry in backend["contenders"].items():
        if not entry["available"]:
            notes.append(f"{name}: not measured — {entry['reason']}")
            continue
        info = entry["info"]
        settings = ", ".join(
            f"{k}={v}" for k, v in info.items() if k in ("synchronous", "synchronous_commit")
        )
        notes.append(
            f"{name}: {info.get('library', '')}; {info.get('api', '')}"
            + (f"; {settings}" if settings else "")
        )
    for error in backend["errors"]:
        notes.append(f"error in {error['figure']} ({error['contender']}): {error['message']}")
    return notes


_SCALING_HEAD: Final = (
    "writers",
    "chronik, processes",
    "chronik, threads",
    "eventsourcing.dcb, processes",
    "chronik/eventsourcing",
    "chronik µs CPU client+server",
    "ceiling",
)


def _scaling_rows(scaling: dict[str, Any]) -> list[list[str]]:
    rows = []
    for point in scaling["series"]:
        values = point["values"]
        chronik = values["chronik/processes"]
        ceiling = ""
        if chronik and chronik["client_cpu_us"] and chronik["server_cpu_us"]:
            ceiling = f"{scaling['cpus'] * 1e6 / (chronik['client_cpu_us'] + chronik['server_cpu_us']):,.0f}"
        rows.append(
            [
                str(point["writers"]),
                _rate(chronik),
                _rate(values["chronik/threads"]),
                _rate(values["eventsourcing/processes"]),
                _x(point["ratio"]),
                _cpu(chronik),
                ceiling,
            ]
        )
    return rows


def lines(result: dict[str, Any]) -> list[str]:
    """The closing notes: how to read the figures."""
    meta = result["meta"]
    return [
        f"Decisions per second (commands settled: subscribed or refused), medians of {meta['repeat']} "
        f"repetitions ({meta['label']} sizes), {meta['duration_s']:.0f}s in all. Ratios: chronik's figure "
        "over eventsourcing's in the same run (above 1: chronik is faster). Conflicts: decisions that lost "
        "a race and decided again. CPU: per decision, in the writers and in their PostgreSQL backends; "
        "ceiling: the decisions per second that CPU allows on this machine's "
        f"{meta['machine']['cpus']} CPUs.",
    ]


def print_tables(result: dict[str, Any], console: Console | None = None) -> None:
    console = console or Console()
    if not console.is_terminal and console.width < 170:
        console.width = 170
    for backend in result["backends"]:
        title = "DCB, " + _TITLES[backend["backend"]] + (f" {backend['server']}" if backend["server"] else "")
        if backend["status"] != "ran":
            console.print(f"[bold]{title}[/bold]: skipped — {backend['reason']}", markup=False)
            continue
        table = Table(title=title, title_justify="left")
        for i, name in enumerate(_HEAD):
            table.add_column(name, justify="left" if i == 0 else "right")
        for cells in _rows(backend):
            table.add_row(*cells)
        console.print(table)
        for note in _notes(backend):
            console.print(f"  {note}", highlight=False, markup=False)
        console.print()
    scaling = result.get("scaling")
    if scaling:
        table = Table(
            title="DCB on PostgreSQL: disjoint tags, decisions per second by writers", title_justify="left"
        )
        for name in _SCALING_HEAD:
            table.add_column(name, justify="right")
        for cells in _scaling_rows(scaling):
            table.add_row(*cells)
        console.print(table)
        for error in scaling["errors"]:
            console.print(
                f"  error ({error['writers']} writers, {error['contender']}): {error['message']}",
                markup=False,
            )
        console.print()
    for line in lines(result):
        console.print(line, highlight=False, markup=False)


def _table(head: tuple[str, ...], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(head) + " |", "| --- |" + " ---: |" * (len(head) - 1)]
    out += ["| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |" for cells in rows]
    return out


def markdown(result: dict[str, Any]) -> str:
    meta = result["meta"]
    out = [
        f"DCB run {meta['date']}, {meta['machine']['cpus']} CPUs ({meta['machine']['platform']}); "
        + ", ".join(f"{k} {v}" for k, v in meta["versions"].items())
        + ".",
        "",
    ]
    for backend in result["backends"]:
        out += [
            f"### DCB, {_TITLES[backend['backend']]}"
            + (f" {backend['server']}" if backend["server"] else ""),
            "",
        ]
        if backend["status"] != "ran":
            out += [f"Skipped: {backend['reason']}", ""]
            continue
        out += [*_table(_HEAD, _rows(backend)), ""]
        out += [f"- {note}" for note in _notes(backend)]
        out.append("")
    if result.get("scaling"):
        out += ["### DCB on PostgreSQL: disjoint tags, decisions per second by writers", ""]
        out += [*_table(_SCALING_HEAD, _scaling_rows(result["scaling"])), ""]
    out += [*lines(result), ""]
    return "\n".join(out)


def write_outputs(result: dict[str, Any], out: Path) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out / "dcb.json", out / "dcb.md"
    json_path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    md_path.write_text(markdown(result), encoding="utf-8")
    return json_path, md_path
