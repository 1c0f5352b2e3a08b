"""Helpers the review tests share: a registry with a promotion to review, git runners."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from conftest import Result, Run

MODEL = "ai/vision/yolo"
PROPOSAL = "promote/yolo-v3"


def git_out(cwd: Path, *args: str) -> str:
    """stdout of ``git ARGS`` in ``cwd``; fail the test if git fails."""
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, f"git {' '.join(args)}: {proc.stderr}"
    return proc.stdout


def git_run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``git ARGS`` in ``cwd`` whatever its outcome."""
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)


def ok(run: Run, *argv: str | Path) -> Result:
    result = run(*argv)
    assert result.code == 0, result
    return result


def one_error_line(result: Result, *needles: str) -> None:
    assert result.code == 1, result
    lines = result.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("modelbox: error: "), result.err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def make_registry(run: Run, path: Path) -> Path:
    """``ai/vision/yolo`` (owner alice): v1 tagged production (acc 0.91), v3 (acc 0.93)."""
    ok(run, "init", path)
    weights = path.parent / "weights"
    weights.mkdir(exist_ok=True)
    (weights / "v1.pt").write_bytes(b"v1 weights")
    (weights / "v3.pt").write_bytes(b"v3 weights")
    for argv in (
        ("model", "create", MODEL, "--owner", "alice"),
        ("version", "create", MODEL, "v1"),
        ("artifact", "add", f"{MODEL}@v1", weights / "v1.pt"),  # production needs artifacts
        ("tag", f"{MODEL}@v1", "production"),
        ("metrics", "log", f"{MODEL}@v1", "acc=0.91", "loss=0.3"),
        ("version", "create", MODEL, "v3"),
        ("artifact", "add", f"{MODEL}@v3", weights / "v3.pt"),
        ("metrics", "log", f"{MODEL}@v3", "acc=0.93", "loss=0.25"),
    ):
        ok(run, "--repo", path, *argv)
    return path


def refs(path: Path) -> dict[str, str]:
    out = git_out(path, "for-each-ref", "--format=%(refname) %(objectname)")
    return dict(line.split(" ", 1) for line in out.splitlines())


def files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".git" not in p.relative_to(root).parts
    }
