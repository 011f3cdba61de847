"""The NATS store's subjects' keys: the ``<stream>-keys`` key-value bucket.

One key per subject, ``key.<subject>`` (encoded as in ``_subjects``), holding its key
and the key's id. A key is made only when the subject's key is absent or purged
(the publish expects the subject's last sequence), so writers racing to make one all
read back the winner's. Forgetting purges the key with a roll-up, which removes the
key's messages from the bucket's stream, not only hides them behind a marker.

A bucket of its own, apart from ``<stream>-state``: it may be given other replicas,
placement or backups than the events it unlocks.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from typing import Final

import msgspec

from chronik.backend import SubjectKey, new_subject_key, validate_subject, validate_subjects
from chronik.stores.nats._connection import Connection
from chronik.stores.nats._subjects import encode_token
from chronik.stores.nats.projection_state import StateBucket

__all__ = ["SubjectKeysBucket"]

_encode: Final = msgspec.json.Encoder().encode
_decode: Final = msgspec.json.Decoder(SubjectKey).decode


class SubjectKeysBucket:
    """A :class:`chronik.store.AsyncSubjectKeyStore` in the store's ``-keys`` bucket."""

    def __init__(self, conn: Connection) -> None:
        self._bucket = StateBucket(conn, conn.config.keys_bucket)

    async def subject_keys(self, subjects: Collection[str], *, create: bool = False) -> dict[str, SubjectKey]:
        wanted = validate_subjects(subjects)
        found = dict(zip(wanted, await asyncio.gather(*(self._get(s) for s in wanted)), strict=True))
        if create:
            for subject in wanted:
                if found[subject] is None:
                    made = new_subject_key(subject)
                    # False: another writer made it first; theirs is the key.
                    written = await self._bucket._put(_key(subject), _encode(made), create=True)
                    found[subject] = made if written else await self._get(subject)
        return {s: k for s, k in found.items() if k is not None}

    async def forget(self, subject: str) -> None:
        await self._bucket._purge(_key(validate_subject(subject)))

    async def _get(self, subject: str) -> SubjectKey | None:
        value = await self._bucket._get(_key(subject))
        return None if not value else _decode(value)


def _key(subject: str) -> str:
    return f"key.{encode_token(subject)}"
