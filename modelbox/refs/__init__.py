"""Everything Git: trees, commits, refs, the index and history. The only dulwich importer."""

from modelbox.refs.history import CommitRecord, History
from modelbox.refs.lock import locked
from modelbox.refs.repo import GitRepo, PathChange, Snapshot, blob_sha, user_identity
from modelbox.refs.worktree import Worktree

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
