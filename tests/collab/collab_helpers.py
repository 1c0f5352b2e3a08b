"""Helpers the collaboration tests share."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from conftest import Result, Run


def git_out(cwd: Path, *args: str) -> str:
    """stdout of ``git ARGS`` in ``cwd``; fail the test if git fails."""
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, f"git {' '.join(args)}: {proc.stderr}"
    return proc.stdout


def ok(run: Run, *argv: str | Path) -> Result:
    """Run the CLI and insist it succeeds."""
    result = run(*argv)
    assert result.code == 0, result
    return result


def make_registry(run: Run, path: Path, remote_url: str | None = None) -> Path:
    """A registry with ``ai/vision/yolo@v1`` (tag ``prod``) and ``@v2``; ``origin`` set."""
    ok(run, "init", path)
    for argv in (("model", "create", "ai/vision/yolo"),
                 ("version", "create", "ai/vision/yolo", "v1", "--tag", "prod"),
                 ("version", "create", "ai/vision/yolo", "v2")):
        ok(run, "--repo", path, *argv)
    if remote_url is not None:
        git_out(path, "remote", "add", "origin", remote_url)
    return path


def tag_refs(path: Path) -> str:
    """``name sha`` of every ref under refs/modelbox/tags."""
    return git_out(path, "for-each-ref", "--format=%(refname) %(objectname)",
                   "refs/modelbox/tags")


def assert_clean(path: Path) -> None:
    assert git_out(path, "status", "--porcelain", "--untracked-files=all") == ""


def one_error_line(result: Result, *needles: str) -> None:
    """Exit 1 with one ``modelbox: error:`` line that mentions every needle."""
    assert result.code == 1, result
    lines = result.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("modelbox: error: "), result.err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
