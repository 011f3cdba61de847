"""Run ``mypy --strict`` on files a test wrote, against the chronik under test."""

from __future__ import annotations

from pathlib import Path

from mypy import api as mypy_api

import chronik


def mypy_strict(folder: Path, files: list[Path]) -> tuple[str, str, int]:
    """mypy's report, its errors and its exit status for ``files`` (a cache in ``folder``)."""
    # The chronik under test, not another one the interpreter may have installed.
    (folder / "mypy.ini").write_text(
        f"[mypy]\nstrict = True\npython_version = 3.11\nmypy_path = {Path(chronik.__file__).parents[1]}\n",
        encoding="utf-8",
    )
    return mypy_api.run(
        [
            "--config-file",
            str(folder / "mypy.ini"),
            "--cache-dir",
            str(folder / ".mypy_cache"),
            *map(str, files),
        ]
    )
