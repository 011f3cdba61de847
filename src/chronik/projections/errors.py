"""Errors and warnings of projections, consumer groups and process managers.

They sit under chronik's one root (``ChronikError``)::

    ChronikError
    └── ProjectionError
        ├── DuplicateProjectionError (ConfigurationError)  two projections, one name
        ├── ProjectionFailedError                          a handler kept failing
        ├── ProjectionVersionError                         code older than the store's version
        └── ProjectionConflictError (ConcurrencyError)     another runner moved the checkpoint

A checkpoint that belongs to another store is an ``InvalidCheckpointError``.
"""

from __future__ import annotations

from typing import Any

from chronik.errors import ChronikError, ConcurrencyError, ConfigurationError

__all__ = [
    "DuplicateProjectionError",
    "ProjectionConflictError",
    "ProjectionError",
    "ProjectionFailedError",
    "ProjectionVersionError",
    "ProjectionWarning",
]


class ProjectionError(ChronikError):
    """Something went wrong with a projection (or a process manager, which is one)."""


class DuplicateProjectionError(ProjectionError, ConfigurationError):
    """Two projections were declared with the same name."""


class ProjectionFailedError(ProjectionError):
    """A handler raised on an event and kept raising through every retry.

    Names the projection and its version, and the event: ``stream_id``, ``version``,
    ``type``, ``position``. The handler's last exception is the ``__cause__``. The
    projection's checkpoint stays before the event, so nothing is skipped.
    """

    def __init__(
        self,
        projection: str,
        projection_version: int,
        *,
        stream_id: str,
        version: int,
        type: str,
        position: int,
        error: str,
        attempts: int,
    ) -> None:
        self.projection = projection
        self.projection_version = projection_version
        self.stream_id = stream_id
        self.version = version
        self.type = type
        self.position = position
        self.error = error
        self.attempts = attempts
        tries = f"{attempts} attempt{'' if attempts == 1 else 's'}"
        super().__init__(
            f"projection {projection!r} v{projection_version} stopped at stream {stream_id!r} "
            f"version {version} (type {type!r}, position {position}) after {tries}: {error}"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.args, self.__dict__))


def _rebuild(cls: type[Exception], args: tuple[Any, ...], state: dict[str, Any]) -> Exception:
    err = cls.__new__(cls)
    err.args = args
    err.__dict__.update(state)
    return err


class ProjectionVersionError(ProjectionError):
    """This code's version of a projection was replaced by a newer one in the store."""


class ProjectionConflictError(ProjectionError, ConcurrencyError):
    """Another runner of the same projection moved its checkpoint: this batch was not applied."""


class ProjectionWarning(UserWarning):
    """A projection that may not do what it says, e.g. it handles a type nobody emits."""
