"""What the raw contenders share: the account's events as msgspec Structs, and their codec.

The floor encodes and decodes with msgspec, the fastest JSON codec the benchmark's
environment has (about 0.1 µs an event either way, against 1.1 to 1.5 µs with the
standard library's ``json``), and decodes into typed Structs, as chronik does: so
chronik over raw is what the library costs, not what a slower codec costs raw.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import msgspec

from benchmarks.domain import MEMO, OWNER

__all__ = [
    "DECODERS",
    "OPENED_JSON",
    "Deposited",
    "Opened",
    "amount_of",
    "decode",
    "deposited_json",
    "encode",
    "snapshot_json",
    "snapshot_version_balance",
]


class Opened(msgspec.Struct, frozen=True):
    owner: str


class Deposited(msgspec.Struct, frozen=True):
    amount: int
    memo: str


class Snapshot(msgspec.Struct, frozen=True):
    owner: str
    balance: int


encode: Final = msgspec.json.Encoder().encode
_deposited: Final = msgspec.json.Decoder(Deposited).decode
DECODERS: Final[dict[str, Callable[[Any], object]]] = {
    "Opened": msgspec.json.Decoder(Opened).decode,
    "Deposited": _deposited,
}
_snapshot: Final = msgspec.json.Decoder(Snapshot).decode
OPENED_JSON: Final = encode(Opened(OWNER)).decode()


def deposited_json(amount: int) -> str:
    """A ``Deposited(amount, MEMO)`` as the JSON text stored for it."""
    return encode(Deposited(amount, MEMO)).decode()


def decode(type_: str, data: str | bytes) -> object:
    """The typed event stored under ``type_``."""
    return DECODERS[type_](data)


def amount_of(type_: str, data: str | bytes) -> int:
    """What the event adds to the balance (decoded: the fold needs it)."""
    event = DECODERS[type_](data)
    return event.amount if type(event) is Deposited else 0


def snapshot_json(balance: int) -> str:
    return encode(Snapshot(OWNER, balance)).decode()


def snapshot_version_balance(data: str | bytes) -> int:
    return _snapshot(data).balance
