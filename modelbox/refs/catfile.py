"""A repository read through one ``git cat-file --batch``, for the quickest reads.

``modelbox resolve`` reads three or four files of the branch head. Opening the repository
with dulwich imports its repository, config and pack code first: ~35 ms of a ~150 ms
command at 100,000 versions, more than the read itself. Here the objects come from one
``git cat-file --batch`` process, and the trees are walked by
:class:`~modelbox.refs.trees.CommitFiles`, exactly as a Snapshot walks them.

Only the plain case is read here. Anything else raises :class:`NotPlainError`, and the caller
reads through dulwich instead (the one full path, which also names any problem):

* a repository found through a ``.git`` file (a linked worktree, a submodule), a bare
  one, or one that shares another's git dir (``commondir``);
* a partial clone, a SHA-256 one, or a config that includes other files (git could
  fetch a missing object from a promisor remote, dulwich would not);
* a ref that is symbolic, has an unusual name or content, or a ``packed-refs`` line that
  is not plainly well formed (:mod:`modelbox.refs.packedrefs`);
* no git on PATH, ``MODELBOX_GIT_TRANSPORT=dulwich``, or a repository owned by another
  user (the full path refuses it unless ``safe.directory`` trusts it,
  :mod:`modelbox.refs.ownership`);
* an object git does not have or that dulwich cannot parse.

git runs as every git child of modelbox does (:func:`modelbox.refs.gitenv.environment`):
without the caller's repository variables, and without replace refs (dulwich never reads
``refs/replace/``: a replaced tags file would otherwise answer differently here).
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
from pathlib import Path
from types import TracebackType
from typing import IO

from dulwich.errors import ObjectFormatException
from dulwich.objects import Commit, ObjectID, ShaFile, Tree

from modelbox.refs import gitenv
from modelbox.refs.ownership import owned
from modelbox.refs.refnames import is_plain
from modelbox.refs.trees import CommitFiles

__all__ = ["CatFile", "NotPlainError"]

_SHA = re.compile(rb"[0-9a-f]{40}")
_TYPES = {b"commit": 1, b"tree": 2, b"blob": 3, b"tag": 4}
# In .git/config: what would make git read objects (or settings) dulwich does not.
_UNPLAIN_CONFIG = (b"partialclone", b"promisor", b"objectformat", b"include")
_HEAD_PREFIX = b"ref: refs/heads/"


class NotPlainError(Exception):
    """Not the plain case this reader answers for: read through dulwich instead."""


def _git_dir(start: Path) -> Path:
    """The git dir of the repository containing ``start`` (the parent walk dulwich's
    ``Repo.discover`` makes), when it is a plain ``.git`` folder."""
    path = start
    while True:
        dot = path / ".git"
        if dot.is_file():
            raise NotPlainError(f"{dot} is a .git file")
        if (dot / "objects").is_dir():
            if (dot / "commondir").exists():
                raise NotPlainError(f"{dot} shares another git dir")
            return dot
        if (path / "objects").is_dir() and (path / "refs").is_dir():
            raise NotPlainError(f"{path} is a bare repository")
        if path.parent == path:
            raise NotPlainError(f"no repository at or above {start}")
        path = path.parent


class CatFile:
    """A read-only repository whose objects come from ``git cat-file --batch``."""

    def __init__(self, git_dir: Path) -> None:
        self.git_dir = git_dir
        env = gitenv.environment(batch_ssh=False)
        env["GIT_NO_LAZY_FETCH"] = "1"  # git 2.44+: never fetch a missing object
        try:
            self._proc = subprocess.Popen(
                ["git", "--git-dir", str(git_dir), "cat-file",
                 "--batch"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                env=env,
            )
        except OSError as exc:
            raise NotPlainError(f"cannot run git: {exc}") from None  # none on PATH
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._in: IO[bytes] = self._proc.stdin
        self._out: IO[bytes] = self._proc.stdout

    @classmethod
    def find(cls, start: Path) -> CatFile:
        """The repository containing ``start``, read through the git on PATH."""
        if os.environ.get(gitenv.SWITCH, "").strip().lower() not in ("", "auto", "git"):
            raise NotPlainError(f"{gitenv.SWITCH} asks for dulwich")
        git_dir = _git_dir(start)
        if not owned(git_dir, git_dir.parent):  # the full path refuses it, saying why
            raise NotPlainError(f"{git_dir.parent} is owned by another user")
        try:
            config = (git_dir / "config").read_bytes().lower()
        except FileNotFoundError:
            config = b""
        except OSError as exc:
            raise NotPlainError(str(exc)) from None
        if any(word in config for word in _UNPLAIN_CONFIG):
            raise NotPlainError(f"{git_dir}/config is not plain")
        return cls(git_dir)

    def __enter__(self) -> CatFile:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        with contextlib.suppress(OSError):  # git is gone already
            self._in.close()
        try:
            self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._out.close()

    # -- refs ----------------------------------------------------------------------------
    def head_branch(self) -> str | None:
        """The branch HEAD points to, or None when HEAD is detached."""
        raw = self._file(self.git_dir / "HEAD") or b""
        if not raw.startswith(_HEAD_PREFIX):
            return None
        return raw[len(_HEAD_PREFIX):].decode("utf-8", "surrogateescape").strip()

    def ref(self, name: str) -> str | None:
        """The commit a branch or tag ref names: its loose file, else ``packed-refs``."""
        if not is_plain(name.encode("utf-8", "surrogateescape")):
            raise NotPlainError(f"{name!r} is not a plain ref name")
        raw = self._file(self.git_dir / name)
        if raw is not None:
            sha = raw.removesuffix(b"\n")
            if not _SHA.fullmatch(sha):
                raise NotPlainError(f"{name} is symbolic or not one id")
            return sha.decode("ascii")
        packed = self._file(self.git_dir / "packed-refs")
        if packed is None:
            return None
        from dulwich.refs import Ref  # dulwich's refs code: only when a ref is packed

        from modelbox.refs.packedrefs import parse

        parsed = parse(packed)
        if parsed is None:
            raise NotPlainError("packed-refs is not plain")
        sha_id = parsed[0].get(Ref(name.encode()))
        return None if sha_id is None else sha_id.decode("ascii")

    def refs_under(self, prefix: str) -> dict[str, str]:
        raise NotPlainError("listing refs is left to dulwich")

    @staticmethod
    def _file(path: Path) -> bytes | None:
        try:
            return path.read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            raise NotPlainError(str(exc)) from None

    # -- objects -------------------------------------------------------------------------
    def tree(self, sha: str) -> Tree:
        """The tree ``sha`` (parsed: :class:`CommitFiles` looks entries up in it)."""
        obj = self.object(sha)
        if not isinstance(obj, Tree):  # a folder entry naming a blob: a crafted commit
            raise NotPlainError(f"{sha} is not a tree")
        return obj

    def object(self, sha: str) -> ShaFile:
        raw_sha = sha.encode("ascii")
        if not _SHA.fullmatch(raw_sha):
            raise NotPlainError(f"{sha!r} is not a SHA-1 id")
        try:
            self._in.write(raw_sha + b"\n")
            self._in.flush()
            header = self._out.readline().split()
            if len(header) != 3 or header[0] != raw_sha or header[1] not in _TYPES \
                    or not header[2].isdigit():
                raise NotPlainError(f"git has no object {sha}")
            size = int(header[2])
            data = self._out.read(size)
            if len(data) != size or self._out.read(1) != b"\n":
                raise NotPlainError(f"git cut object {sha} short")
        except OSError as exc:  # git ended (it refused the repository, say)
            raise NotPlainError(str(exc)) from None
        try:
            return ShaFile.from_raw_string(_TYPES[header[1]], data, ObjectID(raw_sha))
        except (ObjectFormatException, ValueError) as exc:
            raise NotPlainError(f"object {sha}: {exc}") from None

    def snapshot(self, commit: str | None) -> CommitFiles:
        if commit is None:
            return CommitFiles(self, None, None)
        obj = self.object(commit)
        if not isinstance(obj, Commit):
            raise NotPlainError(f"{commit} is not a commit")
        return CommitFiles(self, commit, obj.tree.decode("ascii"))
