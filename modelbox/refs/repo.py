"""A Git repository seen as a store of trees, commits and refs (dulwich underneath).

Writes never go through the index: a commit's tree is built from its parent's tree plus a
set of path changes, so only the trees on the changed paths are rewritten. The work tree
is brought along afterwards by :mod:`modelbox.refs.worktree`.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import sys
import time
import weakref
import zlib
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple, cast

from dulwich.config import (
    Config,
    StackedConfig,
    get_win_system_paths,
    get_xdg_config_home_path,
)
from dulwich.errors import NotGitRepository, ObjectFormatException
from dulwich.file import FileLocked
from dulwich.objects import Blob, Commit, ObjectID, ShaFile, Tag, Tree
from dulwich.refs import Ref
from dulwich.repo import Repo, get_user_identity

from modelbox.errors import ConcurrentUpdateError, GitError, IdentityError
from modelbox.refs.ownership import check_owner
from modelbox.refs.packedrefs import use_fast_packed_refs
from modelbox.refs.packs import PACK_BYTES, PACK_OBJECTS, PackWriter
from modelbox.refs.rawtree import RawTree, tree_key
from modelbox.refs.trees import DIR_MODE, CommitFiles

_NONE: tuple[int, str | None] = (0, None)
_OBJECT_CACHE_SIZE = 50_000
# ...and about this many bytes: at 100,000 versions a namespace tree is ~16 KB raw, ~120 KB
# parsed, and a batch makes one per commit (a count alone let the cache reach gigabytes).
_OBJECT_CACHE_BYTES = 32 * 1024 * 1024
# A blob of at least this size is never cached: one would evict every tree the next write
# walks, and each version of a document that grows (a watcher's series, rewritten at every
# checkpoint) would stay held until the cache filled: 32 MB of stale versions. Instead the
# batch that wrote it keeps it until the batch ends (up to a total), to write the work tree
# from: reading a 60 MB one back cost a third of a metrics commit.
_RETAINED_BLOB = 1024 * 1024
_RETAINED_BYTES = 256 * 1024 * 1024
_PARSED_TREE_WEIGHT = 8  # a parsed tree's size in memory / its raw size (7.4 measured)
_PACK_THRESHOLD = 64
_FILE_MODE = 0o100644


def _oid(sha: str) -> ObjectID:
    return ObjectID(sha.encode("ascii"))


def _ref(name: str) -> Ref:
    return Ref(name.encode())


def _malformed(sha: str, git_dir: Path, exc: Exception) -> GitError:
    return GitError(f"object {sha} in {git_dir} is malformed ({exc}); run `git fsck`")


def _bad_config(path: Path, exc: ValueError) -> GitError:
    """dulwich reads numbers from the repository's config as it opens it (a
    ``core.compression`` that is not one): one line, as git's own refusal is."""
    return GitError(f"the Git repository at {path} cannot be opened: a setting in its "
                    f"config is not valid ({exc}); `git config --list --show-origin` shows "
                    "them, and git refuses it too")


def blob_sha(data: bytes) -> str:
    """The Git object id of a blob with this content."""
    return Blob.from_string(data).id.decode("ascii")


class PathChange(NamedTuple):
    path: str
    old_sha: str | None
    new_sha: str | None


class Snapshot(CommitFiles):
    """The files of one commit of a repository read through dulwich."""

    def __init__(self, repo: GitRepo, commit: str | None, tree: str | None) -> None:
        super().__init__(repo, commit, tree)
        self.repo = repo


def user_identity(config: Config | None = None) -> str:
    """``Name <email>`` for a new commit, picked as git picks the author: the name from
    ``GIT_AUTHOR_NAME``, ``user.name`` or the account; the email from ``GIT_AUTHOR_EMAIL``,
    ``user.email`` or ``EMAIL``. ``config`` defaults to the global and system files (a
    repository not created yet).

    Unlike git, the email is never guessed from the host name (as with git's
    ``user.useConfigOnly``): ``root@host`` names nobody, and the audit log must.

    Raises:
        IdentityError: no email, or an empty name.
    """
    config = config if config is not None else StackedConfig(StackedConfig.default_backends())

    def setting(env: str, key: str) -> str | None:
        if env in os.environ:
            return os.environ[env]
        try:
            value = config.get(("user",), key)
        except KeyError:
            return None
        return value.decode("utf-8", "replace")

    email = setting("GIT_AUTHOR_EMAIL", "email") or os.environ.get("EMAIL")
    email = (email or "").strip().removeprefix("<").removesuffix(">")
    name = setting("GIT_AUTHOR_NAME", "name")
    if name is None:
        name = get_user_identity(config).decode("utf-8", "replace").rpartition(" <")[0]
    if not email or not name.strip():
        raise IdentityError()
    return f"{name.strip()} <{email}>"


class GitRepo:
    """A repository with or without a work tree."""

    def __init__(self, repo: Repo) -> None:
        try:  # before a setting of it is acted on (modelbox.refs.ownership)
            check_owner(Path(repo.controldir()), None if repo.bare else Path(repo.path))
        except BaseException:
            repo.close()
            raise
        self._repo = repo
        use_fast_packed_refs(repo.refs)
        self.git_dir = Path(repo.controldir())
        self.root: Path | None = None if repo.bare else Path(repo.path)
        # Git objects never change, so parsed ones are kept: a write re-reads the same few
        # trees (root, models/, the namespace) that the previous write just produced.
        # (a tree this process made is kept as its raw bytes, modelbox.refs.rawtree)
        self._objects: OrderedDict[str, tuple[ShaFile | RawTree, int]] = OrderedDict()
        self._cached_bytes = 0
        self._identity: str | None = None
        self._config: tuple[tuple[object, ...], StackedConfig] | None = None
        # Objects of an unpublished batch: the first few held here (a small batch writes
        # them loose at the end, as git does), then streamed into a pack (:mod:`.packs`).
        self._pending: dict[str, ShaFile] | None = None
        self._packing: PackWriter | None = None
        self._loose_level: int | None = None  # see _loose_compression
        # The large blobs of the batch being written, until it ends: the work tree is then
        # written from them, not from the object database it just compressed them into.
        self._retained: OrderedDict[str, bytes] = OrderedDict()
        self._retained_bytes = 0
        # Closed when this is collected, or at exit before the modules are torn down, for a
        # script that never calls close(): dulwich's packs warn from __del__, and at exit
        # that warning's own import fails, one traceback per open pack file on stderr.
        # close() stays callable any number of times (dulwich's is), this too.
        weakref.finalize(self, repo.close)

    @classmethod
    def open(cls, path: Path) -> GitRepo:
        """Open the repository whose top level (or git dir) is ``path``."""
        try:
            return cls(Repo(str(path)))
        except NotGitRepository:
            raise GitError(f"{path} is not a Git repository") from None
        except ValueError as exc:
            raise _bad_config(path, exc) from None

    @classmethod
    def discover(cls, start: Path) -> GitRepo | None:
        """The repository containing ``start``, or None."""
        try:
            return cls(Repo.discover(str(start)))
        except NotGitRepository:
            return None
        except ValueError as exc:
            raise _bad_config(start, exc) from None

    @classmethod
    def init(cls, path: Path, branch: str) -> GitRepo:
        path.mkdir(parents=True, exist_ok=True)
        check_owner(path, None)  # before .git is made in another user's folder, not after
        return cls(Repo.init(str(path), default_branch=branch.encode()))

    def close(self) -> None:
        self._repo.close()

    @property
    def common_dir(self) -> Path:
        """The git directory shared by every worktree of this repository."""
        return Path(self._repo.commondir())

    @property
    def raw(self) -> Repo:
        """The dulwich repository underneath (for the other ``modelbox.refs`` modules)."""
        return self._repo

    # -- objects -------------------------------------------------------------------------
    def object(self, sha: str) -> ShaFile:
        """The parsed object ``sha`` (callers must not mutate it: it is shared)."""
        obj = self._in_memory(sha)
        if obj is not None:
            return obj
        try:
            obj = self._read(sha)
        except KeyError:
            raise GitError(f"object {sha} is missing from {self.git_dir}; run `git fsck`") from None
        except ObjectFormatException as exc:  # a hostile or damaged object
            raise _malformed(sha, self.git_dir, exc) from None
        self._remember(sha, obj)
        return obj

    def tree(self, sha: str) -> Tree | RawTree:
        """The tree ``sha`` for looking entries up (:class:`~modelbox.refs.trees.
        CommitFiles`): one this process wrote stays unparsed (:mod:`.rawtree`)."""
        cached = self._objects.get(sha)
        if cached is not None and isinstance(cached[0], RawTree):
            self._objects.move_to_end(sha)
            return cached[0]
        obj = self.object(sha)
        if not isinstance(obj, Tree):  # a folder entry naming a blob: a crafted commit
            raise GitError(f"{sha} is not a tree")
        return obj

    def _in_memory(self, sha: str) -> ShaFile | None:
        """The object ``sha`` if this process has it: cached, or of the unpublished batch."""
        cached = self._objects.get(sha)
        if cached is not None:
            self._objects.move_to_end(sha)
            if isinstance(cached[0], RawTree):
                parsed = Tree.from_raw_string(Tree.type_num, cached[0].raw, _oid(sha))
                self._objects[sha] = (parsed, _weight(parsed))
                self._cached_bytes += _weight(parsed) - cached[1]
                return parsed
            return cached[0]
        obj = self._held(sha)
        if obj is not None:
            self._remember(sha, obj)
        return obj

    def _read(self, sha: str) -> ShaFile:
        """Read an object, looking twice: a repack (the background maintenance, or the
        user's ``git gc``) may have packed a loose object and deleted it between dulwich's
        look in the packs and its look in the loose folder; the second look finds the new
        pack, as git's readers do after ``reprepare_packed_git``."""
        try:
            return self._repo.object_store[_oid(sha)]
        except KeyError:
            return self._repo.object_store[_oid(sha)]

    def _held(self, sha: str) -> ShaFile | None:
        """An object of the unpublished batch (held, or in the pack being written)."""
        if self._pending is not None and sha in self._pending:
            return self._pending[sha]
        if self._packing is None:
            return None
        found = self._packing.read(bytes.fromhex(sha))
        if found is None:
            return None
        return ShaFile.from_raw_string(found[0], found[1], _oid(sha))

    def _remember(self, sha: str, obj: ShaFile | RawTree) -> None:
        if sha in self._objects:
            self._objects.move_to_end(sha)
            return
        size = obj.weight if isinstance(obj, RawTree) else _weight(obj)
        if size >= _RETAINED_BLOB and isinstance(obj, Blob):
            return
        self._objects[sha] = (obj, size)
        self._cached_bytes += size
        while len(self._objects) > 1 and (len(self._objects) > _OBJECT_CACHE_SIZE
                                          or self._cached_bytes > _OBJECT_CACHE_BYTES):
            self._cached_bytes -= self._objects.popitem(last=False)[1][1]

    def _add(self, obj: ShaFile) -> str:
        sha = obj.id.decode()
        if isinstance(obj, Blob) and (self._packing is not None or self._pending is not None):
            self._retain(sha, obj)
        if self._packing is not None:
            self._pack(sha, obj.type_num, obj.as_raw_string())
        elif self._pending is not None:
            self._pending[sha] = obj
            if len(self._pending) > _PACK_THRESHOLD:  # many: stream them into a pack
                self._packing = PackWriter(self._pack_dir(), fsync=True)
                for held in self._pending.values():
                    self._packing.add(bytes.fromhex(held.id.decode()), held.type_num,
                                      held.as_raw_string())
                self._pending = {}
        else:
            self._add_loose(obj)
        self._remember(sha, obj)
        return sha

    def _pack(self, sha: str, type_num: int, raw: bytes,
              base: tuple[bytes, bytes] | None = None) -> None:
        assert self._packing is not None
        self._packing.add(bytes.fromhex(sha), type_num, raw, base)
        if len(self._packing) >= PACK_OBJECTS or self._packing.size >= PACK_BYTES:
            self._finish_pack()

    def _pack_dir(self) -> Path:
        return Path(os.fsdecode(self._repo.object_store.path)) / "pack"

    def _finish_pack(self) -> None:
        """Move the pack being written into the object database (readable by all)."""
        packing, self._packing = self._packing, None
        if packing is not None:
            packing.finish()
            self._packing = PackWriter(self._pack_dir(), fsync=True)

    def _add_loose(self, obj: ShaFile) -> None:
        """Write one loose object. dulwich writes it through ``<object>.lock``; one that a
        process killed mid-write left behind would refuse the same object forever (a
        recovery re-commits identical content). The object is content-addressed, so it is
        then written through a temporary file of our own and renamed into place, which
        leaves a concurrent writer of the same object undisturbed."""
        store = self._repo.object_store
        store.loose_compression_level = level = self._loose_compression()
        try:
            store.add_object(obj)
        except FileLocked:
            sha = obj.id.decode()
            path = Path(os.fsdecode(store.path)) / sha[:2] / sha[2:]
            if path.exists():
                return
            tmp = path.with_name(f"tmp_obj_modelbox_{os.getpid()}_{sha[2:10]}")
            with open(tmp, "wb") as f:
                f.write(obj.as_legacy_object(compression_level=level))
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o444)
            os.replace(tmp, path)

    def _loose_compression(self) -> int:
        """The zlib level git writes loose objects at: ``core.looseCompression``, else
        ``core.compression``, else 1, its fastest (dulwich alone uses zlib's default, 6,
        which took a 60 MB series document 1.1 s where level 1 takes 0.3 s)."""
        if self._loose_level is None:
            self._loose_level = 1
            for key in ("compression", "looseCompression"):  # the second one wins
                value = self.git_setting("core", key)
                if value is not None:
                    with contextlib.suppress(ValueError):  # (git refuses to start then)
                        self._loose_level = max(-1, min(9, int(value)))
        return self._loose_level

    def _retain(self, sha: str, blob: Blob) -> None:
        """Keep a large blob of the batch being written until it ends (see copy_blob)."""
        size = blob.raw_length()
        if size < _RETAINED_BLOB:
            return
        self._retained[sha] = blob.as_raw_string()  # (the bytes it was made from: no copy)
        self._retained_bytes += size
        while self._retained_bytes > _RETAINED_BYTES:
            self._retained_bytes -= len(self._retained.popitem(last=False)[1])

    def hold_objects(self) -> None:
        """Hold new objects back until :meth:`flush_pending` (or discard them): a few in
        memory, the rest streamed into packs that only a published ref makes reachable."""
        self._pending = {}

    def flush_pending(self) -> None:
        """Write the held objects: loose when few (as git does), the pack being written
        when many (finished into the object database, fsynced)."""
        pending, self._pending = self._pending or {}, None
        packing, self._packing = self._packing, None
        if packing is not None:
            packing.finish()
        for obj in pending.values():
            self._add_loose(obj)

    def discard_pending(self) -> None:
        """Forget the unpublished objects. Packs already finished stay: nothing refers to
        their objects (git's gc prunes them); the one being written is deleted."""
        for sha in self._pending or {}:
            self._drop(sha)
        self._pending = None
        self._retained.clear()
        self._retained_bytes = 0
        packing, self._packing = self._packing, None
        if packing is not None:
            # Its objects are gone: none may be served from the cache any more.
            for sha in [s for s in self._objects if bytes.fromhex(s) in packing]:
                self._drop(sha)
            packing.abort()

    def _drop(self, sha: str) -> None:
        held = self._objects.pop(sha, None)
        if held is not None:
            self._cached_bytes -= held[1]

    def raw_commit(self, sha: str) -> bytes:
        """A commit's raw bytes, without building a dulwich object (history walks)."""
        cached = self._objects.get(sha)
        held = cached[0] if cached is not None else self._held(sha)
        if isinstance(held, RawTree):
            raise GitError(f"{sha} is not a commit")
        if held is not None:
            return held.as_raw_string()
        store = self._repo.object_store
        try:
            try:
                type_num, raw = store.get_raw(_oid(sha))
            except KeyError:  # looked again: see _read
                type_num, raw = store.get_raw(_oid(sha))
        except KeyError:
            raise GitError(f"commit {sha} is missing from {self.git_dir}; run `git fsck`") from None
        except ObjectFormatException as exc:
            raise _malformed(sha, self.git_dir, exc) from None
        if type_num != Commit.type_num:
            raise GitError(f"{sha} is not a commit")
        return raw

    def copy_blob(self, sha: str, out: BinaryIO) -> None:
        """Write the content of the blob ``sha`` to ``out``. A loose blob that is not in
        memory is inflated a chunk at a time, its id checked as it goes (a damaged one is
        the GitError :meth:`object` raises, once ``out`` has taken the bytes: write to a
        temporary file), where reading it whole took several copies of it at once."""
        retained = self._retained.get(sha)
        if retained is not None:  # just written by this batch
            out.write(retained)
            return
        obj = self._in_memory(sha)
        if obj is None and len(sha) == 40:
            loose = Path(os.fsdecode(self._repo.object_store.path)) / sha[:2] / sha[2:]
            try:
                stream = open(loose, "rb")  # noqa: SIM115 (closed below)
            except (FileNotFoundError, NotADirectoryError):
                pass  # packed (or just repacked): read as any object
            else:
                with stream:
                    _inflate_blob(sha, stream, out, self.git_dir)
                return
        if obj is None:
            obj = self.object(sha)
        if not isinstance(obj, Blob):
            raise GitError(f"{sha} is not a blob")
        for chunk in obj.as_raw_chunks():
            out.write(chunk)

    def blob_data(self, sha: str) -> bytes:
        """The content of the object ``sha`` (a blob), as :meth:`Snapshot.read` gives it."""
        return self.object(sha).as_raw_string()

    def tree_entries(self, tree: str) -> list[tuple[str, bool, str]]:
        """``(name, is_directory, sha)`` of each entry of the tree ``tree``."""
        obj = self.object(tree)
        if not isinstance(obj, Tree):
            raise GitError(f"{tree} is not a tree")
        return [(e.path.decode(), e.mode == DIR_MODE, e.sha.decode()) for e in obj.iteritems()]

    def reachable_blobs(
        self, roots: Iterable[str], folder: str, *, index: bool = False
    ) -> set[str] | None:
        """Ids of the ``*.json`` blobs below a ``folder`` path segment (``_artifacts``) in
        every tree reachable from ``roots`` (commits or tags), and with ``index`` in the
        index of every worktree, walked by ``git rev-list`` in C — or None when the git
        CLI is not installed (callers then walk in Python).

        rev-list names each object by the first path it meets it at; a pointer blob is only
        ever stored under ``_artifacts/``, so no pointer can hide behind another path.
        """
        git = shutil.which("git")
        if git is None:
            return None
        proc = subprocess.run(
            [git, "--git-dir", str(self.git_dir), "rev-list", "--objects", "--stdin",
             *(["--indexed-objects"] if index else [])],
            input="\n".join(roots) + "\n", capture_output=True, text=True, check=False,
            env={k: v for k, v in os.environ.items() if not k.startswith("GIT_")},
        )
        if proc.returncode != 0:
            raise GitError(f"git rev-list failed in {self.git_dir}: {proc.stderr.strip()}")
        marker = f"/{folder}/"
        found = set()
        for line in proc.stdout.splitlines():
            sha, _, path = line.partition(" ")
            if path.endswith(".json") and marker in f"/{path}":
                found.add(sha)
        return found

    def has_object(self, sha: str) -> bool:
        return (sha in (self._pending or {})
                or (self._packing is not None and bytes.fromhex(sha) in self._packing)
                or _oid(sha) in self._repo.object_store)

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
        # read_ref gives HEAD's raw content; get_symrefs() would read every ref there is.
        raw = self._repo.refs.read_ref(_ref("HEAD")) or b""
        prefix = b"ref: refs/heads/"
        return raw[len(prefix) :].decode().strip() if raw.startswith(prefix) else None

    def refs_under(self, prefix: str) -> dict[str, str]:
        """Every ref whose name starts with ``prefix`` (``refs/modelbox/``) -> its sha."""
        # The folder with its slash: dulwich matches packed names by prefix, so without it
        # `.../yolo` also took `.../yolo2/prod`, as `2/prod` under `.../yolo/`.
        base = prefix.rstrip("/") + "/"
        keys = self._repo.refs.keys(base=_ref(base))
        out = {}
        for key in keys:
            sha = self._repo.refs[_ref(base + key.decode())]
            out[base + key.decode()] = sha.decode()
        return out

    def update_ref(self, name: str, old: str | None, new: str, message: str) -> None:
        """Move ``name`` from ``old`` to ``new``; raise ConcurrentUpdateError if it moved."""
        refs, who = self._repo.refs, self._reflog_identity()
        try:
            if old is None:
                done = refs.add_if_new(_ref(name), _oid(new), committer=who,
                                       message=message.encode())
            else:
                done = refs.set_if_equals(
                    _ref(name), _oid(old), _oid(new), committer=who, message=message.encode()
                )
        except FileLocked as exc:
            raise _ref_locked(name, exc) from None
        if not done:
            raise ConcurrentUpdateError(
                f"{name} moved while this command ran; run the command again"
            )

    def reflog(self, name: str) -> list[tuple[str | None, str, str]]:
        """The reflog of ``name``, newest first: (old sha or None, new sha, message)."""
        path = Path(self._repo.commondir()) / "logs" / name
        try:
            lines = path.read_bytes().decode("utf-8", "replace").splitlines()
        except OSError:
            return []
        out: list[tuple[str | None, str, str]] = []
        for line in reversed(lines):
            head, _, message = line.partition("\t")
            fields = head.split(" ", 2)
            if len(fields) < 3:
                continue
            old = None if fields[0].strip("0") == "" else fields[0]
            out.append((old, fields[1], message))
        return out

    def set_ref(self, name: str, sha: str) -> None:
        try:
            self._repo.refs[_ref(name)] = _oid(sha)
        except FileLocked as exc:
            raise _ref_locked(name, exc) from None

    def delete_ref(self, name: str) -> None:
        try:
            self._repo.refs.remove_if_equals(_ref(name), None)
        except FileLocked as exc:
            raise _ref_locked(name, exc) from None

    # -- writing -------------------------------------------------------------------------
    def config_value(self, section: str, key: str) -> str | None:
        """A value from this repository's own ``.git/config`` (``modelbox.store``...)."""
        try:
            value = self._repo.get_config().get((section.encode(),), key.encode())
        except KeyError:
            return None
        return value.decode("utf-8", "replace") if value else None

    def config_stack(self) -> StackedConfig:
        """The config files git reads (dulwich's ``get_config_stack``), parsed again only
        when one of them changed: a command asks for a setting a dozen times, and a script
        publishing in a loop once per write. A file is unchanged while its (inode, size,
        mtime, ctime) is, as git trusts a file's stat for its index. A stack whose files
        include others (``include``, ``includeIf``) is not kept: those are not watched."""
        key = _config_key(self._repo)
        if self._config is not None and self._config[0] == key:
            return self._config[1]
        stack = self._repo.get_config_stack()
        self._config = None if _includes(stack) else (key, stack)
        return stack

    def git_setting(self, section: str, key: str) -> str | None:
        """A git setting as git sees it: this repository's config, then the user's and the
        system's (``core.splitIndex``...); None when unset."""
        try:
            value = self.config_stack().get((section.encode(),), key.encode())
        except KeyError:
            return None
        return value.decode("utf-8", "replace") if value is not None else None

    def identity(self) -> str:
        """``Name <email>`` of the acting user, as git would pick it.

        Raises:
            IdentityError: no email is configured (see :func:`user_identity`).
        """
        if self._identity is None:
            self._identity = user_identity(self.config_stack())
        return self._identity

    def _reflog_identity(self) -> bytes:
        """Who a reflog entry names: like git's reflog, it never refuses (a ``refs sync``
        or a download's ref moves by an unconfigured user still log something)."""
        try:
            return self.identity().encode()
        except IdentityError:
            return get_user_identity(self.config_stack(), "AUTHOR")

    def build_tree(self, base_tree: str | None, changes: Mapping[str, bytes | None]) -> str:
        """Store the tree ``base_tree`` + ``changes`` (None deletes a file or directory)."""
        return self.build_tree_changes(base_tree, changes)[0]

    def build_tree_changes(
        self, base_tree: str | None, changes: Mapping[str, bytes | None]
    ) -> tuple[str, list[PathChange]]:
        """:meth:`build_tree`, and the files that differ from ``base_tree`` (what
        :meth:`changed_paths` of the two trees gives, found while building: a write to
        one file need not diff the wide trees on its path again)."""
        nested: dict[str, Any] = {}
        for path, data in changes.items():
            node = nested
            *dirs, leaf = path.split("/")
            for part in dirs:
                child = node.setdefault(part, {})
                if not isinstance(child, dict):
                    raise GitError(f"cannot write below the file {path}")
                node = child
            node[leaf] = data
        changed: list[PathChange] = []
        new = self._apply(base_tree, nested, "", changed)
        return (new if new is not None else self._add(Tree())), changed

    def _apply(
        self, tree_sha: str | None, changes: dict[str, Any], prefix: str,
        changed: list[PathChange],
    ) -> str | None:
        """Store the tree ``tree_sha`` with ``changes``; its raw form is edited in place
        (a namespace of 500 models is one entry changed, not 500 parsed and re-sorted)."""
        base = self._raw_tree(tree_sha) if tree_sha else None
        found = {} if base is None else {
            name: entry for name in (n.encode() for n in changes)
            if (entry := base.find(name)) is not None}
        edits: dict[bytes, tuple[int, str] | None] = {}
        for name, change in changes.items():
            key = name.encode()
            path = prefix + name
            mode, sha = found.get(key, (0, None))[:2]
            old_dir = sha if sha is not None and mode == DIR_MODE else None
            old_file = sha if sha is not None and mode != DIR_MODE else None
            if isinstance(change, dict):
                if old_file is not None:  # a file where a folder is made
                    changed.append(PathChange(path, old_file, None))
                new_sub = self._apply(old_dir, change, path + "/", changed)
                edits[key] = None if new_sub is None else (DIR_MODE, new_sub)
                continue
            if old_dir is not None:  # a folder replaced by a file, or deleted
                changed.extend(self.changed_paths(old_dir, None, path + "/"))
            if change is None:
                edits[key] = None
                if old_file is not None:
                    changed.append(PathChange(path, old_file, None))
            else:
                new_sha = self._add(Blob.from_string(cast(bytes, change)))
                edits[key] = (_FILE_MODE, new_sha)
                if new_sha != old_file or mode != _FILE_MODE:
                    changed.append(PathChange(path, old_file, new_sha))
        new_raw, in_place = _tree_splice(base, found, edits)
        if not new_raw:
            return None
        return self._add_tree(new_raw, base, base if in_place else None)

    def _raw_tree(self, sha: str) -> RawTree:
        """The tree ``sha`` to splice: kept so in the cache in place of its parsed form
        (smaller; the next splice of it finds its entries without a walk)."""
        cached = self._objects.get(sha)
        if cached is not None and isinstance(cached[0], RawTree):
            self._objects.move_to_end(sha)
            return cached[0]
        obj = self.object(sha)
        if not isinstance(obj, Tree):
            raise GitError(f"{sha} is not a tree")
        tree = RawTree(sha, obj.as_raw_string())
        self._drop(sha)
        self._remember(sha, tree)
        return tree

    def _add_tree(self, raw: bytes, base: RawTree | None, same_places: RawTree | None,
                  ) -> str:
        """Store a tree given as raw bytes (kept unparsed until someone reads it), a delta
        against ``base`` (the tree it replaces) when that one is in the same pack; its
        entries start where those of ``same_places`` do, when given."""
        sha = hashlib.sha1(b"tree %d\x00" % len(raw) + raw).hexdigest()
        if self._packing is None:
            return self._add(Tree.from_raw_string(Tree.type_num, raw, _oid(sha)))
        self._pack(sha, Tree.type_num, raw,
                   None if base is None else (bytes.fromhex(base.sha), base.raw))
        self._remember(sha, same_places.handed_on(sha, raw) if same_places is not None
                       else RawTree(sha, raw))
        return sha

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
        return self._add(commit)

    def make_tag(self, name: str, target: str, message: str, when: int = 0) -> str:
        """Store a deterministic annotated tag object pointing at the tree ``target``,
        dated ``when`` (UTC; the time of the commit that moved the tag)."""
        tag = Tag()
        tag.object = (Tree, _oid(target))
        tag.name = name.encode()
        tag.tagger = _TAGGER
        tag.tag_time = when
        tag.tag_timezone = 0
        tag.message = message.encode()
        sha = tag.id.decode()
        # Already stored (fetched by a clone, or packed since it was made): dulwich would
        # write it again as a loose object, one file per tag ref at every sync. Loose
        # first: one stat, where a miss in the packs makes dulwich list them again.
        store, oid = self._repo.object_store, _oid(sha)
        if sha in self._objects or store.contains_loose(oid) or store.contains_packed(oid):
            return sha
        return self._add(tag)

    def made_tag_time(self, sha: str, name: str, message: str) -> int | None:
        """The date of the tag object ``sha`` if it is one :meth:`make_tag` makes for
        ``name`` and ``message``; None for anything else (or an unreadable object)."""
        try:
            obj = self.object(sha)
        except GitError:
            return None
        if not (isinstance(obj, Tag) and obj.name == name.encode()
                and obj.message == message.encode() and obj.tagger == _TAGGER
                and obj.tag_timezone == 0):
            return None
        return int(obj.tag_time)

    def tag_target(self, sha: str) -> tuple[str, str] | None:
        """``(target sha, message)`` of an annotated tag object, or None for other objects."""
        obj = self.object(sha)
        if not isinstance(obj, Tag):
            return None
        return obj.object[1].decode(), obj.message.decode("utf-8", "replace")

    def changed_paths(
        self, old_tree: str | None, new_tree: str | None, prefix: str = ""
    ) -> Iterator[PathChange]:
        """Files that differ between two trees; equal subtrees are skipped unread."""
        if old_tree == new_tree:
            return
        old = self._entries(old_tree)
        new = self._entries(new_tree)
        for name in sorted(old.keys() | new.keys()):
            (old_mode, old_sha), (new_mode, new_sha) = old.get(name, _NONE), new.get(name, _NONE)
            if old_sha == new_sha and old_mode == new_mode:
                continue
            path = f"{prefix}{name}"
            old_dir, new_dir = old_mode == DIR_MODE, new_mode == DIR_MODE
            old_file = None if old_dir else old_sha
            new_file = None if new_dir else new_sha
            # Removals first, so a file never stands where a folder must be made (or back).
            if old_dir:
                yield from self.changed_paths(old_sha, new_sha if new_dir else None, path + "/")
            if old_file is not None or new_file is not None:
                yield PathChange(path, old_file, new_file)
            if new_dir and not old_dir:
                yield from self.changed_paths(None, new_sha, path + "/")

    def _entries(self, tree: str | None) -> dict[str, tuple[int, str | None]]:
        if tree is None:
            return {}
        return {
            e.path.decode(): (e.mode, e.sha.decode())
            for e in cast(Tree, self.object(tree)).iteritems()
        }

_INFLATE_CHUNK = 1 << 20


def _inflate_blob(sha: str, stream: BinaryIO, out: BinaryIO, git_dir: Path) -> None:
    """A loose object's content to ``out``, inflated a megabyte at a time; GitError if it
    is not a blob, or its size, end or id are not what its name and header say."""
    inflate, digest = zlib.decompressobj(), hashlib.sha1()
    header: bytes | None = b""  # "blob <size>\0" first (None once read)
    size = written = 0
    try:
        while True:
            data = inflate.unconsumed_tail or stream.read(_INFLATE_CHUNK)
            if not data:
                break
            chunk = inflate.decompress(data, _INFLATE_CHUNK)
            digest.update(chunk)
            if header is not None:
                header += chunk
                end = header.find(b"\0")
                if end < 0:
                    if len(header) > 32:
                        raise ValueError("no object header")
                    continue
                kind, _, length = header[:end].partition(b" ")
                if kind != b"blob":
                    raise GitError(f"{sha} is not a blob")
                if not length.isdigit():
                    raise ValueError(f"bad object size {length[:20]!r}")
                size, chunk, header = int(length), header[end + 1 :], None
            out.write(chunk)
            written += len(chunk)
            if inflate.eof:
                break
    except (zlib.error, ValueError) as exc:
        raise _malformed(sha, git_dir, exc) from None
    if header is not None or not inflate.eof or written != size or digest.hexdigest() != sha:
        raise _malformed(sha, git_dir, ValueError("its content does not match its id"))


def _weight(obj: ShaFile) -> int:
    size = obj.raw_length()
    return size * _PARSED_TREE_WEIGHT if isinstance(obj, Tree) else size


def _tree_key(name: bytes, mode: int) -> bytes:
    return tree_key(name, mode == DIR_MODE)


def _tree_splice(
    base: RawTree | None, found: Mapping[bytes, tuple[int, str, int, int]],
    edits: Mapping[bytes, tuple[int, str] | None],
) -> tuple[bytes, bool]:
    """The raw tree ``base`` with ``edits`` (name -> (mode, sha), None removes it), and
    whether every entry stayed where it was; ``found`` holds each edited name's entry in
    ``base`` (``RawTree.find``). An entry that keeps its place is overwritten where it is;
    a new one (or one whose sort key changes) is put in git's order."""
    raw = base.raw if base is not None else b""
    # (offset, 0 insert / 1 cut, sort key, bytes written, where the cut ends)
    ops: list[tuple[int, int, bytes, bytes, int]] = []
    in_place = True
    for name, new in edits.items():
        old = found.get(name)
        entry = b"" if new is None else b"%o %s\x00" % (new[0], name) + bytes.fromhex(new[1])
        if old is not None and new is not None and _tree_key(name, old[0]) == _tree_key(
            name, new[0]
        ):
            ops.append((old[2], 1, b"", entry, old[3]))  # replaced where it is
            in_place = in_place and len(entry) == old[3] - old[2]
            continue
        in_place = False
        if old is not None:
            ops.append((old[2], 1, b"", b"", old[3]))
        if new is not None:
            key = _tree_key(name, new[0])
            ops.append((base.insert_at(key) if base is not None else 0, 0, key, entry, 0))
    if not ops:
        return raw, in_place
    ops.sort()
    out, at = [], 0
    for offset, kind, _, data, end in ops:
        out.append(raw[at:offset])
        out.append(data)
        at = end if kind else offset
    out.append(raw[at:])
    return b"".join(out), in_place


def _ref_locked(name: str, exc: FileLocked) -> GitError:
    lock = os.fsdecode(exc.lockfilename)
    return GitError(f"cannot update {name}: {lock} exists (another git process is "
                    "updating it); if none is running, delete it")


def _local_offset(now: int) -> int:
    local = time.localtime(now)
    return local.tm_gmtoff if local.tm_gmtoff is not None else 0


_TAGGER = b"modelbox <modelbox@localhost>"  # of the tag objects the tag refs point at


def _config_key(repo: Repo) -> tuple[object, ...]:
    """What the config stack of ``repo`` is read from: each file dulwich reads (as
    ``StackedConfig.default_backends`` finds them, from the same environment) with its
    stat, or None where there is none."""
    paths = [os.path.join(repo.commondir(), "config"),
             os.path.join(repo.controldir(), "config.worktree")]
    if "GIT_CONFIG_GLOBAL" in os.environ:
        paths.append(os.environ["GIT_CONFIG_GLOBAL"])
    else:
        paths.append(os.path.expanduser("~/.gitconfig"))
        paths.append(get_xdg_config_home_path("git", "config"))
    if "GIT_CONFIG_SYSTEM" in os.environ:
        paths.append(os.environ["GIT_CONFIG_SYSTEM"])
    elif "GIT_CONFIG_NOSYSTEM" not in os.environ:
        paths.append("/etc/gitconfig")
        if sys.platform == "win32":
            paths.extend(get_win_system_paths())
    key: list[object] = []
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            key.append((path, None))
            continue
        key.append((path, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns))
    return tuple(key)


def _includes(stack: StackedConfig) -> bool:
    """Whether a file of ``stack`` includes another (git's ``include.path`` and
    ``includeIf.<condition>.path``)."""
    return any(section and section[0].lower() in (b"include", b"includeif")
               for backend in stack.backends for section in backend.sections())
