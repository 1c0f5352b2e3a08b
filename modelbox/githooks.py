"""Git hooks that give plain ``git push`` / ``git pull`` modelbox's guarantees.

``modelbox install-hooks`` writes small shell scripts into the repository's hooks folder
(``core.hooksPath`` if set, else ``.git/hooks``). Each one runs a console script shipped
with the package (so it works from a wheel install, no checkout of modelbox needed):

* ``pre-push`` -> ``modelbox-git-pre-push``: every object the pointers of the pushed
  commits need is placed in the remote's store first (:func:`pre_push`, the same logic as
  ``modelbox push``); if that is impossible the push stops before any ref is sent.
* ``post-merge``, ``post-checkout``, ``post-rewrite`` -> ``modelbox-git-refs-sync``:
  ``refs sync``, so tag refs follow a plain ``git pull`` / ``merge`` / ``rebase``.

A hook the user already had is kept and chained: it is moved to ``<hook>.local`` and run
first with the same arguments and input; if a chained pre-push fails, the push stops. A
hook modelbox wrote is recognised by its marker line and rewritten freely.
"""

from __future__ import annotations

import os
import shutil
import stat
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from modelbox import layout, sync
from modelbox.changed import tagged_models
from modelbox.check import Problem
from modelbox.errors import AlreadyExistsError, GitError, StoreError
from modelbox.refs import GitRepo
from modelbox.refs.remote import Remote, new_commits
from modelbox.registry import Registry

__all__ = ["HOOKS", "MARKER", "InstalledHook", "check_push", "hooks_dir", "install", "pre_push"]

MARKER = "# modelbox-hook:"
PRE_PUSH_SCRIPT = "modelbox-git-pre-push"
REFS_SYNC_SCRIPT = "modelbox-git-refs-sync"
# hook -> (console script, whether git feeds it lines on stdin)
HOOKS: dict[str, tuple[str, bool]] = {
    "pre-push": (PRE_PUSH_SCRIPT, True),
    "post-merge": (REFS_SYNC_SCRIPT, False),
    "post-checkout": (REFS_SYNC_SCRIPT, False),
    "post-rewrite": (REFS_SYNC_SCRIPT, True),
}
_ZERO = "0" * 40


@dataclass(frozen=True)
class InstalledHook:
    name: str
    path: Path
    action: str  # "installed", "updated", "chained", "replaced"


def hooks_dir(repo: GitRepo) -> Path:
    """Where git looks for hooks: ``core.hooksPath`` (relative to the work tree) or
    ``<git dir>/hooks``."""
    configured = repo.config_value("core", "hooksPath")
    if configured:
        path = Path(configured).expanduser()
        return path if path.is_absolute() else (repo.root or repo.git_dir) / path
    return repo.git_dir / "hooks"


def _script_path(name: str) -> str:
    """The console script beside this interpreter (the installation that wrote the hook),
    else the one on PATH; the hook falls back to PATH at run time if it moves."""
    here = Path(sys.executable).parent / name
    if here.is_file():
        return str(here)
    return shutil.which(name) or name


def _hook_text(hook: str) -> str:
    script, reads_stdin = HOOKS[hook]
    path = _script_path(script).replace("'", "'\\''")
    # $(cat) holds git's input so the chained hook and ours both read it.
    feed = 'printf "%s${input:+\\n}" "$input" | ' if reads_stdin else ""
    failure = "exit 1" if hook == "pre-push" else "exit 0"
    # A failing user pre-push hook stops the push; after a merge the refs still get synced.
    stop = " || exit $?" if hook == "pre-push" else ""
    return "\n".join([
        "#!/bin/sh",
        f"{MARKER} {hook} (written by `modelbox install-hooks`; edit {hook}.local instead)",
        *(['input=$(cat)'] if reads_stdin else []),
        f'chained="$(dirname "$0")/{hook}.local"',
        f'if [ -x "$chained" ]; then {feed}"$chained" "$@"{stop}; fi',
        f"hook='{path}'",
        f'[ -x "$hook" ] || hook={script}',
        'if ! command -v "$hook" >/dev/null 2>&1; then',
        f'  echo "modelbox: {script} not found; reinstall modelbox, then run'
        f' modelbox install-hooks" >&2',
        f"  {failure}",
        "fi",
        f'{feed}exec "$hook" {hook} "$@"',
        "",
    ])


def _is_ours(path: Path) -> bool:
    try:
        head = path.read_bytes()[:4096].decode("utf-8", "replace")
    except OSError:
        return False
    return any(line.startswith(MARKER) for line in head.splitlines()[:3])


def install(repo: GitRepo, *, force: bool = False) -> list[InstalledHook]:
    """Write modelbox's hooks; keep and chain any hook the user had.

    Raises AlreadyExistsError (nothing written) when a user hook cannot be chained
    because ``<hook>.local`` exists too, unless ``force`` (then the hook is replaced and
    the existing ``.local`` is still chained).
    """
    folder = hooks_dir(repo)
    plan: list[tuple[str, Path, str]] = []
    for hook in HOOKS:
        path = folder / hook
        local = folder / f"{hook}.local"
        if not (path.exists() or path.is_symlink()):
            action = "installed"
        elif _is_ours(path):
            action = "updated"
        elif local.exists() or local.is_symlink():
            if not force:
                raise AlreadyExistsError(
                    f"{path} is not a modelbox hook and {local.name} exists too, so it cannot "
                    f"be chained; merge the two by hand or pass --force to replace {hook}"
                )
            action = "replaced"
        else:
            action = "chained"
        plan.append((hook, path, action))
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for hook, path, action in plan:
        if action == "chained":
            path.rename(folder / f"{hook}.local")
        elif action == "replaced":
            path.unlink()
        tmp = path.with_name(f".{hook}.modelbox-tmp")
        tmp.write_text(_hook_text(hook), encoding="utf-8")
        tmp.chmod(tmp.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        os.replace(tmp, path)
        out.append(InstalledHook(hook, path, action))
    return out


def pre_push(registry: Registry, url: str, lines: Iterable[str]) -> int:
    """Place in the store of the remote at ``url`` every object the pointers of the pushed
    commits need; return how many were copied or uploaded.

    ``lines`` are git's pre-push input: ``<local ref> <local sha> <remote ref> <remote sha>``.

    Raises:
        StoreError: an object cannot be placed (unreachable store, object lost, a network
            remote with per-clone stores); the hook then stops the push.
    """
    repo = registry.repo
    heads, known = [], []
    for line in lines:
        parts = line.split()
        if len(parts) != 4:
            continue
        _, local_sha, _, remote_sha = parts
        if remote_sha != _ZERO:
            known.append(remote_sha)
        if local_sha != _ZERO and _is_commit(repo, local_sha):
            heads.append(local_sha)
    if not heads:
        return 0
    # What the remote already has as far as we know: the pushed refs' old values and every
    # remote-tracking branch. Anything else is inspected (safe, only slower).
    known += list(repo.refs_under("refs/remotes/").values())
    commits: dict[str, None] = {}
    for head in heads:
        commits.update(dict.fromkeys(new_commits(repo, head, known)))
    needs = sync._commits_needs(repo, commits)
    if not needs:
        return 0
    remote = Remote(repo, url)
    stores = sync._stores(registry, remote)
    if stores.remote is None:
        raise StoreError(
            f"cannot push to {url}: the registry keeps artifacts in this clone's own store "
            "(.git/modelbox/store), which a network remote cannot receive; set a shared "
            "store (the registry's `store` setting or MODELBOX_STORE), then push again"
        )
    objects = sync._expand(needs, [*stores.copies(), stores.remote])
    return sync._deliver(objects, stores.remote, stores.copies())


def check_push(registry: Registry, lines: Iterable[str]) -> list[Problem]:
    """The rules of ``modelbox check`` over what a plain ``git push`` sends.

    ``lines`` are git's pre-push input. For each pushed registry branch: the files its
    new commits change since the remote's value, and what they affect
    (:func:`modelbox.check.check_range`; a new branch is checked whole). For the pushed
    ``refs/modelbox/tags/*``: each must be what the manifests of the pushed registry
    branch (else the local one) derive (:func:`modelbox.check.check_pushed_refs`).
    Warnings (tags moved outside modelbox) come back with ``warning`` set.
    """
    from modelbox.check import check_pushed_refs, check_range

    repo = registry.repo
    problems: list[Problem] = []
    tag_refs: dict[str, str | None] = {}
    branch_commit = registry.head()
    touched: set[str] = set()
    for line in lines:
        parts = line.split()
        if len(parts) != 4:
            continue
        _, local_sha, remote_ref, remote_sha = parts
        if remote_ref.startswith(layout.TAG_REF_PREFIX):
            tag_refs[remote_ref] = None if local_sha == _ZERO else local_sha
            continue
        if not remote_ref.startswith("refs/heads/") or local_sha == _ZERO:
            continue
        if not _is_commit(repo, local_sha):
            continue
        if repo.snapshot(local_sha).read(layout.SETTINGS) is None:
            continue  # not a registry branch (docs, CI...): not ours to judge
        base = remote_sha if remote_sha != _ZERO and _is_commit(repo, remote_sha) else None
        if remote_ref == registry.branch_ref:
            branch_commit = local_sha
            touched = tagged_models(repo, base, local_sha)
        problems += check_range(registry, base, local_sha, schema=True)
    if tag_refs or touched:
        problems += check_pushed_refs(registry, branch_commit, tag_refs, touched)
    return list(dict.fromkeys(problems))


def _is_commit(repo: GitRepo, sha: str) -> bool:
    if not repo.has_object(sha):
        return False
    try:
        repo.commit_info(sha)
    except GitError:
        return False  # a tag object (refs/modelbox/tags/*): no pointer to check
    return True
