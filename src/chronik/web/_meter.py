"""Events per second for the overview's chart, counted from the events' own
``recorded_at``.

The meter reads the log once from the start, then only what was appended since its
last read, and keeps a count per second for the last hour that has events, so each
poll of the chart reads just the new events.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

from chronik.events import Checkpoint
from chronik.web._support import Context

__all__ = ["rate"]

KEEP_SECONDS = 3600
WINDOW_SECONDS = 300


class Meter:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.after: Checkpoint | None = None
        self.counts: Counter[int] = Counter()

    def update(self, ctx: Context) -> None:
        for event in ctx.store.read_all(self.after):
            self.counts[int(event.recorded_at.timestamp())] += 1
            self.after = event.checkpoint
        if self.counts:
            newest = max(self.counts)
            for second in [s for s in self.counts if s < newest - KEEP_SECONDS]:
                del self.counts[second]


def rate(ctx: Context, window: int = WINDOW_SECONDS) -> dict[str, Any]:
    """Counts per second over the last ``window`` seconds (ending now, or at the last
    event when none came in that window): ``{"seconds": [...], "counts": [...]}``."""
    meter: Meter = ctx.extra.setdefault("meter", Meter())
    with meter.lock:
        meter.update(ctx)
        now = int(time.time())
        newest = max(meter.counts, default=now)
        end = now if newest > now - window else newest + 1
        seconds = list(range(end - window + 1, end + 1))
        counts = [meter.counts.get(s, 0) for s in seconds]
    return {"seconds": seconds, "counts": counts}
