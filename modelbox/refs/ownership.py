"""A repository owned by someone else is refused, as git refuses it (``safe.directory``).

A repository's settings and hooks run code: ``core.hooksPath`` and a ``pre-auto-gc`` hook
run inside the ``git gc --auto`` of modelbox's background maintenance, ``core.sshCommand``
inside a push. In a folder another user owns (a shared ``/srv`` or ``/tmp``, a mounted
volume) those are theirs, and git since 2.35.2 (CVE-2022-24765) refuses to work there:
"detected dubious ownership". modelbox runs its git children with ``--git-dir``, which git
2.39 does not check, and dulwich checks nothing; so it checks here, before either reads a
setting, with git's rule (``ensure_valid_ownership`` in git's ``setup.c``):

* the work tree's top folder, the git dir, and a ``.git`` file if the repository is found
  through one, must each be owned (``lstat``) by the effective user; when that user is
  root, a path owned by root is fine, and so is one owned by ``SUDO_UID`` (``sudo``);
* otherwise the repository is trusted only when ``safe.directory``, in the settings its
  owner cannot write (system, global, and ``GIT_CONFIG_COUNT`` pairs; never the
  repository's own), names it: its path (``~/`` expanded, compared after resolving
  symlinks, as git 2.46 does), a path ending in ``/*`` for every folder below that path (git 2.46),
  or ``*`` for every path. An empty value forgets the values before it.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from modelbox.errors import GitError

__all__ = ["UntrustedRepositoryError", "check_owner", "owned"]

_ROOT = 0
_PROTECTED_SCOPES = ("system", "global", "command")


class UntrustedRepositoryError(GitError):
    """The repository is owned by another user and ``safe.directory`` does not name it."""

    def __init__(self, path: Path, owner: int) -> None:
        self.path = path
        super().__init__(
            f"{path} is owned by another user (uid {owner}), so its settings and hooks are "
            "not yours to run (git refuses it too: \"dubious ownership\"); if you trust it, "
            f"run `git config --global --add safe.directory {path}`"
        )


def check_owner(git_dir: Path, work_tree: Path | None) -> None:
    """Raise :class:`UntrustedRepositoryError` unless the repository is the user's own or
    ``safe.directory`` trusts it (see the module)."""
    uid = _stranger(git_dir, work_tree)
    if uid is None:
        return
    named = Path(os.path.realpath(work_tree if work_tree is not None else git_dir))
    if not _trusted(named):
        raise UntrustedRepositoryError(named, uid)


def owned(git_dir: Path, work_tree: Path | None) -> bool:
    """Whether :func:`check_owner` passes without reading any setting (the quick reader
    takes only such repositories, and leaves the rest to the full path)."""
    return _stranger(git_dir, work_tree) is None


def _stranger(git_dir: Path, work_tree: Path | None) -> int | None:
    """The owner of the first of the repository's paths git checks that is not the
    user's (the work tree, the git dir, a ``.git`` file); None when all are."""
    paths = [git_dir] if work_tree is None else [work_tree, git_dir]
    if work_tree is not None and (work_tree / ".git").is_file():
        paths.append(work_tree / ".git")
    return next((uid for p in paths if (uid := _foreign_owner(p)) is not None), None)


def _foreign_owner(path: Path) -> int | None:
    """None if ``path`` is owned by the current user (git's rule), else its owner (-1 when
    it cannot be looked at)."""
    if not hasattr(os, "geteuid"):
        return None  # Windows: git compares owners' SIDs there; not checked (docs/security.md)
    try:
        uid = os.lstat(path).st_uid
    except OSError:
        return -1
    euid = os.geteuid()
    if uid == euid:
        return None
    if euid == _ROOT:
        sudo = os.environ.get("SUDO_UID", "")
        if uid == _ROOT or (sudo.isdigit() and uid == int(sudo)):
            return None
    return uid


def _trusted(path: Path) -> bool:
    """Whether the protected settings' ``safe.directory`` values, in order, trust ``path``."""
    safe = False
    for value in _safe_directories():
        if not value:
            safe = False
        elif value == "*":
            safe = True
        elif value.endswith("/*"):
            base = _resolved(value[:-2])
            safe = safe or (base is not None and base in path.parents)  # below, not it
        else:
            safe = safe or _resolved(value) == path
    return safe


def _resolved(value: str) -> Path | None:
    if value.startswith("~"):
        value = os.path.expanduser(value)
    if not os.path.isabs(value):
        return None  # git needs an absolute path here too
    return Path(os.path.realpath(value))


def _safe_directories() -> list[str]:
    """``safe.directory`` of the system, global and command-line settings, in git's order."""
    from modelbox.refs.gitcli import git_program

    git = git_program()
    return _from_files() + _command_line() if git is None else _from_git(git)


def _from_git(git: str) -> list[str]:
    """What git itself reads (``-c`` settings in ``GIT_CONFIG_*`` too): ``--show-scope``
    tells the protected values from a repository's own, which never count."""
    from modelbox.refs import gitenv

    proc = subprocess.run([git, "config", "--show-scope", "--get-all", "safe.directory"],
                          cwd="/", env=gitenv.environment(batch_ssh=False),
                          capture_output=True, check=False)
    if proc.returncode not in (0, 1):  # 1: no value
        raise GitError("git config could not read safe.directory: "
                       f"{proc.stderr.decode(errors='replace').strip()}")
    out = []
    for line in proc.stdout.decode(errors="surrogateescape").splitlines():
        scope, _, value = line.partition("\t")
        if scope in _PROTECTED_SCOPES:
            out.append(value)
    return out


def _command_line() -> list[str]:
    """Without git: the ``GIT_CONFIG_COUNT`` pairs (``git -c``'s other form)."""
    count = os.environ.get("GIT_CONFIG_COUNT", "")
    return [os.environ.get(f"GIT_CONFIG_VALUE_{i}", "")
            for i in range(int(count) if count.isdigit() else 0)
            if os.environ.get(f"GIT_CONFIG_KEY_{i}", "").lower() == "safe.directory"]


def _from_files() -> list[str]:
    """Without git: the system file, then the global ones (dulwich lists them the other
    way round); a file that cannot be read trusts nothing."""
    from dulwich.config import StackedConfig

    try:
        backends = StackedConfig.default_backends()
    except (OSError, ValueError):
        return []
    out = []
    for config in reversed(backends):
        try:
            values = list(config.get_multivar((b"safe",), b"directory"))
        except KeyError:  # dulwich's way of saying there is none
            continue
        out += [value.decode(errors="surrogateescape") for value in values]
    return out
