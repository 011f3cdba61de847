"""docs/cli.md is generated from the commands (tools/cli_docs.py) and its examples run.

A ```console block's ``$ chronik ...`` lines run in order, in one empty directory,
through a shell; each line shown after a command must appear in what it printed (a
line ending in ``...`` matches any line it begins). Fix a stale page with
``python tools/cli_docs.py``.
"""

from __future__ import annotations

import importlib.util
import re
import shlex
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from ._cli import cli_env

ROOT = Path(__file__).resolve().parents[2]
CONSOLE = re.compile(r"^```console\n(.*?)^```", re.DOTALL | re.MULTILINE)


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("cli_docs", ROOT / "tools/cli_docs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_reference_is_current() -> None:
    assert not _generator().stale(), "docs/cli.md is stale: run python tools/cli_docs.py"


def examples(document: Path) -> list[tuple[str, list[str]]]:
    """``(command, expected lines)`` of every ``$ chronik`` example in ``document``."""
    found: list[tuple[str, list[str]]] = []
    for block in CONSOLE.findall(document.read_text(encoding="utf-8")):
        shown: list[str] | None = None  # lines before a block's first command are not output
        for line in block.splitlines():
            if line.startswith("$ "):
                shown = []
                found.append((line[2:], shown))
            elif shown is not None:
                shown.append(line)
    return [(command, shown) for command, shown in found if "chronik " in command]


@pytest.mark.parametrize("document", ["docs/cli.md", "README.md", "docs/lifecycle.md"])
def test_console_examples_run(document: str, tmp_path: Path) -> None:
    found = examples(ROOT / document)
    assert found, f"{document} shows no chronik command"
    chronik = f"{shlex.quote(sys.executable)} -m chronik"
    for command, shown in found:
        run = re.sub(r"(^|\| )chronik ", lambda m: f"{m.group(1)}{chronik} ", command)
        done = subprocess.run(
            run, shell=True, cwd=tmp_path, capture_output=True, env=cli_env(), timeout=120, check=False
        )
        printed = (done.stdout + done.stderr).decode().splitlines()
        failed = any(line.startswith("Error:") for line in shown)
        assert (done.returncode != 0) == failed, f"{command}\n" + "\n".join(printed)
        for line in shown:
            if line.endswith("..."):
                assert any(p.startswith(line[:-3]) for p in printed), (
                    f"{command}: no line {line!r} in\n{printed}"
                )
            else:
                assert line in printed, f"{command}: no line {line!r} in\n" + "\n".join(printed)


def test_shell_completion_completes_commands_and_subcommands(tmp_path: Path) -> None:
    def complete(words: str) -> list[str]:
        env = cli_env(
            _CHRONIK_COMPLETE="bash_complete", COMP_WORDS=words, COMP_CWORD=str(len(words.split()) - 1)
        )
        done = subprocess.run(
            [sys.executable, "-m", "chronik"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return [line.split(",", 1)[1] for line in done.stdout.decode().splitlines()]

    assert complete("chronik pro") == ["projections"]
    assert complete("chronik projections re") == ["rebuild", "reset"]
    assert "--expected-version" in complete("chronik append --ex")
