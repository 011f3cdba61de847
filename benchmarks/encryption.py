"""What encryption at rest and crypto-shredding cost on SQLite: events per second
appended (one event per append, and batches of 100) and read back (``read_all``,
each event decoded), with and without a cipher, with and without personal fields,
each as a ratio to the plain store measured in the same run. A figure to read, not a
test: ``python -m benchmarks.encryption [--events N] [--rounds R]``. Each figure is
the best of ``R`` rounds, the configurations taking turns within each round, so that
a machine shared with other work slows them alike.

Personal fields belong to 100 subjects, so after the first hundred appends their keys
exist (the first append of each subject makes its key, in a transaction of its own).
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import msgspec

import chronik
from chronik import PersonalData, StaticKeys

SUBJECTS = 100


class Registered(msgspec.Struct, frozen=True):
    customer: str
    name: str
    email: str
    plan: str = "basic"


class PersonalRegistered(msgspec.Struct, frozen=True):
    customer: str
    name: Annotated[str, PersonalData(subject="customer")]
    email: Annotated[str, PersonalData(subject="customer")]
    plan: str = "basic"


def _registry(personal: bool) -> chronik.EventRegistry:
    registry = chronik.EventRegistry()
    registry.register(PersonalRegistered if personal else Registered, "Registered")
    return registry


def _event(i: int, personal: bool) -> object:
    kind = PersonalRegistered if personal else Registered
    return kind(f"subject-{i % SUBJECTS}", f"Customer number {i}", f"customer{i}@example.org")


CONFIGS: dict[str, dict[str, Any]] = {
    "plain": {},
    "cipher": {"cipher": True},
    "cipher+compress": {"cipher": True, "compress": True},
    "shredded fields": {"personal": True},
    "shredded + cipher": {"personal": True, "cipher": True},
}


def _open(folder: Path, config: dict[str, Any]) -> chronik.Store:
    options: dict[str, Any] = {"synchronous": "NORMAL"}
    if config.get("cipher"):
        options["cipher"] = StaticKeys({"k1": StaticKeys.new_key()})
    if config.get("compress"):
        options["compress"] = True
    url = f"sqlite:///{folder / f'{uuid.uuid4().hex}.db'}"
    return chronik.connect(url, registry=_registry(bool(config.get("personal"))), **options)


def _rate(count: int, work: Callable[[], None]) -> float:
    start = time.perf_counter()
    work()
    return count / (time.perf_counter() - start)


def measure(folder: Path, config: dict[str, Any], events: int) -> dict[str, float]:
    personal = bool(config.get("personal"))
    figures: dict[str, float] = {}
    with _open(folder, config) as store:
        singles = max(events // 10, 100)

        def one_by_one() -> None:
            for i in range(singles):
                store.append(f"customer-{i}", [_event(i, personal)])

        figures["append 1/call"] = _rate(singles, one_by_one)

        def batched() -> None:
            for start in range(0, events, 100):
                store.append(f"batch-{start}", [_event(i, personal) for i in range(start, start + 100)])

        figures["append 100/call"] = _rate(events, batched)

        def read() -> None:
            for event in store.read_all():
                _ = event.data

        figures["read + decode"] = _rate(singles + events, read)
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000, help="events per batched run (default 20,000)")
    parser.add_argument(
        "--rounds", type=int, default=3, help="rounds, the best of which is shown (default 3)"
    )
    args = parser.parse_args(argv)
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="chronik-bench-") as tmp:
        for _ in range(args.rounds):
            for name, config in CONFIGS.items():
                figures = measure(Path(tmp), config, args.events)
                best = results.setdefault(name, figures)
                for metric, rate in figures.items():
                    best[metric] = max(best[metric], rate)
    plain = results["plain"]
    columns = list(plain)
    print(f"{'SQLite (synchronous=NORMAL)':28}" + "".join(f"{c:>26}" for c in columns))
    for name, figures in results.items():
        cells = "".join(f"{figures[c]:>14,.0f} ev/s {figures[c] / plain[c]:>5.2f}x" for c in columns)
        print(f"{name:28}{cells}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
