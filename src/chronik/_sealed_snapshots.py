"""Snapshots sealed like events: at rest with the cipher, and with their subjects' keys.

A snapshot is a state folded from events, so it may hold the personal data of every
subject those events were about. It is sealed with a key derived (HKDF-SHA256) from
all of those subjects' keys at once: forgetting any one of them makes the whole
snapshot unusable, and the command handler replays the stream instead (where the
forgotten subject's fields read redacted). The subjects and their key ids are stored
in clear beside it, so a reader knows which keys to load::

    {"$chronik":"pii","subjects":[["customer-7","Xq3v9Q"]],"ct":"<base64>"}

and that is sealed again at rest when a cipher is configured (the order of events:
subjects first, then the cipher). Nothing here does I/O.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from typing import Final

import msgspec

from chronik.cipher import (
    NONCE_SIZE,
    Envelope,
    Located,
    Sealer,
    Where,
    aes_gcm,
    encode_envelope,
    envelope_of,
    is_sealed,
)
from chronik.errors import DecryptionError
from chronik.events import Snapshot
from chronik.personal import SubjectKey

__all__ = ["open_snapshot", "seal_snapshot", "snapshot_subjects"]

_PURPOSE: Final = b"snapshot"


def _where(snapshot: Snapshot) -> str:
    return f"snapshot of stream {snapshot.stream_id!r} at version {snapshot.version} (type {snapshot.type!r})"


def _at(snapshot: Snapshot) -> Located:
    return {"stream_id": snapshot.stream_id, "version": snapshot.version, "type": snapshot.type}


def _named(snapshot: Snapshot) -> Where:
    return lambda: (_where(snapshot), _at(snapshot))


def _derived(keys: Sequence[SubjectKey], aad: bytes) -> bytes:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    material = b"".join(k.key for k in keys)
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=aad).derive(material)


def _aad(subjects: list[tuple[str, str]]) -> bytes:
    return b"chronik:snapshot:" + msgspec.json.encode(subjects)


def seal_snapshot(sealer: Sealer, snapshot: Snapshot, keys: Sequence[SubjectKey]) -> Snapshot:
    """``snapshot`` as it is stored: sealed with ``keys`` (its subjects'), then at rest."""
    data = snapshot.data
    chosen = sorted(keys, key=lambda k: k.subject)
    if chosen:
        subjects = [(k.subject, k.key_id) for k in chosen]
        aad = _aad(subjects)
        nonce = secrets.token_bytes(NONCE_SIZE)
        sealed = aes_gcm(_derived(chosen, aad)).encrypt(nonce, data, aad)
        data = encode_envelope(Envelope("pii", subjects=subjects, ct=nonce + sealed))
    if sealer.active:
        data = sealer.seal(data, _PURPOSE)
    return msgspec.structs.replace(snapshot, data=data, subjects=tuple(k.subject for k in chosen))


def snapshot_subjects(sealer: Sealer, snapshot: Snapshot) -> tuple[bytes, list[tuple[str, str]]]:
    """The snapshot's data opened at rest, and the subjects (with their key ids) whose
    keys open the rest (none when it is not sealed with subjects' keys)."""
    data = snapshot.data
    if not is_sealed(data):
        return data, []
    envelope = envelope_of(data, _named(snapshot))
    if envelope.alg != "pii":
        data = sealer.open(data, _PURPOSE, _named(snapshot))[0]
        if not is_sealed(data):
            return data, []
        envelope = envelope_of(data, _named(snapshot))
    if envelope.alg != "pii" or not envelope.subjects:
        raise DecryptionError(
            f"{_where(snapshot)} is damaged: its sealed envelope is incomplete", **_at(snapshot)
        )
    return data, [(s, k) for s, k in envelope.subjects]


def open_snapshot(
    snapshot: Snapshot, data: bytes, subjects: list[tuple[str, str]], keys: Mapping[str, SubjectKey]
) -> Snapshot | None:
    """The snapshot with its state opened, or None when one of its subjects' keys is gone
    (forgotten, or made anew since): the state may hold that subject's data."""
    if not subjects:
        return msgspec.structs.replace(snapshot, data=data)
    chosen = []
    for subject, key_id in subjects:
        key = keys.get(subject)
        if key is None or key.key_id != key_id:
            return None
        chosen.append(key)
    envelope = envelope_of(data, _named(snapshot))
    aad = _aad(subjects)
    body = envelope.ct
    from cryptography.exceptions import InvalidTag

    try:
        state = aes_gcm(_derived(chosen, aad)).decrypt(body[:NONCE_SIZE], body[NONCE_SIZE:], aad)
    except InvalidTag as err:
        raise DecryptionError(
            f"{_where(snapshot)} does not authenticate with its subjects' keys (the key store holds "
            "other bytes under their ids, or the stored bytes were altered)",
            **_at(snapshot),
        ) from err
    return msgspec.structs.replace(snapshot, data=state, subjects=tuple(s for s, _ in subjects))
