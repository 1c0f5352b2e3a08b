"""Which branch of a repository holds the registry, and its files for a quick read.

:meth:`modelbox.registry.Registry.open` and :func:`read_branch` find the registry the same
way (:func:`find_settings`): the branch HEAD names, ``main``, ``master``, then every other
branch, the first whose head has the settings file; settings that name another existing
branch send the search there.

:func:`read_branch` is for a command that only reads a few files of the branch head
(``modelbox resolve``): it reads them through ``git cat-file``
(:mod:`modelbox.refs.catfile`) without importing dulwich's repository code or modelbox's
write side, ~35 ms of a ~150 ms command. Where that reader meets anything that is not the
plain case it raises :class:`~modelbox.refs.catfile.NotPlainError`, and the command reads
through the opened registry instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol, TypeVar

from modelbox import layout
from modelbox.documents import Settings, parse_settings
from modelbox.refs.trees import CommitFiles

__all__ = ["RefReader", "branch_candidates", "find_settings", "read_branch"]

T = TypeVar("T")


class RefReader(Protocol):
    def head_branch(self) -> str | None: ...

    def ref(self, name: str) -> str | None: ...

    def refs_under(self, prefix: str) -> dict[str, str]: ...

    def snapshot(self, commit: str | None) -> CommitFiles: ...


def branch_candidates(repo: RefReader) -> Iterator[str]:
    """Branches that may hold the registry: HEAD's, main, master, then every other one.

    Lazy, so the usual case reads no more refs than it needs; a registry can live on its
    own branch (``init --branch registry``) beside checked-out code.
    """
    seen: set[str] = set()
    for branch in (repo.head_branch(), "main", "master"):
        if branch and branch not in seen:
            seen.add(branch)
            yield branch
    for name in sorted(repo.refs_under("refs/heads/")):
        branch = name[len("refs/heads/") :]
        if branch not in seen:
            seen.add(branch)
            yield branch


def find_settings(repo: RefReader) -> Settings | None:
    """The registry settings of the first branch holding them, or None: no registry."""
    for branch in branch_candidates(repo):
        head = repo.ref(f"refs/heads/{branch}")
        data = repo.snapshot(head).read(layout.SETTINGS) if head else None
        if data is None:
            continue
        settings = parse_settings(layout.SETTINGS, data)
        if settings.branch != branch:
            other_head = repo.ref(f"refs/heads/{settings.branch}")
            if other_head:
                other = repo.snapshot(other_head)
                settings = parse_settings(layout.SETTINGS,
                                          other.read(layout.SETTINGS) or data)
        return settings
    return None


def read_branch(path: Path | None, read: Callable[[CommitFiles], T]) -> T:
    """``read`` applied to the registry branch's files, read through ``git cat-file``.

    ``read`` must only read: it is run again through the registry when this raises
    :class:`~modelbox.refs.catfile.NotPlainError` (also when no registry is found here, so
    that the registry names the problem).
    """
    from modelbox.refs.catfile import CatFile, NotPlainError

    with CatFile.find((path or Path.cwd()).resolve()) as repo:
        settings = find_settings(repo)
        if settings is None:
            raise NotPlainError("no registry found")
        return read(repo.snapshot(repo.ref(f"refs/heads/{settings.branch}")))
