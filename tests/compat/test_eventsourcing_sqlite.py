"""The ``eventsourcing`` library's own test cases on chronik's SQLite store.

Each test opens a new database file in a temporary directory of this module's.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
import uuid
from pathlib import Path

from tests.compat._eventsourcing_cases import bind

_DIRECTORY = Path(tempfile.mkdtemp(prefix="chronik-eventsourcing-"))
atexit.register(shutil.rmtree, _DIRECTORY, ignore_errors=True)


def new_url() -> str:
    return f"sqlite:///{_DIRECTORY / uuid.uuid4().hex}.db"


globals().update({f"{name}OnSQLite": cls for name, cls in bind(new_url).items()})
