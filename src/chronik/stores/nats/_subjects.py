"""Stream ids as NATS subjects and key-value keys, and back (no I/O).

A chronik stream ``order-42`` of the store named ``orders`` is the subject
``chronik.orders.order.-42``: the category and the rest of the id are two tokens, so a
consumer reads one category with the filter ``chronik.orders.order.*``, on the server.

NATS gives ``.``, ``*``, ``>`` and white space meanings in subjects, and key-value keys
allow only ``[-/_=.A-Za-z0-9]``; a stream id may hold any printable character. So each
token keeps ``A-Z a-z 0-9 -`` and writes every other UTF-8 byte as ``_XX`` (upper-case
hex, ``_`` itself included); the empty string is ``=``. The result is valid in both
places, readable for ordinary ids, and decodes to exactly the id it came from.
"""

from __future__ import annotations

import re
from typing import Final

from chronik.events import category_of

__all__ = ["decode_token", "encode_token", "stream_of_subject", "subject_of_stream"]

EMPTY: Final = "="
_KEPT: Final = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-")
_ESCAPE: Final = re.compile(r"_([0-9A-F]{2})")
_TOKEN: Final = re.compile(r"(?:[A-Za-z0-9-]|_[0-9A-F]{2})+")


def encode_token(text: str) -> str:
    """``text`` as one subject token (and key-value key part) made of safe characters."""
    if not text:
        return EMPTY
    if text.isascii() and all(b in _KEPT for b in text.encode()):
        return text
    return "".join(chr(b) if b in _KEPT else f"_{b:02X}" for b in text.encode("utf-8"))


def decode_token(token: str) -> str:
    """The text :func:`encode_token` made ``token`` from (``ValueError`` if it made none)."""
    if token == EMPTY:
        return ""
    if not _TOKEN.fullmatch(token):
        raise ValueError(f"not an encoded token: {token!r}")
    if "_" not in token:
        return token
    raw = bytearray()
    index = 0
    for match in _ESCAPE.finditer(token):
        raw += token[index : match.start()].encode("ascii")
        raw.append(int(match.group(1), 16))
        index = match.end()
    raw += token[index:].encode("ascii")
    return raw.decode("utf-8")


def subject_of_stream(prefix: str, stream_id: str) -> str:
    """``<prefix>.<category>.<rest of the id>``, each part encoded."""
    category = category_of(stream_id)
    return f"{prefix}.{encode_token(category)}.{encode_token(stream_id[len(category) :])}"


def stream_of_subject(prefix: str, subject: str) -> str:
    """The stream id of a subject made by :func:`subject_of_stream` with ``prefix``."""
    category, _, rest = subject[len(prefix) + 1 :].partition(".")
    return decode_token(category) + decode_token(rest)
