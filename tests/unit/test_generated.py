"""The generated sync modules (see tools/unasync.py) must be current.

Fix a failure with ``python tools/unasync.py``. (No server needed.)
"""

import importlib.util
import os
import shutil
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("unasync", ROOT / "tools/unasync.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_sync_modules_are_current() -> None:
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    if shutil.which("ruff", path=path) is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("ruff is needed to check the generated PostgreSQL store")
        pytest.skip("ruff is needed to check the generated PostgreSQL store (pip install ruff)")
    stale = _generator().stale()
    assert stale == [], f"stale: {', '.join(stale)}; run python tools/unasync.py"
