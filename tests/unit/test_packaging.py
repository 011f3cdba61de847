"""What pyproject.toml promises to whoever installs chronik: extras that install something."""

import re
import tomllib
from pathlib import Path
from typing import Any

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def _project() -> dict[str, Any]:
    with PYPROJECT.open("rb") as file:
        project: dict[str, Any] = tomllib.load(file)["project"]
    return project


def test_no_extra_is_empty() -> None:
    # `pip install 'chronik[web]'` must bring what the web UI needs, not succeed with nothing.
    extras: dict[str, list[str]] = _project()["optional-dependencies"]
    assert {"postgres", "nats", "redis", "sqlalchemy", "web"} <= set(extras)
    assert [name for name, requirements in extras.items() if not requirements] == []


def test_the_extras_that_backends_name_exist() -> None:
    extras = _project()["optional-dependencies"]
    backends: dict[str, str] = _project()["entry-points"]["chronik.backends"]
    named = {extra for value in backends.values() for extra in re.findall(r"\[(\w+)\]", value)}
    assert named and named <= set(extras)
