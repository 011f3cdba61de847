"""The published run: the tables of the README and docs/benchmarks.md, generated from it.

Every published run is committed as JSON under ``benchmarks/results/``, one file per
run named by its date and machine (``python -m benchmarks --publish`` writes it).
The newest one is the published run: ``python -m benchmarks.report --readme``
rewrites the generated parts of ``README.md`` and ``docs/benchmarks.md`` from it
(between ``<!-- bench:NAME -->`` and ``<!-- /bench:NAME -->`` markers) and draws the
chart of each backend into ``docs/`` when matplotlib is installed
(``pip install 'chronik[bench-charts]'``); ``--check`` rewrites nothing and fails if
the documents are not what the run gives, as a test does.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from benchmarks.report import machine_slug, run_summary, table_lines, targets_lines

__all__ = ["RESULTS", "generated", "latest_run", "main", "result_path", "stale"]

ROOT: Final = Path(__file__).resolve().parent.parent
RESULTS: Final = ROOT / "benchmarks" / "results"
README: Final = ROOT / "README.md"
DOCS: Final = ROOT / "docs" / "benchmarks.md"
_BLOCK: Final = re.compile(
    r"(<!-- bench:(?P<name>[a-z-]+) -->\n)(?P<body>.*?)(<!-- /bench:(?P=name) -->)", re.S
)
CHART: Final = "docs/benchmarks-{backend}.png"


def result_path(result: dict[str, Any], results: Path = RESULTS) -> Path:
    """Where a run is committed: ``<date>-<hhmm>-<machine>.json`` (UTC), so names sort by time."""
    date = result["meta"]["date"]
    return results / f"{date[:10]}-{date[11:13]}{date[14:16]}-{machine_slug(result['meta']['machine'])}.json"


def latest_run(results: Path = RESULTS) -> Path:
    """The published run: the newest file under ``results``."""
    runs = sorted(results.glob("*.json"))
    if not runs:
        raise FileNotFoundError(f"no run under {results}: run python -m benchmarks --publish first")
    return runs[-1]


def _source(path: Path) -> str:
    try:
        return path.relative_to(ROOT).as_posix()
    except ValueError:
        return path.as_posix()


def _readme_blocks(result: dict[str, Any], path: Path) -> dict[str, str]:
    blocks = {
        "run": run_summary(result, _source(path)) + "\n",
        "targets": "\n".join(targets_lines(result)) + "\n",
    }
    for backend in result["backends"]:
        lines = table_lines(backend, variants=False, notes=False)
        blocks[backend["backend"]] = "\n".join(lines) + "\n"
    return blocks


def _docs_blocks(result: dict[str, Any], path: Path) -> dict[str, str]:
    blocks = {
        "run": run_summary(result, _source(path)) + "\n",
        "targets": "\n".join(targets_lines(result)) + "\n",
    }
    for backend in result["backends"]:
        lines = table_lines(backend, variants=True, notes=True)
        name = backend["backend"]
        if backend["status"] == "ran":
            lines += [
                "",
                f"![chronik, eventsourcing and raw on {name}, by workload]({CHART.format(backend=name)[5:]})",
            ]
        blocks[name] = "\n".join(lines) + "\n"
    return blocks


def _fill(text: str, blocks: dict[str, str], where: Path) -> str:
    seen: set[str] = set()

    def replace(match: re.Match[str]) -> str:
        name = match.group("name")
        seen.add(name)
        body = blocks.get(name, "")
        return f"{match.group(1)}{body}{match.group(4)}"

    filled = _BLOCK.sub(replace, text)
    missing = sorted(set(blocks) - seen)
    if "run" in missing:
        raise ValueError(f"{where} has no <!-- bench:run --> block to fill")
    return filled


def generated(path: Path | None = None) -> dict[Path, str]:
    """The README and docs/benchmarks.md as the run at ``path`` (default: the newest) gives them."""
    path = path or latest_run()
    result = json.loads(path.read_text(encoding="utf-8"))
    return {
        README: _fill(README.read_text(encoding="utf-8"), _readme_blocks(result, path), README),
        DOCS: _fill(DOCS.read_text(encoding="utf-8"), _docs_blocks(result, path), DOCS),
    }


def stale(path: Path | None = None) -> list[Path]:
    """The documents whose generated parts are not what the run gives."""
    return [doc for doc, text in generated(path).items() if doc.read_text(encoding="utf-8") != text]


def charts(result: dict[str, Any], out: Path = ROOT, say: Callable[[str], None] = print) -> list[Path]:
    """A bar chart per backend (chronik, eventsourcing, raw per figure, as speed over raw)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        say("matplotlib is not installed (pip install 'chronik[bench-charts]'): no charts drawn")
        return []
    written = []
    for backend in result["backends"]:
        if backend["status"] != "ran":
            continue
        rows = [
            r
            for r in backend["rows"]
            if r["variant"] is None and r["ratios"].get("raw") is not None and r["values"].get("raw")
        ]
        if not rows:
            continue
        labels = [r["title"] if len(r["title"]) <= 60 else r["title"][:57] + "..." for r in rows]
        series: dict[str, list[float]] = {"chronik": [], "eventsourcing": [], "raw": []}
        for r in rows:
            raw = r["values"]["raw"]
            for name in series:
                value = r["values"].get(name)
                if value is None:
                    series[name].append(0.0)
                elif r["better"] == "higher":
                    series[name].append(value / raw)
                else:
                    series[name].append(raw / value)
        fig, ax = plt.subplots(figsize=(9, 0.32 * len(rows) + 1.5))
        height = 0.27
        for i, (name, color) in enumerate(
            (("chronik", "#2b7bba"), ("eventsourcing", "#e08a2c"), ("raw", "#7f7f7f"))
        ):
            ys = [n + (i - 1) * height for n in range(len(rows))]
            ax.barh(ys, series[name], height=height, label=name, color=color)
        ax.set_yticks(range(len(rows)), labels, fontsize=7)
        ax.invert_yaxis()
        ax.axvline(1.0, color="black", linewidth=0.6)
        ax.set_xlabel("speed relative to the raw driver (raw = 1; higher is faster)")
        ax.set_title(f"{backend['backend']}: {result['meta']['date'][:10]}", fontsize=9)
        ax.legend(fontsize=7, loc="lower right")
        fig.tight_layout()
        path = out / CHART.format(backend=backend["backend"])
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.report", description="The README's benchmark tables from a published run."
    )
    p.add_argument(
        "--readme", action="store_true", help="rewrite the tables of README.md and docs/benchmarks.md"
    )
    p.add_argument(
        "--check", action="store_true", help="with --readme: fail if they are stale, rewrite nothing"
    )
    p.add_argument("--run", type=Path, help="the run's JSON (default: the newest under benchmarks/results/)")
    p.add_argument("--no-charts", action="store_true", help="do not draw the charts")
    args = p.parse_args(argv)
    if not args.readme:
        p.error("nothing to do: give --readme (with --check to only check)")
    path = args.run or latest_run()
    if args.check:
        behind = stale(path)
        for doc in behind:
            print(f"{_source(doc)} is stale: run python -m benchmarks.report --readme ({_source(path)})")
        return 1 if behind else 0
    for doc, text in generated(path).items():
        if doc.read_text(encoding="utf-8") != text:
            doc.write_text(text, encoding="utf-8")
            print(f"rewrote {_source(doc)} from {_source(path)}")
    if not args.no_charts:
        for chart in charts(json.loads(path.read_text(encoding="utf-8"))):
            print(f"drew {_source(chart)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
