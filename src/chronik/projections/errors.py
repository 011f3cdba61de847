"""Errors and warnings of projections, consumer groups and process managers.

They live in :mod:`chronik.errors` with every other error; this module re-exports them.
"""

from chronik.errors import (
    DuplicateProjectionError,
    ProjectionConflictError,
    ProjectionError,
    ProjectionFailedError,
    ProjectionVersionError,
    ProjectionWarning,
)

__all__ = [
    "DuplicateProjectionError",
    "ProjectionConflictError",
    "ProjectionError",
    "ProjectionFailedError",
    "ProjectionVersionError",
    "ProjectionWarning",
]
