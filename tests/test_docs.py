"""Every ```python block in the README and docs/ runs, in order, one namespace per file."""

import os
import re
import socket
from pathlib import Path
from urllib.parse import urlsplit

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)
SERVICES = {
    "CHRONIK_TEST_POSTGRES_URL": "postgresql://postgres@127.0.0.1:5432/test",
    "CHRONIK_TEST_REDIS_URL": "redis://127.0.0.1:6379/0",
    "CHRONIK_TEST_NATS_URL": "nats://127.0.0.1:4222",
}


def _reachable(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 0), timeout=2):
            return True
    except OSError:
        return False


def test_documents_have_samples() -> None:
    assert BLOCK.findall((ROOT / "README.md").read_text()), "the README has no runnable samples"


@pytest.mark.parametrize("document", DOCUMENTS, ids=[p.name for p in DOCUMENTS])
def test_code_samples_run(document: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = document.read_text(encoding="utf-8")
    blocks = BLOCK.findall(text)
    if not blocks:
        pytest.skip(f"{document.name} has no python samples")
    for variable, default in SERVICES.items():
        if variable in text:
            url = os.environ.get(variable, default)
            monkeypatch.setenv(variable, url)
            if not _reachable(url):
                message = f"{document.name} needs the service at {url} (set {variable})"
                if os.environ.get("CI") == "true":
                    pytest.fail(message)
                pytest.skip(message)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CHRONIK_URL", raising=False)
    namespace: dict[str, object] = {"__name__": f"docs_{document.stem}"}
    for index, block in enumerate(blocks, 1):
        line = text[: text.index(block)].count("\n") + 1
        code = compile(block, f"{document.name}:{line} (block {index})", "exec")
        exec(code, namespace)
