"""Every ```python block in the README and docs/ runs, in order, one namespace per file."""

import re
import sys
import types
from pathlib import Path

import pytest

from chronik.testing.services import NATS, POSTGRES, RABBITMQ, REDIS
from tests._mypy import mypy_strict

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)
SERVICES = (POSTGRES, REDIS, NATS, RABBITMQ)


def test_documents_have_samples() -> None:
    assert BLOCK.findall((ROOT / "README.md").read_text()), "the README has no runnable samples"


@pytest.mark.parametrize("document", DOCUMENTS, ids=[p.name for p in DOCUMENTS])
def test_code_samples_run(document: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = document.read_text(encoding="utf-8")
    blocks = BLOCK.findall(text)
    if not blocks:
        pytest.skip(f"{document.name} has no python samples")
    for service in SERVICES:
        if service.variable in text:
            monkeypatch.setenv(service.variable, service.url)
            service.require()
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CHRONIK_URL", raising=False)
    # The samples run in a module of their own, importable while they run, as a
    # script's __main__ is: libraries that find classes by module path (eventsourcing's
    # topics, pickle) find the samples' classes.
    module = types.ModuleType(f"docs_{document.stem}")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    namespace = module.__dict__
    for index, block in enumerate(blocks, 1):
        line = text[: text.index(block)].count("\n") + 1
        code = compile(block, f"{document.name}:{line} (block {index})", "exec")
        exec(code, namespace)


# Pages whose samples, put together, are a program that passes mypy --strict.
TYPED_DOCUMENTS = [ROOT / "docs" / "first-application.md"]


@pytest.mark.parametrize("document", TYPED_DOCUMENTS, ids=[p.name for p in TYPED_DOCUMENTS])
def test_typed_samples_pass_mypy_strict(document: Path, tmp_path: Path) -> None:

    program = "\n\n".join(BLOCK.findall(document.read_text(encoding="utf-8")))
    assert "type: ignore" not in program and "cast(" not in program
    (tmp_path / "sample.py").write_text(program, encoding="utf-8")
    report, errors, status = mypy_strict(tmp_path, [tmp_path / "sample.py"])
    assert status == 0, report + errors
