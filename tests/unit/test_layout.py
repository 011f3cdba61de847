"""The shape of the package: modules stay small, and every backend folder has the same files."""

from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "chronik"
LIMIT = 800
LAYOUT = {"__init__.py", "store.py", "writing.py", "reader.py", "projection_state.py"}


def test_no_module_is_over_800_lines() -> None:
    long = {
        str(path.relative_to(SRC)): n
        for path in SRC.rglob("*.py")
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > LIMIT
    }
    assert long == {}, f"modules over {LIMIT} lines: {long}"


@pytest.mark.parametrize(
    "folder",
    ["stores/memory", "stores/sqlite", "stores/postgres/_async", "stores/postgres/_sync", "stores/nats"],
)
def test_every_backend_folder_has_the_same_files(folder: str) -> None:
    names = {p.name for p in (SRC / folder).glob("*.py")}
    assert LAYOUT - {"__init__.py"} <= names, f"{folder} lacks {sorted(LAYOUT - names)}"


def test_the_examples_type_check_without_ignores_or_casts() -> None:
    # mypy --strict runs over src (examples included); this keeps it honest: the
    # examples are what users copy, so they must not need to silence the checker.
    found = [
        f"{path.relative_to(SRC)}:{number}: {line.strip()}"
        for path in sorted((SRC / "examples").rglob("*.py"))
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if "type: ignore" in line or "cast(" in line
    ]
    assert found == [], "the examples silence the type checker:\n" + "\n".join(found)
