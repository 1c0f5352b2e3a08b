"""The files of one commit, walked tree by tree from whatever reads Git objects.

:class:`modelbox.refs.repo.Snapshot` reads the objects through dulwich's object store;
``modelbox resolve`` reads them through ``git cat-file`` (:mod:`modelbox.refs.catfile`).
Both walk the trees here, so a mode, a missing entry or a stray folder reads the same
either way.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol, cast

from dulwich.objects import Blob, ShaFile, TreeEntry

__all__ = ["DIR_MODE", "CommitFiles", "ObjectReader", "TreeLike"]

DIR_MODE = 0o040000


class TreeLike(Protocol):
    """What is read of a tree here: a dulwich ``Tree``, or one kept raw
    (:class:`modelbox.refs.rawtree.RawTree`)."""

    @property
    def id(self) -> bytes: ...

    def __contains__(self, name: bytes) -> bool: ...

    def __getitem__(self, name: bytes) -> tuple[int, bytes]: ...

    def iteritems(self) -> Iterator[TreeEntry]: ...


class ObjectReader(Protocol):
    def object(self, sha: str) -> ShaFile:
        """The parsed object ``sha`` (shared: never mutated)."""
        ...

    def tree(self, sha: str) -> TreeLike:
        """The tree ``sha``, to look entries up in (shared: never mutated)."""
        ...


class CommitFiles:
    """The files of one commit, read without touching the work tree."""

    def __init__(self, objects: ObjectReader, commit: str | None, tree: str | None) -> None:
        self.objects, self.commit, self.tree = objects, commit, tree
        self._trees: dict[str, TreeLike | None] = {}

    def _tree(self, path: str) -> TreeLike | None:
        if path in self._trees:
            return self._trees[path]
        tree: TreeLike | None
        if not path:
            tree = self.objects.tree(self.tree) if self.tree else None
        else:
            parent_path, _, name = path.rpartition("/")
            found = self._entry(parent_path, name)
            tree = None
            if found is not None and found[0] == DIR_MODE:
                tree = self.objects.tree(found[1].decode())
        self._trees[path] = tree
        return tree

    def read(self, path: str) -> bytes | None:
        """The content of the file at ``path``, or None if there is none."""
        sha = self.blob_id(path)
        return None if sha is None else cast(Blob, self.objects.object(sha)).as_raw_string()

    def _entry(self, folder: str, name: str) -> tuple[int, bytes] | None:
        """(mode, id) of ``name`` in the folder ``folder``, or None: one lookup."""
        parent = self._tree(folder)
        if parent is None:
            return None
        try:
            return parent[name.encode()]
        except KeyError:
            return None

    def blob_id(self, path: str) -> str | None:
        """The id of the file at ``path`` (None if there is none), without reading it."""
        parent_path, _, name = path.rpartition("/")
        found = self._entry(parent_path, name)
        return None if found is None or found[0] == DIR_MODE else found[1].decode()

    def listdir(self, path: str) -> list[tuple[str, bool]]:
        """Sorted ``(name, is_directory)`` entries of the directory at ``path``."""
        tree = self._tree(path)
        if tree is None:
            return []
        return [
            (entry.path.decode(), entry.mode == DIR_MODE) for entry in tree.iteritems()
        ]

    def exists(self, path: str) -> bool:
        """Whether a file or directory is at ``path`` (the root always is)."""
        parent_path, _, name = path.rpartition("/")
        if not name:
            return True
        return self._entry(parent_path, name) is not None

    def is_dir(self, path: str) -> bool:
        return self._tree(path) is not None

    def tree_id(self, path: str) -> str | None:
        tree = self._tree(path)
        return tree.id.decode() if tree is not None else None

    def forget_trees(self) -> None:
        """Drop the trees found by path so far (a long read, one model after another,
        would otherwise hold every folder's tree); they are found again on demand, the
        repository keeping the recently read objects."""
        self._trees.clear()
