"""A Git repository seen as a store of trees, commits and refs (dulwich underneath).

Writes never go through the index: a commit's tree is built from its parent's tree plus a
set of path changes, so only the trees on the changed paths are rewritten. The work tree
is brought along afterwards by :mod:`modelbox.refs.worktree`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from dulwich.errors import NotGitRepository
from dulwich.objects import Blob, Commit, ObjectID, ShaFile, Tag, Tree
from dulwich.refs import Ref
from dulwich.repo import Repo, get_user_identity

from modelbox.errors import ConcurrentUpdateError, GitError

_DIR_MODE = 0o040000
_FILE_MODE = 0o100644


def _oid(sha: str) -> ObjectID:
    return ObjectID(sha.encode("ascii"))


def _ref(name: str) -> Ref:
    return Ref(name.encode())


def blob_sha(data: bytes) -> str:
    """The Git object id of a blob with this content."""
    return Blob.from_string(data).id.decode("ascii")


@dataclass(frozen=True)
class PathChange:
    path: str
    old_sha: str | None
    new_sha: str | None


class Snapshot:
    """The files of one commit, read without touching the work tree."""

    def __init__(self, repo: GitRepo, commit: str | None, tree: str | None) -> None:
        self.repo, self.commit, self.tree = repo, commit, tree
        self._trees: dict[str, Tree | None] = {}

    def _tree(self, path: str) -> Tree | None:
        if path in self._trees:
            return self._trees[path]
        tree: Tree | None
        if not path:
            tree = cast(Tree, self.repo.object(self.tree)) if self.tree else None
        else:
            parent_path, _, name = path.rpartition("/")
            parent = self._tree(parent_path)
            tree = None
            if parent is not None and name.encode() in parent:
                mode, sha = parent[name.encode()]
                if mode == _DIR_MODE:
                    tree = cast(Tree, self.repo.object(sha.decode()))
        self._trees[path] = tree
        return tree

    def read(self, path: str) -> bytes | None:
        """The content of the file at ``path``, or None if there is none."""
        parent_path, _, name = path.rpartition("/")
        parent = self._tree(parent_path)
        if parent is None or name.encode() not in parent:
            return None
        mode, sha = parent[name.encode()]
        if mode == _DIR_MODE:
            return None
        return cast(Blob, self.repo.object(sha.decode())).as_raw_string()

    def listdir(self, path: str) -> list[tuple[str, bool]]:
        """Sorted ``(name, is_directory)`` entries of the directory at ``path``."""
        tree = self._tree(path)
        if tree is None:
            return []
        return [
            (entry.path.decode(), entry.mode == _DIR_MODE) for entry in tree.iteritems()
        ]

    def is_dir(self, path: str) -> bool:
        return self._tree(path) is not None

    def tree_id(self, path: str) -> str | None:
        tree = self._tree(path)
        return tree.id.decode() if tree is not None else None


class GitRepo:
    """A repository with or without a work tree."""

    def __init__(self, repo: Repo) -> None:
        self._repo = repo
        self.git_dir = Path(repo.controldir())
        self.root: Path | None = None if repo.bare else Path(repo.path)

    @classmethod
    def open(cls, path: Path) -> GitRepo:
        """Open the repository whose top level (or git dir) is ``path``."""
        try:
            return cls(Repo(str(path)))
        except NotGitRepository:
            raise GitError(f"{path} is not a Git repository") from None

    @classmethod
    def discover(cls, start: Path) -> GitRepo | None:
        """The repository containing ``start``, or None."""
        try:
            return cls(Repo.discover(str(start)))
        except NotGitRepository:
            return None

    @classmethod
    def init(cls, path: Path, branch: str) -> GitRepo:
        path.mkdir(parents=True, exist_ok=True)
        return cls(Repo.init(str(path), default_branch=branch.encode()))

    def close(self) -> None:
        self._repo.close()

    # -- objects -------------------------------------------------------------------------
    def object(self, sha: str) -> ShaFile:
        try:
            return self._repo.object_store[_oid(sha)]
        except KeyError:
            raise GitError(f"object {sha} is missing from {self.git_dir}; run `git fsck`") from None

    def has_object(self, sha: str) -> bool:
        return _oid(sha) in self._repo.object_store

    def snapshot(self, commit: str | None) -> Snapshot:
        if commit is None:
            return Snapshot(self, None, None)
        obj = self.object(commit)
        if not isinstance(obj, Commit):
            raise GitError(f"{commit} is not a commit")
        return Snapshot(self, commit, obj.tree.decode())

    def commit_info(self, sha: str) -> Commit:
        obj = self.object(sha)
        if not isinstance(obj, Commit):
            raise GitError(f"{sha} is not a commit")
        return obj

    # -- refs ----------------------------------------------------------------------------
    def ref(self, name: str) -> str | None:
        try:
            return self._repo.refs[_ref(name)].decode()
        except KeyError:
            return None

    def head_branch(self) -> str | None:
        """The branch HEAD points to (``main``), or None when HEAD is detached."""
        target = self._repo.refs.get_symrefs().get(_ref("HEAD"))
        if target is None or not target.startswith(b"refs/heads/"):
            return None
        return target[len(b"refs/heads/") :].decode()

    def refs_under(self, prefix: str) -> dict[str, str]:
        """Every ref whose name starts with ``prefix`` (``refs/modelbox/``) -> its sha."""
        keys = self._repo.refs.keys(base=_ref(prefix.rstrip("/")))
        base = prefix.rstrip("/") + "/"
        out = {}
        for key in keys:
            sha = self._repo.refs[_ref(base + key.decode())]
            out[base + key.decode()] = sha.decode()
        return out

    def update_ref(self, name: str, old: str | None, new: str, message: str) -> None:
        """Move ``name`` from ``old`` to ``new``; raise ConcurrentUpdateError if it moved."""
        refs = self._repo.refs
        if old is None:
            done = refs.add_if_new(_ref(name), _oid(new), message=message.encode())
        else:
            done = refs.set_if_equals(_ref(name), _oid(old), _oid(new), message=message.encode())
        if not done:
            raise ConcurrentUpdateError(
                f"{name} moved while this command ran; run the command again"
            )

    def set_ref(self, name: str, sha: str) -> None:
        self._repo.refs[_ref(name)] = _oid(sha)

    def delete_ref(self, name: str) -> None:
        self._repo.refs.remove_if_equals(_ref(name), None)

    # -- writing -------------------------------------------------------------------------
    def identity(self) -> str:
        """``Name <email>`` of the acting user, as git would pick it."""
        config = self._repo.get_config_stack()
        return get_user_identity(config, "AUTHOR").decode("utf-8", "replace")

    def build_tree(self, base_tree: str | None, changes: Mapping[str, bytes | None]) -> str:
        """Store the tree ``base_tree`` + ``changes`` (None deletes a file or directory)."""
        nested: dict[str, object] = {}
        for path, data in changes.items():
            node = nested
            *dirs, leaf = path.split("/")
            for part in dirs:
                child = node.setdefault(part, {})
                if not isinstance(child, dict):
                    raise GitError(f"cannot write below the file {path}")
                node = child
            node[leaf] = data
        new = self._apply(base_tree, nested)
        if new is None:
            empty = Tree()
            self._repo.object_store.add_object(empty)
            return empty.id.decode()
        return new

    def _apply(self, tree_sha: str | None, changes: dict[str, object]) -> str | None:
        tree = cast(Tree, self.object(tree_sha)) if tree_sha else Tree()
        tree = Tree.from_raw_string(Tree.type_num, tree.as_raw_string()) if tree_sha else tree
        store = self._repo.object_store
        for name, change in changes.items():
            key = name.encode()
            if isinstance(change, dict):
                current = tree[key] if key in tree else None  # noqa: SIM401 - Tree has no .get
                sub = current[1].decode() if current and current[0] == _DIR_MODE else None
                new_sub = self._apply(sub, change)
                if new_sub is None:
                    if key in tree:
                        del tree[key]
                else:
                    tree[key] = (_DIR_MODE, _oid(new_sub))
            elif change is None:
                if key in tree:
                    del tree[key]
            else:
                blob = Blob.from_string(cast(bytes, change))
                store.add_object(blob)
                tree[key] = (_FILE_MODE, blob.id)
        if not len(tree):
            return None
        store.add_object(tree)
        return tree.id.decode()

    def write_commit(
        self, *, tree: str, parents: list[str], message: str, author: str
    ) -> str:
        """Store a commit object (no ref moves) and return its sha."""
        commit = Commit()
        commit.tree = _oid(tree)
        commit.parents = [_oid(p) for p in parents]
        commit.author = commit.committer = author.encode()
        now = int(time.time())
        offset = _local_offset(now)
        commit.author_time = commit.commit_time = now
        commit.author_timezone = commit.commit_timezone = offset
        commit.encoding = b"UTF-8"
        commit.message = message.encode()
        self._repo.object_store.add_object(commit)
        return commit.id.decode()

    def make_tag(self, name: str, target: str, message: str) -> str:
        """Store a deterministic annotated tag object pointing at the tree ``target``."""
        tag = Tag()
        tag.object = (Tree, _oid(target))
        tag.name = name.encode()
        tag.tagger = b"modelbox <modelbox@localhost>"
        tag.tag_time = 0
        tag.tag_timezone = 0
        tag.message = message.encode()
        self._repo.object_store.add_object(tag)
        return tag.id.decode()

    def tag_target(self, sha: str) -> tuple[str, str] | None:
        """``(target sha, message)`` of an annotated tag object, or None for other objects."""
        obj = self.object(sha)
        if not isinstance(obj, Tag):
            return None
        return obj.object[1].decode(), obj.message.decode("utf-8", "replace")

    def changed_paths(self, old_tree: str | None, new_tree: str | None) -> Iterator[PathChange]:
        """Files that differ between two trees (directories are descended, not listed)."""
        from dulwich.diff_tree import tree_changes

        old = _oid(old_tree) if old_tree else None
        new = _oid(new_tree) if new_tree else None
        for change in tree_changes(self._repo.object_store, old, new):
            path = (change.new or change.old)
            assert path is not None and path.path is not None
            yield PathChange(
                path.path.decode(),
                change.old.sha.decode() if change.old and change.old.sha else None,
                change.new.sha.decode() if change.new and change.new.sha else None,
            )


def _local_offset(now: int) -> int:
    local = time.localtime(now)
    return local.tm_gmtoff if local.tm_gmtoff is not None else 0

