"""What the pre-commit hooks do: validate, format and guard the files about to be committed.

* :func:`validate_worktree` — each given file against its schema and the rules of its place
  (:mod:`modelbox.check`), then the invariants those files affect, read from the work tree
  as git stages it, files the index deletes included; tag-ref drift as warnings;
* :func:`format_files` — rewrite documents as canonical JSON, in place;
* :func:`raw_artifacts` — files under ``models/`` or ``experiments/`` that are no modelbox
  document (a ``model.pt`` committed instead of a pointer), or too big; anywhere else in the
  repository, files that look like weights (a weight extension, or too big).

Hooks run inside git (pre-commit requires it), so the index is asked of ``git`` itself:
that also honours the temporary index of ``git commit -a`` and ``git commit PATH``.
"""

from __future__ import annotations

import bisect
import os
import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path

from modelbox import canonical, layout
from modelbox.check import (
    TREE_ROOTS,
    Checker,
    Location,
    Problem,
    locate,
    not_json,
    reopened_releases,
)
from modelbox.explain import jpath, load
from modelbox.filetypes import is_weights
from modelbox.verdicts import Verdicts

__all__ = ["StagedFiles", "format_files", "raw_artifacts", "repository_root", "validate_worktree"]

_PATHSPEC = (*TREE_ROOTS, layout.SETTINGS)
_MiB = 1024 * 1024
_REMEMBER = 200  # documents: from there the hook uses .git/modelbox/check-verdicts


def _environment() -> dict[str, str]:
    """The hook's environment for git (its ``GIT_DIR`` and ``GIT_INDEX_FILE`` kept: the
    index being committed), without replace refs: ``refs/replace/`` must not show git
    another ``HEAD`` than the one the commit extends (dulwich, and so modelbox, never
    applies them; :mod:`modelbox.refs.gitenv`)."""
    return {**os.environ, "GIT_NO_REPLACE_OBJECTS": "1"}


def _git(root: Path, *args: str) -> bytes | None:
    """A git command's output, or None when git or the repository is not there."""
    try:
        proc = subprocess.run(["git", *args], cwd=root, capture_output=True, check=False,
                              env=_environment())
    except OSError:
        return None
    return proc.stdout if proc.returncode == 0 else None


def _paths(output: bytes | None) -> list[str]:
    return [p for p in (output or b"").decode("utf-8", "surrogateescape").split("\0") if p]


def repository_root(start: Path) -> Path:
    """The top of the Git work tree holding ``start`` (``start`` itself outside Git)."""
    top = _git(start, "rev-parse", "--show-toplevel")
    return Path(top.decode().strip()) if top else start


class StagedFiles:
    """The registry's files in the work tree, limited to those in the index.

    Under pre-commit the work tree holds what is staged (unstaged edits are stashed away),
    so this is what the commit will contain. Outside Git every file counts.

    The index's paths are kept sorted; a folder is listed by bisecting to its range, so
    a registry of 100,000 versions costs one ``git ls-files`` and a sort, not a map of
    every folder.
    """

    def __init__(self, root: Path, tracked: Iterable[str] | None) -> None:
        self.root = root
        self.links: list[str] = []
        self._tracked: list[str] | None = None
        self._files: set[str] = set()
        self._listed: dict[str, list[tuple[str, bool]]] = {}
        if tracked is not None:
            listed = list(tracked)
            self._files = set(listed)
            # git lists the index in order, so this sort only confirms it (a set's order
            # would cost a real sort: 40 ms at 100,000 versions).
            self._tracked = sorted(listed)

    @classmethod
    def open(cls, root: Path) -> StagedFiles:
        listed = _git(root, "ls-files", "-z", "--", *_PATHSPEC)
        return cls(root, None if listed is None else _paths(listed))

    def read(self, path: str) -> bytes | None:
        if self._tracked is not None and path not in self._files:
            return None
        file = self.root / path
        if file.is_symlink():  # reading it would check whatever it points to
            self.links.append(path)
            return None
        try:
            return file.read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None

    def listdir(self, path: str) -> list[tuple[str, bool]]:
        if self._tracked is None:
            try:
                return sorted((p.name, p.is_dir()) for p in (self.root / path).iterdir())
            except (FileNotFoundError, NotADirectoryError):
                return []
        found = self._listed.get(path)
        if found is None:
            found = self._listed[path] = self._children(self._tracked, f"{path}/")
        return list(found)

    @staticmethod
    def _children(tracked: list[str], prefix: str) -> list[tuple[str, bool]]:
        """``(name, is_dir)`` below ``prefix`` among the sorted ``tracked`` paths."""
        out: dict[str, bool] = {}
        at = bisect.bisect_left(tracked, prefix)
        while at < len(tracked) and tracked[at].startswith(prefix):
            name, slash, _ = tracked[at][len(prefix) :].partition("/")
            out[name] = bool(slash)
            # Past this folder's files: its name followed by "/" then anything sorts
            # before its name followed by "0" ("/" + 1).
            at = (bisect.bisect_left(tracked, f"{prefix}{name}0", at) if slash else at + 1)
        return sorted(out.items())


def _relative(root: Path, paths: Iterable[str]) -> list[str]:
    """``paths`` (as given, relative to the current directory) relative to ``root``."""
    out = []
    base = root.resolve()
    for name in paths:
        given = Path(name)
        # Resolve the folders but not the file itself: a link must be judged as a link.
        full = Path(os.path.abspath(given.parent)).resolve() / given.name
        if full.is_relative_to(base) and full != base:
            out.append(full.relative_to(base).as_posix())
    return out


def _at_head(root: Path, paths: list[str]) -> dict[str, bytes]:
    """The contents of ``paths`` in HEAD (one ``git cat-file --batch``; absent ones left
    out)."""
    request = "".join(f"HEAD:{p}\n" for p in paths).encode("utf-8", "surrogateescape")
    try:
        proc = subprocess.run(["git", "cat-file", "--batch"], cwd=root, input=request,
                              capture_output=True, check=False, env=_environment())
    except OSError:
        return {}
    out, data, at = {}, proc.stdout, 0
    for path in paths:
        end = data.find(b"\n", at)
        if end < 0:
            break
        header = data[at:end].split()
        at = end + 1
        if len(header) == 3 and header[1] == b"blob":
            size = int(header[2])
            out[path] = data[at : at + size]
            at += size + 1
        elif len(header) == 3:
            at += int(header[2]) + 1  # not a file (a folder where a file is expected)
    return out


def validate_worktree(root: Path, paths: Sequence[str]) -> list[Problem]:
    """What the ``modelbox-validate`` hook reports for ``paths``.

    Each registry file among ``paths`` is checked, then what it affects: its folder, its
    model, the tags naming its version, the collisions of its tag refs. Files the index
    deletes count too (a removed version a tag still names). Tag-ref drift comes back as
    ``fixable`` problems — warnings, since refs are not part of a commit.
    """
    files = StagedFiles.open(root)
    wanted = [p for p in _relative(root, paths) if locate(p).tree or p == layout.SETTINGS]
    deleted = _paths(_git(root, "diff", "--cached", "--name-only", "--diff-filter=D", "-z",
                          "--", *_PATHSPEC))
    # Past a few hundred documents (`pre-commit run --all-files`) remembering what was
    # found clean pays; for a commit's few files, loading the verdicts would cost more.
    git_dir = _git(root, "rev-parse", "--absolute-git-dir") if len(wanted) > _REMEMBER else None
    verdicts = Verdicts(Path(os.fsdecode(git_dir.strip()))) if git_dir else None
    checker = Checker(files, collisions=True, verdicts=verdicts)
    problems = checker.run(wanted, deleted)
    if verdicts is not None:
        verdicts.save()
    versions = [p for p in wanted if locate(p).kind == "version"]
    if versions:  # a release is permanent: compare with the commit being extended
        problems += reopened_releases(versions, _at_head(root, versions).get, files.read)
    problems += [Problem(p, "(file): a symbolic link; commit the document itself")
                 for p in dict.fromkeys(files.links) if p in wanted]
    touched = {loc.owner for loc in map(locate, [*wanted, *deleted])
               if loc.tree == layout.MODELS and loc.owner}
    return problems + _ref_drift(root, files, checker, touched)


def _ref_drift(root: Path, files: StagedFiles, checker: Checker, owners: set[str]) -> list[Problem]:
    """Tag refs of ``owners`` that will not match the manifests once they are committed.

    Only when the registry branch is checked out: on a review branch the tags are
    meant to differ from the refs until the branch is merged.
    """
    from modelbox.refs import GitRepo

    repo = GitRepo.discover(root) if owners else None
    if repo is None:
        return []
    try:
        branch = (checker.peek(layout.SETTINGS) or {}).get("branch", "main")
        if repo.head_branch() != branch:
            return []
        repo.hold_objects()  # trees and tags are computed, never written
        problems = []
        for owner in sorted(owners):
            model = owner[len(layout.MODELS) + 1 :]
            prefix = f"{layout.TAG_REF_PREFIX}{model}/"
            # This model's refs only: a registry of 5,000 models has thousands.
            have = {name: sha for name, sha in repo.refs_under(prefix).items()
                    if "/" not in name[len(prefix) :]}
            tags_path = f"{owner}/{layout.TAGS_FILE}"
            document = checker.peek(tags_path)
            if document is None and checker.read(tags_path) is not None:
                continue  # a broken tag map is an error already; its refs cannot be judged
            tags = (document or {}).get("tags")
            tags = tags if isinstance(tags, dict) else {}
            # A ref is compared by what it points at and says, not by its object: the
            # object is dated with the time of the commit that moves the tag, which the
            # commit being validated has not got yet.
            want: dict[str, tuple[str, str]] = {}
            for tag, version in tags.items():
                content = _folder(files, f"{owner}/{layout.VERSIONS_DIR}/{version}")
                if content:
                    want[prefix + tag] = (repo.build_tree(None, content), f"{model}@{version}\n")
            dangling = {prefix + tag for tag in tags} - want.keys()  # an error already
            for name in sorted((want.keys() | have.keys()) - dangling):
                state = ("is missing" if name not in have else "names no tag in the manifests"
                         if name not in want else "is out of date"
                         if repo.tag_target(have[name]) != want[name] else None)
                if state:
                    problems.append(Problem(name, f"tag ref {state} once this is committed; run "
                                            "`modelbox refs sync` after the commit", fixable=True))
        return problems
    finally:
        repo.discard_pending()
        repo.close()


def _folder(files: StagedFiles, folder: str) -> dict[str, bytes]:
    """Every staged file below ``folder``, by path relative to it."""
    out: dict[str, bytes] = {}
    stack = [folder]
    while stack:
        current = stack.pop()
        for name, is_dir in files.listdir(current):
            path = f"{current}/{name}"
            data = None if is_dir else files.read(path)
            if is_dir:
                stack.append(path)
            elif data is not None:
                out[path[len(folder) + 1 :]] = data
    return out


def format_files(root: Path, paths: Sequence[str]) -> tuple[list[str], list[Problem]]:
    """Rewrite the registry documents among ``paths`` as canonical JSON, in place.

    Returns the files rewritten, and problems for those left alone: not JSON, or a key
    repeated (keeping one silently could move a tag).
    """
    changed: list[str] = []
    problems: list[Problem] = []
    for path in _relative(root, paths):
        file = root / path
        if locate(path).kind is None or file.is_symlink() or not file.is_file():
            continue
        data = file.read_bytes()
        try:
            document, repeated = load(data)
        except ValueError as exc:
            problems.append(not_json(path, data, exc))
            continue
        if repeated:
            problems.append(Problem(path, f"{jpath(repeated[0])}: the key appears twice; keep "
                                          "the right one, then format again"))
            continue
        text = canonical.encode(document)
        if text != data:
            file.write_bytes(text)
            changed.append(path)
    return changed, problems


def raw_artifacts(root: Path, paths: Sequence[str], *, max_kb: int = 1024) -> list[Problem]:
    """Files of the object trees that are no modelbox document, or bigger than ``max_kb``;
    files elsewhere that look like weights: a weight extension, or bigger than ``max_kb``
    (a ``modelbox get -o .`` at the top of the registry, then ``git add -A``)."""
    problems = []
    for path in _relative(root, paths):
        file, loc = root / path, locate(path)
        if file.is_symlink() or not file.is_file():
            continue
        if loc.tree is None:
            if loc.kind is None:
                problems.extend(_weights(path, file.stat().st_size, max_kb))
            continue
        size, fix = file.stat().st_size, _use_a_pointer(path, loc)
        if loc.kind is None:
            problems.append(Problem(path, f"(file): a raw file ({_size(size)}) where only "
                                          f"modelbox documents belong; {fix}"))
        elif size > max_kb * 1024:
            problems.append(Problem(path, f"(file): {_size(size)} is over the {max_kb} KB "
                                          "limit; raise --max-kb if it is meant to be this big, "
                                          f"or {fix}"))
        elif b"\0" in file.read_bytes():
            problems.append(Problem(path, f"(file): binary content where a JSON document "
                                          f"belongs; {fix}"))
    return problems


def _weights(path: str, size: int, max_kb: int) -> list[Problem]:
    """A file outside the registry's trees that looks like weights, as a problem."""
    if is_weights(path):
        why = f"a weights file ({_size(size)})"
    elif size > max_kb * 1024:
        why = f"{_size(size)}, over the {max_kb} KB limit (raise --max-kb if it is meant to be)"
    else:
        return []
    name = path.rsplit("/", 1)[-1]
    return [Problem(path, f"(file): {why} staged for Git; keep it out: `git rm --cached "
                          f"{path}` and list it in .gitignore, and store it with `modelbox "
                          f"artifact add MODEL@VERSION {name}`")]


def _size(size: int) -> str:
    return f"{size / _MiB:.1f} MB" if size >= _MiB else f"{size} bytes"


def _use_a_pointer(path: str, loc: Location) -> str:
    target = loc.name or "MODEL"
    if loc.child is not None:
        target += f"@{loc.child}"
    name = path.rsplit("/", 1)[-1]
    return (f"keep it out of Git and commit a pointer: `git rm --cached {path}`, then "
            f"`modelbox artifact add {target} {name}`")
