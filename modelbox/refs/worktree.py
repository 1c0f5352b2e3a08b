"""Keeping the work tree and index in step with the registry branch.

A command first commits, then moves the files it changed, so ``git status`` stays clean.
Before the branch moves, :func:`check_clean` makes sure none of those files carries a hand
edit (staged or not) that the move would overwrite; a command that finds one refuses and
changes nothing. The rule is git's own for ``checkout``: a path that differs between the
old and new commit must match the old commit in both the index and the work tree.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from pathlib import Path

from modelbox import pathcheck
from modelbox.errors import GitError, WorktreeDirtyError
from modelbox.refs.index import GitIndex, SplitSettings, git_bool
from modelbox.refs.repo import GitRepo, PathChange, blob_sha


class Worktree:
    """The checked-out files of a repository whose HEAD is the registry branch."""

    def __init__(self, repo: GitRepo, root: Path) -> None:
        self.repo, self.root = repo, root
        self._index: GitIndex | None = None

    @property
    def index(self) -> GitIndex:
        if self._index is None:
            setting = self.repo.git_setting
            self._index = GitIndex(self.repo.git_dir / "index",
                                   split=SplitSettings.from_config(setting),
                                   skip_hash=git_bool(setting("index", "skipHash")) is True)
        elif self._index.is_stale():
            self._index.reload()
        return self._index

    def prefetch(self) -> None:
        """Open the index now, at the start of a write: a big one's checksum is computed
        in a thread while the command prepares its change (:mod:`modelbox.refs.index`).
        An index that cannot be read is left to be refused where it is used, as before."""
        with contextlib.suppress(GitError, OSError):
            self.index  # noqa: B018

    def close(self) -> None:
        """Save what the index keeps for the next process (its entry offsets)."""
        if self._index is not None:
            self._index.flush()

    def _matches(self, path: str, sha: str | None) -> bool:
        """Whether the index and the file at ``path`` both hold ``sha`` (None: absent)."""
        index = self.index
        if index.is_conflicted(path):
            return False
        entry = index.get(path)
        file = self.root / path
        if sha is None:
            return entry is None and not os.path.lexists(file)
        if entry is None or entry.sha != sha:
            return False
        try:
            st = file.lstat()
        except FileNotFoundError:
            return False
        if st.st_size == entry.size and st.st_mtime_ns == entry.mtime_ns and (
            st.st_ino & 0xFFFFFFFF
        ) == entry.ino:
            return True
        if not file.is_file() or file.is_symlink():
            return False
        return blob_sha(file.read_bytes()) == sha

    def check_clean(self, changes: Iterable[PathChange]) -> None:
        """Raise WorktreeDirtyError if a path about to change carries a hand edit, and
        UnsafePathError if one may not be written at all (:mod:`modelbox.pathcheck`)."""
        changes = _checked(changes)
        for change in changes:
            if self._matches(change.path, change.old_sha):
                continue
            # Already in the new state (a previous run died after moving the branch).
            if self._matches(change.path, change.new_sha):
                continue
            raise WorktreeDirtyError(change.path)

    def apply(self, changes: Iterable[PathChange]) -> None:
        """Write the new content of each changed path and record it in the index.

        Raises:
            UnsafePathError: a path may not be written (nothing is written then).
        """
        changes = _checked(changes)
        index = self.index
        for change in changes:
            file = self.root / change.path
            if change.new_sha is None:
                file.unlink(missing_ok=True)
                index.remove(change.path)
                _prune_empty_dirs(file.parent, self.root)
                continue
            file.parent.mkdir(parents=True, exist_ok=True)
            tmp = file.with_name(f".{file.name}.modelbox-tmp")
            try:
                with open(tmp, "wb") as out:
                    self.repo.copy_blob(change.new_sha, out)
            except BaseException:  # a damaged object: nothing of it is left in the tree
                tmp.unlink(missing_ok=True)
                raise
            os.replace(tmp, file)
            index.set(change.path, change.new_sha, file.lstat())
        index.write()

    def follow(self, changes: Iterable[PathChange]) -> list[str]:
        """Finish an :meth:`apply` that was cut short (``kill -9``, a busy ``index.lock``).

        Each path is brought from its old content to its new one, whichever of the two the
        file and the index hold now (a file may be new while the index is still old); a
        path that holds neither (a hand edit since) is left alone and returned.
        """
        index = self.index
        pending: list[PathChange] = []
        skipped: list[str] = []
        for change in changes:
            file = self.root / change.path
            with contextlib.suppress(FileNotFoundError, NotADirectoryError):
                file.with_name(f".{file.name}.modelbox-tmp").unlink()
            if self._matches(change.path, change.new_sha):
                continue
            if self._matches(change.path, change.old_sha):
                pending.append(change)
                continue
            entry = index.get(change.path)
            staged = None if entry is None else entry.sha
            if index.is_conflicted(change.path) or staged not in (change.old_sha,
                                                                  change.new_sha):
                skipped.append(change.path)
            elif _file_sha(file) == change.new_sha:  # written; the index did not follow
                if change.new_sha is None:
                    index.remove(change.path)
                else:
                    index.set(change.path, change.new_sha, file.lstat())
            elif _file_sha(file) == change.old_sha:
                pending.append(change)
            else:
                skipped.append(change.path)
        self.apply(pending)  # writes the index, also when only entries changed above
        return skipped


def _file_sha(file: Path) -> str | None:
    """The blob sha of a regular file, None if absent, "" for anything else."""
    if not os.path.lexists(file):
        return None
    if file.is_symlink() or not file.is_file():
        return ""
    return blob_sha(file.read_bytes())


def _checked(changes: Iterable[PathChange]) -> list[PathChange]:
    """``changes``, once every path is known to be one git would write (the commits were
    checked where they entered; this holds the line for every other caller)."""
    changes = list(changes)
    for change in changes:
        pathcheck.check_path(change.path, "the work tree update")
    return changes


def _prune_empty_dirs(directory: Path, root: Path) -> None:
    while directory != root and directory.is_dir() and not any(directory.iterdir()):
        directory.rmdir()
        directory = directory.parent
