"""Functions run in other processes by the conformance and torture tests.

They live in an importable module because ``spawn`` pickles them by name.
"""

from __future__ import annotations

import random

import chronik
from chronik import NewEvent, WrongExpectedVersionError

__all__ = ["append_worker"]


def append_worker(url: str, category: str, index: int, batches: int) -> list[str]:
    """Append ``batches`` batches of 1-3 events; return the ids of every committed event.

    About a third go to the shared ``<category>-hot`` stream with an exact expected
    version (retried on conflict), the rest to the worker's own stream.
    """
    rng = random.Random(index)
    committed: list[str] = []
    store = chronik.connect(url)
    try:
        for k in range(batches):
            batch = [
                NewEvent("Proc", {"worker": index, "k": k}, event_id=chronik.uuid7())
                for _ in range(rng.randint(1, 3))
            ]
            if rng.random() < 0.3:
                hot = f"{category}-hot"
                while True:
                    version = store.stream_info(hot).version
                    try:
                        store.append(hot, batch, version)
                        break
                    except WrongExpectedVersionError:
                        continue
            else:
                store.append(f"{category}-{index}", batch)
            committed.extend(str(e.event_id) for e in batch)
    finally:
        store.close()
    return committed
