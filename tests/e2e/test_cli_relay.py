"""``chronik relay`` as a user runs it, without a broker to reach: it says it is retrying
and why, shows its state as JSON with --json, stops cleanly on SIGTERM, and refuses
a broker URL it does not know with one line."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from ._cli import cli_env, run_cli

UNREACHABLE = "redis://127.0.0.1:1/0"  # nothing listens on port 1


def _relay(tmp_path: Path, *args: str) -> subprocess.Popen[bytes]:
    assert (
        run_cli("append", "order-1", "OrderPlaced", "{}", "--url", "sqlite:///shop.db", cwd=tmp_path).code
        == 0
    )
    return subprocess.Popen(
        [
            *(sys.executable, "-m", "chronik", "relay", "--to", UNREACHABLE),
            *("--url", "sqlite:///shop.db", "--max-backoff", "0.2", *args),
        ],
        cwd=tmp_path,
        env=cli_env(PYTHONUNBUFFERED="1"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _lines_until(process: subprocess.Popen[bytes], text: str) -> list[str]:
    assert process.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 60
    while not any(text in line for line in lines):
        assert time.monotonic() < deadline, lines
        line = process.stdout.readline().decode()
        assert line, f"the relay ended: {lines}"
        lines.append(line.rstrip("\n"))
    return lines


def test_it_says_it_is_retrying_and_sigterm_stops_it(tmp_path: Path) -> None:
    process = _relay(tmp_path, "--category", "order")
    try:
        lines = _lines_until(process, "retrying since")
        assert lines[0].startswith(
            "relay redis.order: sqlite:///shop.db to redis://127.0.0.1:1/0, categories order"
        )
        retrying = next(line for line in lines if "retrying since" in line)
        assert "BrokerError" in retrying and "0 events relayed, checkpoint the start" in retrying
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err.decode()
    assert (
        out.decode().splitlines()[-1] == "relay redis.order: stopped; 0 events relayed, checkpoint the start"
    )
    assert "attempt 1 failed" in err.decode()  # the runner's log, on stderr


def test_json_lines_are_the_runner_status(tmp_path: Path) -> None:
    process = _relay(tmp_path, "--json", "--name", "out")
    try:
        lines = _lines_until(process, '"state":"retrying"')
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    status = json.loads(lines[-1])
    assert (status["name"], status["kind"], status["state"]) == ("relay.out", "relay", "retrying")
    assert status["lag"]["events"] == 1 and status["retrying"]["attempts"] >= 1


def test_an_unknown_broker_is_one_line(tmp_path: Path) -> None:
    assert (
        run_cli("append", "order-1", "OrderPlaced", "{}", "--url", "sqlite:///shop.db", cwd=tmp_path).code
        == 0
    )
    done = run_cli("relay", "--to", "mqtt://127.0.0.1:1883", "--url", "sqlite:///shop.db", cwd=tmp_path)
    assert done.code == 1
    assert done.err.strip().startswith("Error: no broker for 'mqtt://127.0.0.1:1883'")
