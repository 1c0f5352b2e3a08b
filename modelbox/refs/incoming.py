"""Checking commits that came from another repository before any of them moves a ref or
reaches the disk.

A fetched commit is untrusted: its trees may name ``..``, ``.git``, a symbolic link...
(:mod:`modelbox.pathcheck`). :func:`check_commits` looks at every commit of the incoming
range, not only the tip: a path added by an intermediate commit and removed by the next
would otherwise still be written by a command that walks the range, and it is all the
history a later ``git checkout`` may write. Only what is new is read: each new commit's
entries that differ from its parents (one ``git diff-tree`` with git; with dulwich, the
trees that differ), since every other path of a commit is in a parent, and the parents
outside the range are ours, checked when they arrived.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import cast

from dulwich.errors import ObjectFormatException
from dulwich.object_store import BaseObjectStore, DiskObjectStore
from dulwich.objects import Commit, ObjectID, Tree, parse_tree
from dulwich.walk import Walker

from modelbox import pathcheck
from modelbox.errors import GitError, RemoteError, UnsafePathError
from modelbox.refs import gitcli
from modelbox.refs.repo import GitRepo

__all__ = ["Quarantine", "check_commits", "check_tree", "unsafe_paths"]


class Quarantine:
    """A temporary object folder that a fetch writes into instead of the repository's own
    (which it still reads, as an alternate): what git's receive-pack does with a push.
    :meth:`admit` moves the objects in once they are checked; :meth:`close` throws away
    whatever is still there, so a refused fetch leaves no trace. The folder is made when
    a fetch first needs it (:meth:`prepare`): a pull with nothing new makes none."""

    def __init__(self, repo: GitRepo) -> None:
        self.repo, self.main = repo, repo.git_dir / "objects"
        self._path: Path | None = None
        self._store: DiskObjectStore | None = None

    def prepare(self) -> dict[str, str]:
        """Make the folder if need be; what points a git process that writes objects at it."""
        if self._path is None:
            _remove_stale(self.main)
            # Inside the object folder: the moves in admit() stay on one file system.
            # git names its own quarantines tmp_objdir-*.
            self._path = Path(tempfile.mkdtemp(prefix=_PREFIX, dir=self.main))
            DiskObjectStore.init(self._path).close()
        return self.env()

    @property
    def store(self) -> BaseObjectStore:
        """The objects as a reader sees them: the quarantine's, then the repository's."""
        if self._path is None:
            return self.repo.raw.object_store
        if self._store is None:
            self._store = DiskObjectStore(self._path, alternates=[self.main])
        return self._store

    def writable_store(self) -> BaseObjectStore:
        """The store a dulwich fetch writes into (the folder is made now)."""
        self.prepare()
        return self.store

    def env(self) -> dict[str, str]:
        """What points a git process at the quarantine, reading the repository's objects
        too (nothing when no folder was made)."""
        if self._path is None:
            return {}
        return {"GIT_OBJECT_DIRECTORY": str(self._path),
                "GIT_ALTERNATE_OBJECT_DIRECTORIES": str(self.main)}

    def has(self, sha: str) -> bool:
        return _oid(sha) in self.store

    def admit(self) -> None:
        """Move every object into the repository: loose ones, then packs, each pack's
        index last (a pack counts once its index is there).

        Raises:
            GitError: an object could not be moved (the quarantine is left to close()).
        """
        try:
            self._admit()
        except OSError as exc:
            raise GitError(f"cannot move fetched objects into {self.main}: {exc}; run the "
                           "command again") from None

    def _admit(self) -> None:
        if self._path is None:
            return
        for folder in sorted(self._path.iterdir()):
            if len(folder.name) != 2 or not folder.is_dir():
                continue
            (self.main / folder.name).mkdir(exist_ok=True)
            for loose in folder.iterdir():
                os.replace(loose, self.main / folder.name / loose.name)
        packs = self._path / "pack"
        order = {".idx": 2, ".keep": 3}  # .pack, .rev, ... first
        for path in sorted(packs.glob("pack-*"), key=lambda p: (order.get(p.suffix, 1), p.name)):
            if path.suffix != ".keep":
                os.replace(path, self.main / "pack" / path.name)

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
        if self._path is not None:
            shutil.rmtree(self._path, ignore_errors=True)


_PREFIX = "tmp_objdir-modelbox-"
_STALE = 24 * 3600  # seconds: no fetch takes that long; a younger one may still be running


def _remove_stale(objects: Path) -> None:
    """Remove the quarantines a killed modelbox left (a day old: another pull may be
    filling a younger one)."""
    now = time.time()
    for folder in objects.glob(f"{_PREFIX}*"):
        with contextlib.suppress(OSError):
            if now - folder.stat().st_mtime > _STALE:
                shutil.rmtree(folder, ignore_errors=True)


def check_commits(repo: GitRepo, heads: Iterable[str], known: Iterable[str], source: str,
                  quarantine: Quarantine | None = None) -> None:
    """Refuse the commits reachable from ``heads`` and from none of ``known`` if one of
    them holds a path or mode that may not be written (``source`` names the remote);
    ``quarantine``: where the new objects wait.

    Raises:
        UnsafePathError: naming the first such path and its commit.
    """
    heads = list(heads)
    exclude = [sha for sha in known if repo.has_object(sha)]
    git = gitcli.git_program()
    store = quarantine.store if quarantine is not None else repo.raw.object_store
    entries = (gitcli.new_entries(git, repo.git_dir, heads, exclude,
                                  quarantine.env() if quarantine is not None else None)
               if git is not None else _new_entries(store, heads, exclude))
    try:
        for commit, mode, path in entries:
            reason = pathcheck.unsafe_path(path) or (pathcheck.unsafe_mode(mode) if mode
                                                     else None)
            if reason is not None:
                raise UnsafePathError(f"commit {commit[:10]} from {source}", path, reason)
    except ObjectFormatException as exc:  # dulwich: git's diff-tree fails with a GitError
        raise _malformed(source, exc) from None


def check_tree(repo: GitRepo, commit: str, source: str) -> None:
    """Refuse ``commit`` if any path of its tree may not be written (a whole checkout)."""
    git = gitcli.git_program()
    store = repo.raw.object_store
    entries = (gitcli.tree_entries(git, repo.git_dir, commit) if git is not None
               else _tree_diff(_Trees(store), None, _commit(store, commit).tree.decode()))
    try:
        for mode, path in entries:
            pathcheck.check_path(path, f"commit {commit[:10]} from {source}", mode)
    except ObjectFormatException as exc:
        raise _malformed(source, exc) from None


def unsafe_paths(repo: GitRepo, commit: str,
                 listed: Iterable[tuple[int, str]] | None = None) -> list[tuple[str, str]]:
    """``(path, why)`` of every path of ``commit``'s tree that may not be written: what
    ``modelbox check`` reports of a registry that took such a commit before these checks.
    ``listed``: the tree's ``(mode, path)`` entries when the caller has them already
    (:meth:`modelbox.refs.listing.ListedSnapshot.entries`).

    Raises:
        GitError: the tree cannot be read (a malformed object).
    """
    git = gitcli.git_program()
    store = repo.raw.object_store
    try:
        entries = list(listed if listed is not None
                       else gitcli.tree_entries(git, repo.git_dir, commit) if git is not None
                       else _tree_diff(_Trees(store), None,
                                       _commit(store, commit).tree.decode()))
    except ObjectFormatException as exc:
        raise GitError(f"cannot read the tree of {commit} in {repo.git_dir}: {exc}; run "
                       "`git fsck`") from None
    out = []
    for mode, path in entries:
        reason = pathcheck.unsafe_path(path) or pathcheck.unsafe_mode(mode)
        if reason is not None:
            out.append((path, reason))
    return out


def _malformed(source: str, exc: Exception) -> RemoteError:
    return RemoteError(f"refusing the commits of {source}: an object is malformed ({exc}); "
                       "nothing was changed. Ask whoever wrote it to run `git fsck`")


def _new_entries(store: BaseObjectStore, heads: list[str], exclude: list[str],
                 ) -> Iterator[tuple[str, int, str]]:
    """:func:`gitcli.new_entries` by a walk in Python (no git program)."""
    walker = Walker(store, include=[_oid(sha) for sha in heads],
                    exclude=[_oid(sha) for sha in exclude])
    trees = _Trees(store)  # a commit's trees are its child's "before": each read once
    for entry in walker:
        commit = entry.commit
        tree = commit.tree.decode()
        parents = [_commit(store, p.decode()).tree.decode() for p in commit.parents]
        for old in parents or [None]:
            for mode, path in _tree_diff(trees, old, tree):
                yield commit.id.decode(), mode, path


def _tree_diff(trees: _Trees, old: str | None, new: str) -> Iterator[tuple[int, str]]:
    """``(mode, path)`` of every entry of ``new`` that ``old`` lacks or holds otherwise,
    folders included; equal subtrees are not read. A stack, not recursion: a hostile
    tree may nest deeper than Python's recursion limit."""
    stack: list[tuple[str | None, str, str]] = [(old, new, "")]
    while stack:
        before, after, prefix = stack.pop()
        if before == after:
            continue
        olds = trees.entries(before)
        for name, (mode, sha) in trees.entries(after).items():
            previous = olds.get(name)
            if previous == (mode, sha):
                continue
            path = f"{prefix}{name}"
            yield mode, path
            if mode == pathcheck.DIRECTORY_MODE:
                was = (previous[1] if previous and previous[0] == pathcheck.DIRECTORY_MODE
                       else None)
                stack.append((was, sha, f"{path}/"))


class _Trees:
    """Trees' entries by id, the last few thousand kept: a walk reads most trees twice."""

    _KEEP = 8192

    def __init__(self, store: BaseObjectStore) -> None:
        self.store = store
        self._seen: dict[str, dict[str, tuple[int, str]]] = {}

    def entries(self, tree: str | None) -> dict[str, tuple[int, str]]:
        if tree is None:
            return {}
        found = self._seen.get(tree)
        if found is None:
            # surrogateescape: a name that is not UTF-8 reaches pathcheck, which refuses it.
            kind, raw = self.store.get_raw(_oid(tree))  # no object built, no sorting
            if kind != Tree.type_num:
                raise ObjectFormatException(f"{tree} is not a tree")
            try:
                found = {name.decode("utf-8", "surrogateescape"): (mode, sha.decode())
                         for name, mode, sha in parse_tree(raw, len(tree) // 2)}
            except ValueError as exc:  # dulwich's Python parser: a missing separator
                raise ObjectFormatException(f"tree {tree}: {exc}") from None
            if len(self._seen) >= self._KEEP:
                del self._seen[next(iter(self._seen))]
            self._seen[tree] = found
        return found


def _commit(store: BaseObjectStore, sha: str) -> Commit:
    return cast(Commit, store[_oid(sha)])


def _oid(sha: str) -> ObjectID:
    return ObjectID(sha.encode("ascii"))
