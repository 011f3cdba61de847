"""A real ``chronik serve`` in a subprocess, on a SQLite file, for the HTTP and
browser tests."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx2

from ._cli import cli_env

SHOP = Path(__file__).resolve().parents[1] / "integration" / "web" / "_shop.py"


@dataclass
class Server:
    url: str
    db: Path
    process: subprocess.Popen[bytes]

    @property
    def store_url(self) -> str:
        return f"sqlite:///{self.db}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def serve(
    directory: Path,
    *,
    token: str | None = None,
    with_app: bool = True,
    app: str = "shop:app",
    relative: bool = False,
) -> Iterator[Server]:
    """``chronik serve`` on ``directory``/chronik.db (created first unless it is there),
    with the test shop application as ``--app shop:app`` (or ``app``); stopped on exit."""
    db = directory / "chronik.db"
    (directory / "shop.py").write_text(SHOP.read_text())
    if not db.exists():
        subprocess.run(
            [sys.executable, "-m", "chronik", "migrate", "--url", f"sqlite:///{db}"],
            cwd=directory,
            env=cli_env(),
            check=True,
            capture_output=True,
        )
    port = free_port()
    url = f"sqlite:///{db.name}" if relative else f"sqlite:///{db}"  # relative: to directory
    args = [sys.executable, "-m", "chronik", "serve", "--url", url, "--port", str(port)]
    if with_app:
        args += ["--app", app]
    env = cli_env(**({"CHRONIK_UI_TOKEN": token} if token else {}))
    process = subprocess.Popen(args, cwd=directory, env=env, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(base, process)
        yield Server(base, db, process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()


def _wait_until_up(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            err = process.stderr.read().decode() if process.stderr else ""
            raise RuntimeError(f"chronik serve exited with {process.returncode}: {err}")
        try:
            if httpx2.get(f"{url}/api/info", timeout=1).status_code == 200:
                return
        except httpx2.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"chronik serve did not answer at {url}")
