"""A git repository of one staged file, for the tests that drive modelbox's index writer
(:class:`modelbox.refs.index.GitIndex`) directly and compare with what git reads."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from modelbox.refs.index import GitIndex


def one_file_index(git: Callable[..., str], root: Path, version: int,
                   ) -> tuple[GitIndex, str, os.stat_result]:
    """``git init`` ROOT with the file ``f`` staged in an index of ``version``: the index
    opened, and the blob id and stat of ``f`` for the entries a test adds."""
    root.mkdir()
    git("init", "-q", cwd=root)
    (root / "f").write_text("x\n")
    git("add", "f", cwd=root)
    git("update-index", "--index-version", str(version), cwd=root)
    blob = git("hash-object", "-w", "f", cwd=root).strip()
    return GitIndex(root / ".git" / "index"), blob, (root / "f").lstat()
