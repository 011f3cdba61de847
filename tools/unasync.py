"""Generate chronik's sync modules from their asyncio sources (the sources are in ``FILES``).

    python tools/unasync.py          # rewrite the generated files
    python tools/unasync.py --check  # exit 1 if one is stale

Where a sync and an asyncio shell would repeat each other, the asyncio one is
written and the sync one generated from it: this script replaces ``async def``, ``async with``,
``async for`` and awaits by their sync forms and the psycopg async classes by their
sync twins (as psycopg does for its own code, and httpcore with ``unasync``), then
lets ruff sort the imports and format the result. Nothing else differs between the
two faces; if a change needs more than these replacements, put the differing part
in a helper module with both forms (as ``stores/postgres/_notify.py`` does) rather
than teaching this script. ``tests/unit/test_generated.py`` fails when a generated
file is stale.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "src/chronik"
_NOTE = (
    "GENERATED from ``{source}`` by ``tools/unasync.py``: do not edit; edit\n"
    "the async module and run the script."
)
# source -> (target, the generated module's docstring), paths relative to src/chronik
FILES: dict[str, tuple[str, str]] = {
    **{
        f"stores/postgres/_async/{name}.py": (
            f"stores/postgres/_sync/{name}.py",
            f"{summary}\n\n" + _NOTE.format(source=f"_async/{name}.py") + " The design is described there.",
        )
        for name, summary in [
            ("store", 'The sync PostgreSQL event store: ``chronik.connect("postgresql://...")``.'),
            ("connections", "What the sync PostgreSQL store shares with its transactions and readers."),
            ("writing", "Appending to the sync PostgreSQL store: fast path, careful path, transactions."),
            ("reader", "Reading the sync PostgreSQL store: its reads, and subscription hooks."),
            ("schema", "Opening the sync PostgreSQL store: checking the server and the schema, migrating."),
            ("projection_state", "Projection state and inline projections for the sync PostgreSQL store."),
            ("dcb", "Dynamic Consistency Boundaries on the sync PostgreSQL store: locks, reads, checks."),
            ("lifecycle", "Deleting, retaining and repairing on the sync PostgreSQL store."),
            ("subject_keys", "The sync PostgreSQL store's subjects' keys: the ``subject_keys`` table."),
        ]
    },
    "projections/_async_targets.py": (
        "projections/_targets.py",
        "Where a projection's read model and checkpoint live, and how they commit (sync).\n\n"
        + _NOTE.format(source="_async_targets.py")
        + " The design is described there.",
    ),
    "projections/_async_lag.py": (
        "projections/_lag.py",
        "How far a projection is behind, and which version serves queries (sync).\n\n"
        + _NOTE.format(source="_async_lag.py"),
    ),
    "projections/_async_runner.py": (
        "projections/_runner.py",
        "The projection runner: catch up from the checkpoint, then follow live (sync).\n\n"
        + _NOTE.format(source="_async_runner.py")
        + " The design is described there;\nwhat differs between a thread and a task is in"
        + " ``_concurrency.py``.",
    ),
    "projections/_async_heartbeat.py": (
        "projections/_heartbeat.py",
        "Heartbeats: what a running runner is doing, written where other processes read it (sync).\n\n"
        + _NOTE.format(source="_async_heartbeat.py")
        + " The design is described there.",
    ),
    "projections/_async_inline.py": (
        "projections/_inline.py",
        "Inline projections: run inside each append's own transaction, never behind (sync).\n\n"
        + _NOTE.format(source="_async_inline.py")
        + " The design, and the guarantee\ninline projections get, are described there.",
    ),
    "relay/_async_target.py": (
        "relay/_target.py",
        "The relay's target: a unit publishes its batch, then saves the checkpoint (sync).\n\n"
        + _NOTE.format(source="_async_target.py")
        + " The design is described there.",
    ),
}

REPLACEMENTS: list[tuple[str, str]] = [
    # chronik.store's capability twins, and the projection layer's own (runner, targets,
    # inline projections and the thread/task helpers of projections/_concurrency.py)
    (
        r"\bAsync(EventStore|CheckpointStore|ProjectionStateStore|StoreTransaction|Transactional"
        r"|Subscribable|AppendHooks|SubjectKeyStore|RunnerHeartbeats)\b",
        r"\1",
    ),
    (
        r"\bAsync(ProjectionRunner|ProjectionTarget|TransactionalTarget|CheckpointedTarget|CheckpointedUnit|Unit"
        r"|InlineProjection|Background|Progress|StopSignal|Heartbeat)\b",
        r"\1",
    ),
    (r"\b(projection_lag|active_version|blue_green|add_inline_projection|settle)_async\b", r"\1"),
    (r"\brequire_async_store\b", "require_sync_store"),
    (r"\bAsync(Publisher|RelayTarget)\b", r"\1"),
    (r"\b(write_keys|unlock_events|subject_keys_of|forget_subject)_async\b", r"\1"),
    (r"\bprojections\._async_(runner|targets|lag|inline|heartbeat)\b", r"projections._\1"),
    (r"\bAsyncPostgresEventStore\b", "PostgresEventStore"),
    (r"\bAsyncPostgresTransaction\b", "PostgresTransaction"),
    (r"\bAsyncPostgresLogReader\b", "PostgresLogReader"),
    (r"\bAsyncPostgresSubjectKeys\b", "PostgresSubjectKeys"),
    (r"\bAsyncSubscription\b", "Subscription"),
    (r"\bAsyncSubscribes\b", "Subscribes"),
    (r"^(    is_async: Final = )True$", r"\1False"),
    (r"\bAsyncLogReader\b", "LogReader"),
    (r"\bAsyncWaker\b", "Waker"),
    (r"\basync_wait_notification\b", "wait_notification"),
    (r"\._async\b", "._sync"),
    (r"\bAsyncAppendHook\b", "AppendHook"),
    (r"\bAsyncHookTransaction\b", "HookTransaction"),
    (r"\bAbstractAsyncContextManager\b", "AbstractContextManager"),
    (r"\bAsyncConnectionPool\b", "ConnectionPool"),
    (r"\bAsyncConnection\b", "Connection"),
    (r"\bAsyncCursor\b", "Cursor"),
    (r"\bAsyncIterator\b", "Iterator"),
    (r"\bAsyncNotifier\b", "Notifier"),
    (r"\basynccontextmanager\b", "contextmanager"),
    (r"\bAwaitable\[(\w+)\]", r"\1"),
    (r"\basync def\b", "def"),
    (r"\basync with\b", "with"),
    (r"\basync for\b", "for"),
    (r"\bawait ", ""),
    (r"\b__aenter__\b", "__enter__"),
    (r"\b__aexit__\b", "__exit__"),
    (r"\basyncio\.sleep\b", "time.sleep"),
    (r"\basyncio\.Lock\b", "threading.Lock"),
    (r"^import asyncio$", "import threading"),
    (r"^( *)for (\w+) in (\w+):\n *yield \2$", r"\1yield from \3"),
    (r"chronik\.connect_async\(", "chronik.connect("),
    (r"The asyncio PostgreSQL", "The PostgreSQL"),
]


def _ruff() -> str:
    found = shutil.which("ruff", path=os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]))
    if found is None:
        raise SystemExit("ruff is needed to format the generated file (pip install ruff)")
    return found


def generate(source: str) -> str:
    """The text the sync twin of ``source`` (a file name in the package) must have."""
    target, docstring = FILES[source]
    text = (PACKAGE / source).read_text(encoding="utf-8")
    _, _, rest = text.split('"""', 2)
    text = f'"""{docstring}\n"""' + rest
    for pattern, replacement in REPLACEMENTS:
        text = re.sub(pattern, replacement, text, flags=re.MULTILINE)
    ruff = _ruff()
    stdin_name = str(PACKAGE / target)
    fixed = subprocess.run(
        [ruff, "check", "--fix", "--select", "I,F401", "--quiet", "--stdin-filename", stdin_name, "-"],
        input=text,
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    if fixed.returncode not in (0, 1):
        raise SystemExit(f"ruff check failed: {fixed.stderr}")
    formatted = subprocess.run(
        [ruff, "format", "--quiet", "--stdin-filename", stdin_name, "-"],
        input=fixed.stdout,
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    )
    return formatted.stdout


def stale() -> list[str]:
    """The generated files that differ from what their sources generate."""
    found = []
    for source, (target, _) in FILES.items():
        path = PACKAGE / target
        if not path.exists() or path.read_text(encoding="utf-8") != generate(source):
            found.append(str(path.relative_to(ROOT)))
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="only check that the generated files are current"
    )
    args = parser.parse_args(argv)
    if args.check:
        for name in stale():
            print(f"{name} is stale: run python tools/unasync.py")
            return 1
        return 0
    for source, (target, _) in FILES.items():
        path = PACKAGE / target
        expected = generate(source)
        if not path.exists() or path.read_text(encoding="utf-8") != expected:
            path.write_text(expected, encoding="utf-8")
            print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
