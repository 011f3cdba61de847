"""Running the ``chronik`` command line as a user does: a subprocess, ``python -m chronik``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SRC = str(Path(__file__).resolve().parents[2] / "src")


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json_lines(self) -> list[Any]:
        return [json.loads(line) for line in self.out.splitlines() if line.strip()]


def cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "CHRONIK_URL"}
    env["PYTHONPATH"] = os.pathsep.join([SRC, *filter(None, [env.get("PYTHONPATH")])])
    env["COLUMNS"] = "200"
    env.update(extra)
    return env


def run_cli(*args: str, cwd: Path, stdin: str | bytes | None = None, **env: str) -> Result:
    """``python -m chronik ARGS`` in ``cwd``; its exit status, stdout and stderr."""
    data = stdin.encode() if isinstance(stdin, str) else stdin
    done = subprocess.run(
        [sys.executable, "-m", "chronik", *args],
        cwd=cwd,
        input=data,
        capture_output=True,
        env=cli_env(**env),
        timeout=300,
        check=False,
    )
    return Result(done.returncode, done.stdout.decode(), done.stderr.decode())


Chronik = Callable[..., Result]
