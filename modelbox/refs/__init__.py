"""Everything Git: trees, commits, refs, the index and history. The only dulwich importer.

Names load their module on first use (PEP 562): a read such as ``modelbox resolve`` needs
the repository and its snapshots only, not the history walker or the index code of writes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from modelbox.lazy import attribute_loader

if TYPE_CHECKING:
    from modelbox.refs.history import CommitRecord, History
    from modelbox.refs.lock import locked
    from modelbox.refs.repo import GitRepo, PathChange, Snapshot, blob_sha, user_identity
    from modelbox.refs.worktree import Worktree

_LAZY = {
    "CommitRecord": "modelbox.refs.history",
    "History": "modelbox.refs.history",
    "locked": "modelbox.refs.lock",
    "GitRepo": "modelbox.refs.repo",
    "PathChange": "modelbox.refs.repo",
    "Snapshot": "modelbox.refs.repo",
    "blob_sha": "modelbox.refs.repo",
    "user_identity": "modelbox.refs.repo",
    "Worktree": "modelbox.refs.worktree",
}

__all__ = [
    "CommitRecord",
    "GitRepo",
    "History",
    "PathChange",
    "Snapshot",
    "Worktree",
    "blob_sha",
    "locked",
    "user_identity",
]


__getattr__ = attribute_loader(globals(), _LAZY)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
