"""Helpers the core tests share: a registry's full observable state, error-line checks."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from conftest import Result


def git_out(cwd: Path, *args: str) -> str:
    """stdout of ``git ARGS`` in ``cwd``; fail the test if git fails."""
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, f"git {' '.join(args)}: {proc.stderr}"
    return proc.stdout


def git_code(cwd: Path, *args: str) -> int:
    """Exit code of ``git ARGS`` in ``cwd``."""
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, check=False).returncode


@dataclass(frozen=True)
class RepoState:
    """Everything a failed command must leave untouched."""

    refs: str
    head: str
    status: str
    files: dict[str, bytes]


def repo_state(root: Path) -> RepoState:
    """Refs (branches and tag refs), HEAD, ``git status`` and every work-tree file."""
    files = {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".git" not in p.relative_to(root).parts
    }
    return RepoState(
        refs=git_out(root, "for-each-ref", "--format=%(refname) %(objectname)"),
        head=git_out(root, "symbolic-ref", "-q", "HEAD"),
        status=git_out(root, "status", "--porcelain", "--untracked-files=all"),
        files=files,
    )


def assert_clean(root: Path) -> None:
    """The work tree and the index match HEAD exactly (nothing staged, edited or stray)."""
    assert git_out(root, "status", "--porcelain", "--untracked-files=all") == ""


def assert_error(result: Result, *needles: str) -> None:
    """Exit 1 with exactly one ``modelbox: error:`` line on stderr mentioning every needle."""
    assert result.code == 1, result
    lines = result.err.splitlines()
    assert len(lines) == 1, result.err
    assert lines[0].startswith("modelbox: error: "), result.err
    assert "Traceback" not in result.err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
