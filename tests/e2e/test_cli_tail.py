"""``chronik tail`` in a real terminal (tmux): it follows appends made by another process
and exits cleanly, status 0, on Ctrl-C."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ._cli import Chronik, cli_env

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


class Terminal:
    """A tmux server of the test's own (its own socket), one window, 200 columns."""

    def __init__(self, cwd: Path) -> None:
        self.socket = f"chronik-test-{uuid.uuid4().hex[:8]}"
        self.cwd = cwd

    def tmux(self, *args: str) -> str:
        done = subprocess.run(
            ["tmux", "-L", self.socket, *args], capture_output=True, check=False, timeout=30
        )
        if done.returncode != 0:
            pytest.fail(f"tmux {' '.join(args[:1])} failed: {done.stderr.decode().strip()}")
        return done.stdout.decode()

    def start(self, command: str) -> None:
        env = " ".join(f"{k}={shlex.quote(v)}" for k, v in cli_env().items() if k in ("PYTHONPATH", "PATH"))
        self.tmux("new-session", "-d", "-x", "200", "-y", "50", "-c", str(self.cwd), f"env {env} {command}")

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-J", "-S", "-200")

    def wait_for(self, check: Callable[[str], bool], what: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while True:
            text = self.screen()
            if check(text):
                return text
            if time.monotonic() > deadline:
                pytest.fail(f"the terminal never showed {what}; it shows:\n{text}")
            time.sleep(0.1)

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True, check=False)


@pytest.fixture
def terminal(tmp_path: Path) -> Iterator[Terminal]:
    term = Terminal(tmp_path)
    yield term
    term.close()


def test_tail_follows_appends_from_another_process_and_exits_on_ctrl_c(
    cli: Chronik, terminal: Terminal
) -> None:
    assert cli("append", "order-1", "OrderPlaced", '{"total": 1}').code == 0  # before: not shown
    # Ctrl-C goes to the whole foreground group: the shell traps it, to report the exit status.
    script = terminal.cwd / "tail.sh"
    script.write_text(
        f"trap 'true' INT\n{shlex.quote(sys.executable)} -m chronik tail\necho chronik-exited=$?\nsleep 60\n"
    )
    terminal.start(f"sh {shlex.quote(str(script))}")
    terminal.wait_for(lambda s: "following" in s, "tail starting")

    assert cli("append", "order-2", "OrderPlaced", '{"total": 22}').code == 0
    terminal.wait_for(lambda s: "order-2 v1" in s and '"total": 22' in s, "the first append")
    assert cli("append", "order-2", "OrderShipped", '{"carrier": "post"}').code == 0
    screen = terminal.wait_for(lambda s: "OrderShipped" in s, "the second append")
    assert "order-1" not in screen, "tail starts at the head: events before it are not shown"

    terminal.tmux("send-keys", "C-c")
    screen = terminal.wait_for(lambda s: "chronik-exited=" in s, "tail exiting")
    assert "chronik-exited=0" in screen
    assert "Traceback" not in screen and "Aborted" not in screen


def test_rebuild_shows_a_progress_bar_with_events_per_second_on_a_terminal(
    cli: Chronik, terminal: Terminal
) -> None:
    (terminal.cwd / "shop.py").write_text(
        "from chronik.projections import Projection\n"
        "projections = [Projection('counter', {'T': lambda event, tx: None})]\n"
    )
    lines = "".join(f'{{"stream_id": "s-{n}", "type": "T", "data": {{}}}}\n' for n in range(300))
    assert cli("append", stdin=lines).code == 0
    script = terminal.cwd / "rebuild.sh"
    script.write_text(
        f"{shlex.quote(sys.executable)} -m chronik projections rebuild counter --app shop\n"
        "echo chronik-exited=$?\nsleep 60\n"
    )
    terminal.start(f"sh {shlex.quote(str(script))}")
    screen = terminal.wait_for(lambda s: "chronik-exited=" in s, "the rebuild ending")
    assert "chronik-exited=0" in screen
    bar = next(line for line in screen.splitlines() if line.startswith("rebuilding counter"))
    assert "300/300" in bar and "events/s" in bar
    assert "counter: rebuilt from 300 events" in screen


def test_export_import_and_copy_show_how_far_they_are_on_a_terminal(cli: Chronik, terminal: Terminal) -> None:
    lines = "".join(f'{{"stream_id": "s-{n % 7}", "type": "T", "data": {{"n": {n}}}}}\n' for n in range(2500))
    assert cli("append", stdin=lines).code == 0
    python = shlex.quote(sys.executable)
    script = terminal.cwd / "move.sh"
    script.write_text(
        f"{python} -m chronik export events.jsonl\n"
        f"{python} -m chronik import events.jsonl --url sqlite:///imported.db\n"
        f"{python} -m chronik copy sqlite:///chronik.db sqlite:///copied.db\n"
        "echo chronik-exited=$?\nsleep 60\n"
    )
    terminal.start(f"sh {shlex.quote(str(script))}")
    screen = terminal.wait_for(lambda s: "chronik-exited=" in s, "the copy ending")
    assert "chronik-exited=0" in screen
    # The total is known (the events counted first; the file's bytes): a percentage and
    # the time left, with the events so far and their rate.
    for what in ("exporting", "importing", "copying"):
        bar = next(line for line in screen.splitlines() if line.startswith(what))
        assert "100%" in bar and "2,500 events" in bar and "/s" in bar and "left" in bar, bar
    assert "imported 2,500 events" in screen and "copied 2,500 events" in screen
