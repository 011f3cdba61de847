"""The account aggregate every contender implements, and the values its events carry.

``Opened(owner)`` starts an account; ``Deposited(amount, memo)`` carries an amount
and a memo of exactly 100 characters. Stored as JSON that comes to about 130 bytes
for chronik and raw, and about 200 for eventsourcing, which also stores each event's
timestamp (and, for the first event, the aggregate's class topic). The state folded
from the events is the owner, the balance and the version.
"""

from __future__ import annotations

from typing import Final

__all__ = ["CATEGORY", "MEMO", "OWNER", "amount_for"]

CATEGORY: Final = "account"
OWNER: Final = "Ada Lovelace"
MEMO: Final = ("Monthly salary transfer from Analytical Engines Ltd, ref 1843-AL-note-G, " + "x" * 100)[:100]
assert len(MEMO) == 100


def amount_for(i: int) -> int:
    """A varying, deterministic amount for the ``i``-th deposit."""
    return 100 + (i * 7919) % 10_000
