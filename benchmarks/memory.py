"""Peak resident memory of this process, as added by one piece of work.

Linux: the kernel's high-water mark is reset (``/proc/self/clear_refs``, value 5)
just before the work, so the peak afterwards minus the resident size at the reset
is what the work added. Elsewhere the fallback is ``ru_maxrss`` before and after,
which can only see a peak above every earlier one.
"""

from __future__ import annotations

import gc
import re
import resource
import sys
from typing import Final

__all__ = ["PeakRSS"]

_STATUS: Final = "/proc/self/status"


def _status_kib(field: str) -> int | None:
    try:
        with open(_STATUS, encoding="ascii") as status:
            match = re.search(rf"^{field}:\s+(\d+) kB", status.read(), re.MULTILINE)
    except OSError:
        return None
    return int(match.group(1)) if match else None


def _maxrss_kib() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak // 1024 if sys.platform == "darwin" else peak


class PeakRSS:
    """``start()`` before the work, ``added_mib()`` after it."""

    def __init__(self) -> None:
        self.method = ""
        self.base_kib = 0

    def start(self) -> None:
        gc.collect()
        try:
            with open("/proc/self/clear_refs", "w", encoding="ascii") as refs:
                refs.write("5")
        except OSError:
            self.method = "ru_maxrss"
            self.base_kib = _maxrss_kib()
            return
        rss = _status_kib("VmRSS")
        if rss is None:
            self.method = "ru_maxrss"
            self.base_kib = _maxrss_kib()
            return
        self.method = "VmHWM"
        self.base_kib = rss

    def added_mib(self) -> float:
        peak = (_status_kib("VmHWM") or 0) if self.method == "VmHWM" else _maxrss_kib()
        return max(0, peak - self.base_kib) / 1024
