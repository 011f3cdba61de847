"""docs/eventsourcing.md: its application runs on chronik, then its console examples
(``chronik streams``, ``read``, ``log``) show what it stored.

The page's python sample runs as tests/test_docs.py runs it (in a module of its own),
here in a temporary directory; then each ``$ chronik ...`` line runs there, and every
line shown after it must be in what it printed (a line ending in ``...`` matches any
line it begins; one starting with ``...`` any line that holds the rest).
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import types
from pathlib import Path

import pytest

from tests.e2e._cli import cli_env

PAGE = Path(__file__).resolve().parents[2] / "docs" / "eventsourcing.md"
PYTHON = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)
CONSOLE = re.compile(r"^```console\n(.*?)^```", re.DOTALL | re.MULTILINE)


def _matches(shown: str, printed: list[str]) -> bool:
    if shown.startswith("...") and shown.endswith("..."):
        return any(shown[3:-3] in line for line in printed)
    if shown.endswith("..."):
        return any(line.startswith(shown[:-3]) for line in printed)
    return shown in printed


def test_the_application_runs_on_chronik_and_the_cli_reads_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = PAGE.read_text(encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    # Not test_docs' module name: the library keeps one class per topic for the process.
    module = types.ModuleType("docs_eventsourcing_cli")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    for block in PYTHON.findall(text):
        exec(compile(block, str(PAGE), "exec"), module.__dict__)

    commands: list[tuple[str, list[str]]] = []
    for block in CONSOLE.findall(text):
        for line in block.splitlines():
            if line.startswith("$ "):
                commands.append((line[2:], []))
            elif commands:
                commands[-1][1].append(line)
    assert [command.split()[1] for command, _ in commands] == ["streams", "read", "log"]
    chronik = f"{shlex.quote(sys.executable)} -m chronik"
    for command, shown in commands:
        done = subprocess.run(
            command.replace("chronik ", f"{chronik} ", 1),
            shell=True,
            cwd=tmp_path,
            capture_output=True,
            env=cli_env(),
            timeout=120,
            check=False,
        )
        printed = (done.stdout + done.stderr).decode().splitlines()
        assert done.returncode == 0, f"{command}\n" + "\n".join(printed)
        for line in shown:
            assert _matches(line, printed), f"{command}: no line {line!r} in\n" + "\n".join(printed)
