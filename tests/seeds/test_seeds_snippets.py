"""Every Python snippet in README.md and docs/*.md runs as a test (issue 19), so the
documents cannot drift from the code.

Convention (docs/design.md, "Snippets in the documents"): each ```python block runs on its
own, in a fresh temporary working directory, as a script. A block may be preceded by one
HTML comment naming what it needs:

* ``<!-- snippet: fixture=NAME -->``: the fixture ``NAME`` below prepares the working
  directory and returns the names the block uses without defining (``client``...);
* ``<!-- snippet: skip=REASON -->``: not runnable here (a real cloud bucket...): reported
  as skipped with REASON.

Shell (``bash``/``console``) blocks are not run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from s3server import S3Server

from modelbox import ModelBoxClient

from .snippets import ROOT, Block, blocks

DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PYTHON = ("python", "py")


def _snippets() -> list[Any]:
    found = []
    for doc in DOCUMENTS:
        for block in blocks(doc.read_text(encoding="utf-8")):
            if block.lang in PYTHON:
                name = f"{doc.relative_to(ROOT)}:{block.line}"
                found.append(pytest.param(block, id=name))
    return found


SNIPPETS = _snippets()


def _serve_s3(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    """``s3://bucket/...`` served by the test suite's SeaweedFS."""
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    s3_server.create_bucket("bucket")
    s3_server.client().pipe("bucket/eval.html", b"<html>eval</html>\n")


@pytest.fixture
def quickstart(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch,
               tmp_path: Path) -> dict[str, Any]:
    """An empty registry ``reg``, a ``model.pt`` here, and ``s3://bucket/eval.html``."""
    _serve_s3(s3_server, monkeypatch)
    ModelBoxClient(tmp_path / "reg", create=True).close()
    (tmp_path / "model.pt").write_bytes(b"weights\n")
    return {}


@pytest.fixture
def trained_yolo(tmp_path: Path) -> dict[str, Any]:
    """``client`` on a registry where ``ai/vision/yolo-run-17@v5`` has a file."""
    client = ModelBoxClient(tmp_path / "reg", create=True)
    (tmp_path / "model.pt").write_bytes(b"weights\n")
    model = client.new_model("yolo-run-17", "ml@example.com", "ai/vision")
    model.new_model_version("v5", artifacts=[str(tmp_path / "model.pt")])
    return {"client": client}


@pytest.fixture
def s3_store(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch,
             tmp_path: Path) -> dict[str, Any]:
    """``s3://bucket/...`` served by SeaweedFS, and a ``model.pt`` here."""
    _serve_s3(s3_server, monkeypatch)
    (tmp_path / "model.pt").write_bytes(b"weights\n")
    return {}


def test_the_documents_have_python_snippets() -> None:
    assert len(SNIPPETS) >= 3  # README, docs/collections.md, docs/store.md at least


@pytest.mark.parametrize("block", SNIPPETS)
def test_snippet_runs(block: Block, request: pytest.FixtureRequest) -> None:
    scope: dict[str, Any] = {"__name__": "__snippet__"}
    if block.marker is not None:
        kind, value = block.marker
        if kind == "skip":
            pytest.skip(f"marked not runnable: {value}")
        assert kind == "fixture", f"unknown snippet marker {kind!r} (fixture= or skip=)"
        scope.update(request.getfixturevalue(value))
    exec(compile(block.code, f"snippet at line {block.line}", "exec"), scope)
    client = scope.get("client")
    if isinstance(client, ModelBoxClient):
        client.close()


def test_no_python_hides_in_an_unlabelled_block() -> None:
    """A block that looks like the Python API must say ```python (and so be run)."""
    for doc in DOCUMENTS:
        for block in blocks(doc.read_text(encoding="utf-8")):
            if block.lang not in PYTHON:
                assert "from modelbox" not in block.code and "ModelBoxClient(" not in (
                    block.code), f"{doc.name}:{block.line}: label it ```python"


def test_markers_are_read() -> None:
    text = ("<!-- snippet: skip=needs a real bucket -->\n```python\nx = 1\n```\n\n"
            "```python\ny = 2\n```\n<!-- snippet: fixture=quickstart -->\n\n```py\nz\n```\n")
    found = blocks(text)
    assert [(b.lang, b.marker) for b in found] == [
        ("python", ("skip", "needs a real bucket")), ("python", None),
        ("py", ("fixture", "quickstart"))]
