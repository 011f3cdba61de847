"""Folding a stream a page at a time: what a load does, so a long stream is never held whole.

A load reads ``READ_PAGE`` events, folds them and drops them before it reads the next
page: loading a 100,000-event aggregate holds about 8,000 events at a time (about 6
MiB, against 64 MiB for all of them), for a round trip per page; a stream of up to
``READ_PAGE`` events is still one read. Written as a flow of read requests
(``chronik._command_io``), like the rest of command handling.
"""

from __future__ import annotations

import itertools
from datetime import datetime
from typing import Any, Final, TypeVar

from chronik._command_io import Flow, ReadStream
from chronik._model import Model, fold_recorded
from chronik.codec import Codec, EventRegistry
from chronik.events import RecordedEvent
from chronik.snapshots import state_subjects

__all__ = ["READ_PAGE", "fold_pages", "page_end"]

S = TypeVar("S")

READ_PAGE: Final = 8192
"""Events read per request when a stream is loaded."""


def page_end(start: int, to: int | None) -> int:
    """The last version of the page that starts at ``start`` (no further than ``to``)."""
    end = start + READ_PAGE - 1
    return end if to is None else min(to, end)


def fold_pages(
    model: Model[Any, S],
    registry: EventRegistry,
    codec: Codec | None,
    stream_id: str,
    state: S,
    start: int,
    to: int | None,
    as_of: datetime | None,
    page: list[RecordedEvent] | None = None,
    skip: int = 0,
    subjects: set[str] | None = None,
) -> Flow[tuple[S, RecordedEvent | None]]:
    """Fold the stream's events from version ``start`` (to ``to``, recorded by
    ``as_of``) a page at a time; ``page`` is the first page if it was read already, and
    its first ``skip`` events are not folded; ``subjects`` collects whose personal data
    the folded events hold. The state and the last event read (None if none)."""
    last: RecordedEvent | None = None
    while True:
        end = page_end(start, to)
        if page is None:
            page = yield ReadStream(stream_id, start, end)
        full = len(page) == end - start + 1
        if as_of is not None and page and page[-1].recorded_at > as_of:
            page = list(itertools.takewhile(lambda e: e.recorded_at <= as_of, page))
            full = False
        if page:
            last = page[-1]
            folded = page[skip:] if skip else page
            state = fold_recorded(model, state, folded, registry)
            if subjects is not None:
                subjects |= state_subjects(codec, folded)
        if not full or (to is not None and end >= to):
            return state, last
        start, page, skip = end + 1, None, 0
