"""What checking events on write costs: ``python -m benchmarks.validation``.

Every event appended under a registered type name is decoded as a reader would
before it is written (issue 11), so that nothing unreadable is ever stored. This
times the codec's ``encode`` of the benchmark's ``Deposited`` event (a 100-character
memo) with that check and with it switched off, alternating the two round after
round in one process, and prints the medians and the check's share of the encode.
A write's whole cost (a SQLite commit is tens of microseconds, a PostgreSQL one
hundreds) is the backdrop: ``make bench`` prints this beside the workloads.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from benchmarks.contenders.chronik import Deposited, registry
from benchmarks.domain import MEMO
from chronik.codec import Codec

__all__ = ["main", "measure"]


class _Unchecked(Codec):
    """The codec as it was before writes were checked: the same encode, no check."""

    def _check(self, *args: object) -> None:
        return None


def _per_event_us(codec: Codec, events: list[Deposited]) -> float:
    encode = codec.encode
    started = time.perf_counter()
    for event in events:
        encode("account-1", event)
    return (time.perf_counter() - started) / len(events) * 1e6


def measure(events: int = 20_000, rounds: int = 15) -> dict[str, Any]:
    """Median microseconds per encoded event, checked and unchecked, interleaved."""
    batch = [Deposited(100 + i, MEMO) for i in range(events)]
    checked, unchecked = Codec(registry), _Unchecked(registry)
    with_check: list[float] = []
    without: list[float] = []
    for _ in range(rounds):
        with_check.append(_per_event_us(checked, batch))
        without.append(_per_event_us(unchecked, batch))
    on, off = statistics.median(with_check), statistics.median(without)
    return {
        "event": "Deposited (about 130 bytes of JSON)",
        "encode_checked_us": on,
        "encode_unchecked_us": off,
        "check_us": on - off,
        "rounds": rounds,
        "events_per_round": events,
    }


def summary(figures: dict[str, Any]) -> str:
    return (
        f"Checking events on write: encoding a {figures['event']} takes "
        f"{figures['encode_checked_us']:.2f} µs checked against {figures['encode_unchecked_us']:.2f} µs "
        f"unchecked: the check costs {figures['check_us']:.2f} µs per event "
        f"(medians of {figures['rounds']} interleaved rounds of {figures['events_per_round']:,} events)."
    )


def main() -> None:
    print(summary(measure()))


if __name__ == "__main__":
    main()
