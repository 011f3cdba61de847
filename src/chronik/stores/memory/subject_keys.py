"""The memory store's subjects' keys: a dict, under a lock of its own.

Its own lock, not the log's: a key is made before an append takes the write lock,
and may be looked up while a transaction holds it (``LiveKeys``), so nothing here
ever waits for a writer.
"""

from __future__ import annotations

import threading
from collections.abc import Collection

from chronik.backend import SubjectKey, new_subject_key, validate_subject, validate_subjects

__all__ = ["MemorySubjectKeys"]


class MemorySubjectKeys:
    """A :class:`chronik.store.SubjectKeyStore` in this process's memory."""

    def __init__(self) -> None:
        self._keys: dict[str, SubjectKey] = {}
        self._lock = threading.Lock()

    def subject_keys(self, subjects: Collection[str], *, create: bool = False) -> dict[str, SubjectKey]:
        wanted = validate_subjects(subjects)
        with self._lock:
            keys = self._keys
            if create:
                for subject in wanted:
                    if subject not in keys:
                        keys[subject] = new_subject_key(subject)
            return {s: keys[s] for s in wanted if s in keys}

    def forget(self, subject: str) -> None:
        subject = validate_subject(subject)
        with self._lock:
            self._keys.pop(subject, None)
