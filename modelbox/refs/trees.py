"""The files of one commit, walked tree by tree from whatever reads Git objects.

:class:`modelbox.refs.repo.Snapshot` reads the objects through dulwich's object store;
``modelbox resolve`` reads them through ``git cat-file`` (:mod:`modelbox.refs.catfile`).
Both walk the trees here, so a mode, a missing entry or a stray folder reads the same
either way.
"""

from __future__ import annotations

from typing import Protocol, cast

from dulwich.objects import Blob, ShaFile, Tree

__all__ = ["DIR_MODE", "CommitFiles", "ObjectReader"]

DIR_MODE = 0o040000


class ObjectReader(Protocol):
    def object(self, sha: str) -> ShaFile:
        """The parsed object ``sha`` (shared: never mutated)."""
        ...


class CommitFiles:
    """The files of one commit, read without touching the work tree."""

    def __init__(self, objects: ObjectReader, commit: str | None, tree: str | None) -> None:
        self.objects, self.commit, self.tree = objects, commit, tree
        self._trees: dict[str, Tree | None] = {}

    def _tree(self, path: str) -> Tree | None:
        if path in self._trees:
            return self._trees[path]
        tree: Tree | None
        if not path:
            tree = cast(Tree, self.objects.object(self.tree)) if self.tree else None
        else:
            parent_path, _, name = path.rpartition("/")
            parent = self._tree(parent_path)
            tree = None
            if parent is not None and name.encode() in parent:
                mode, sha = parent[name.encode()]
                if mode == DIR_MODE:
                    tree = cast(Tree, self.objects.object(sha.decode()))
        self._trees[path] = tree
        return tree

    def read(self, path: str) -> bytes | None:
        """The content of the file at ``path``, or None if there is none."""
        sha = self.blob_id(path)
        return None if sha is None else cast(Blob, self.objects.object(sha)).as_raw_string()

    def blob_id(self, path: str) -> str | None:
        """The id of the file at ``path`` (None if there is none), without reading it."""
        parent_path, _, name = path.rpartition("/")
        parent = self._tree(parent_path)
        if parent is None or name.encode() not in parent:
            return None
        mode, sha = parent[name.encode()]
        return None if mode == DIR_MODE else sha.decode()

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
        parent = self._tree(parent_path)
        return parent is not None and name.encode() in parent

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
