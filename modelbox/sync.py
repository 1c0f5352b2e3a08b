"""Sharing a registry: clone, push, pull and status against another Git repository.

What moves: the registry branch, ``refs/modelbox/*`` (tag refs and the audit chain), and
the objects that pointers need. The order of a push is fixed: every object a pushed
pointer needs is in the remote's store before any ref is sent, or nothing is sent.

* **Stores.** With a shared store (``$MODELBOX_STORE``, ``git config modelbox.store`` or
  the registry's ``store`` setting) the objects are already where every clone reads them;
  a push only checks with ``missing()`` and uploads what this machine's copies hold. With the
  default per-clone store (``.git/modelbox/store``) objects travel between the clone's
  store and ``<remote git dir>/modelbox/store`` when the remote is on this machine; a
  network remote has no store modelbox can reach, so pushing pointers to one stops.
* **Branch.** Never forced: a push whose remote branch moved is refused with the advice
  to pull. A pull fast-forwards, or merges with a merge commit when the two sides changed
  different files, or different keys of the same JSON document (tags, metadata, metric
  series); anything else stops and names the files.
* **Tag refs** are derived: a push force-updates the remote's to match the branch; a
  pull rebuilds the local ones (``refs sync``).
* **Audit chain** (``refs/modelbox/audit``): pushed like the branch (never forced); a pull
  fast-forwards it or joins both chains with a merge commit, so no download event is lost.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelbox import canonical, claims, gittags, layout, limits, recovery
from modelbox.documents import parse_settings
from modelbox.errors import (
    AlreadyExistsError,
    ConcurrentUpdateError,
    GitError,
    IndexLockedError,
    InvalidValueError,
    ManifestError,
    MergeConflictError,
    ModelboxError,
    ObjectMissingError,
    PushRejectedError,
    RemoteError,
    RemoteMovedError,
    StoreError,
    VersionCollisionError,
)
from modelbox.faults import fault
from modelbox.names import ModelName, parse_model
from modelbox.refs import GitRepo, PathChange, Snapshot, incoming, locked, maintenance
from modelbox.refs import remote as git_remote
from modelbox.refs.remote import Remote
from modelbox.registry import AUDIT_REF, Registry

if TYPE_CHECKING:
    from modelbox.objects import ObjectStore

__all__ = [
    "MergeConflictError",
    "PullResult",
    "PushResult",
    "Status",
    "clone",
    "pull",
    "push",
    "status",
]

DEFAULT_REMOTE = "origin"
logger = logging.getLogger(__name__)
_ARTIFACTS = f"/{layout.ARTIFACTS_DIR}/"


# -- remotes ---------------------------------------------------------------------------
def _remote(registry: Registry, name: str | None) -> tuple[str | None, Remote]:
    """``(remote name or None for a bare URL, Remote)``; also adds modelbox's refspecs."""
    repo = registry.repo
    name = name or DEFAULT_REMOTE
    url = git_remote.remote_url(repo, name)
    if url is not None:
        git_remote.ensure_refspecs(repo, name, registry.branch)
        return name, Remote(repo, url)
    if "://" in name or "/" in name or ":" in name or Path(name).exists():
        return None, Remote(repo, name)
    raise InvalidValueError(
        f"no remote named {name!r}; add one with `git remote add {name} URL` or give a URL"
    )


def _remember(repo: GitRepo, name: str | None, refs: dict[str, str]) -> None:
    """Update the remote-tracking refs (``refs/remotes/NAME/...``) to what the remote has."""
    if name is None:
        return
    tracking = git_remote.tracking_refs(name, refs)
    if tracking and any(repo.ref(ref) != sha for ref, sha in tracking.items()):
        git_remote.set_refs(repo, tracking)


# -- objects ---------------------------------------------------------------------------
@dataclass(frozen=True)
class _Need:
    sha256: str
    size: int
    directory: bool


def _pointer_needs(repo: GitRepo, changes: Iterable[tuple[str, str | None]]) -> list[_Need]:
    """The objects the pointer files among ``(path, blob sha)`` name (tracked URIs need none)."""
    return _blob_needs(repo, (
        blob for path, blob in changes
        if blob is not None and _ARTIFACTS in f"/{path}" and path.endswith(".json")
    ))


def _blob_needs(repo: GitRepo, blobs: Iterable[str]) -> list[_Need]:
    """The objects the pointer files with these blob ids name."""
    out: dict[str, _Need] = {}
    for blob in blobs:
        try:
            doc = limits.loads(repo.object(blob).as_raw_string(), "pointer")
        except ValueError:
            continue  # `modelbox check` reports a broken pointer; it names no object
        if isinstance(doc, dict) and isinstance(doc.get("sha256"), str):
            out[doc["sha256"]] = _Need(doc["sha256"], int(doc.get("size") or 0),
                                       bool(doc.get("directory")))
    return list(out.values())


def _new_needs(repo: GitRepo, head: str, known: Iterable[str]) -> list[_Need]:
    """What the pointers added by commits reachable from ``head`` but from none of ``known``
    need (:func:`_commits_needs`; with git, two processes instead of a walk in Python)."""
    known = list(known)
    changes = git_remote.new_changes(repo, head, known, _may_change_pointers)
    if changes is not None:
        return _pointer_needs(repo, changes)
    return _commits_needs(repo, git_remote.new_commits(repo, head, known))


def _commits_needs(repo: GitRepo, commits: Iterable[str]) -> list[_Need]:
    """What the pointers added or changed by ``commits`` need."""
    changes: list[tuple[str, str | None]] = []
    for sha in commits:
        commit = repo.commit_info(sha)
        if not _may_change_pointers(commit.message.decode("utf-8", "replace")):
            continue
        tree = commit.tree.decode()
        parents = [repo.commit_info(p.decode()).tree.decode() for p in commit.parents]
        for old in parents or [None]:
            changes.extend((c.path, c.new_sha) for c in repo.changed_paths(old, tree))
    return _pointer_needs(repo, changes)


def _may_change_pointers(message: str) -> bool:
    """False for a modelbox commit whose operation cannot add a pointer (most of them):
    diffing every pushed commit's tree is what a push of many versions would spend on."""
    for line in message.splitlines():
        if line.startswith("Modelbox-Operation: "):
            return line.split(": ", 1)[1].strip().startswith("artifact.")
    return True  # written by hand or by git (merges): look


def _head_needs(repo: GitRepo, commit: str | None) -> list[_Need]:
    """What every pointer on ``commit`` needs."""
    if commit is None:
        return []
    files = git_remote.files_below(repo, commit, layout.ARTIFACTS_DIR)
    if files is not None:
        return _pointer_needs(repo, files)
    tree = repo.snapshot(commit).tree
    return _pointer_needs(repo, ((c.path, c.new_sha) for c in repo.changed_paths(None, tree)))


def _expand(needs: list[_Need], sources: list[ObjectStore]) -> dict[str, int]:
    """digest -> size of every object: files, directory listings and the files they list."""
    out: dict[str, int] = {}
    for need in needs:
        out[need.sha256] = need.size
        if not need.directory:
            continue
        data = None
        for source in sources:
            try:
                data = source.open_bytes(need.sha256)
                break
            except ObjectMissingError:
                continue
        if data is None:
            continue  # reported as missing with the listing itself
        from modelbox.manifests import DirectoryManifest, parse  # pydantic: only here

        out[need.sha256] = len(data)
        out.update(parse(DirectoryManifest, f"sha256:{need.sha256}", data).objects())
    return out


@dataclass
class _Stores:
    local: ObjectStore
    remote: ObjectStore | None  # None: a network remote with per-clone stores
    shared: bool

    def copies(self) -> list[ObjectStore]:
        """Local folders that may hold an object: this clone's store and the machine cache."""
        from modelbox.objects import default_cache_dir, open_store

        out = [] if self.shared else [self.local]
        return [*out, open_store(str(default_cache_dir() / "objects"))]


def _stores(registry: Registry, remote: Remote) -> _Stores:
    from modelbox.artifacts import store_url
    from modelbox.objects import open_store

    url = store_url(registry)
    local = open_store(url)
    if url != str(registry.repo.git_dir / "modelbox" / "store"):
        return _Stores(local, local, shared=True)  # env, git config or registry setting
    git_dir = remote.local_git_dir()
    other = open_store(str(git_dir / "modelbox" / "store")) if git_dir else None
    return _Stores(local, other, shared=False)


def _deliver(objects: dict[str, int], dest: ObjectStore, sources: list[ObjectStore],
             *, pushed: bool = False) -> int:
    """Copy into ``dest`` each object it lacks from a local folder; return how many
    (``pushed``: the refs are sent already, and an error must say so)."""
    from modelbox.objects import FileDigest

    absent = dest.missing(objects)
    items, lost = [], []
    for digest in sorted(absent):
        for source in sources:
            path = Path(source.key(digest))
            if path.is_file() and path.stat().st_size == objects[digest]:
                items.append((path, FileDigest(digest, objects[digest])))
                break
        else:
            lost.append(digest)
    if lost:
        raise StoreError(
            f"{len(lost)} object(s) that pointers need are neither in {dest.url} nor on this "
            f"machine (sha256:{lost[0]}...); "
            f"{'the refs were pushed, but a gc deleted them' if pushed else 'nothing was pushed'}"
            ". Add the files again with `modelbox artifact add`"
        )
    return dest.put_files(items)


# -- push ------------------------------------------------------------------------------
@dataclass
class PushResult:
    url: str
    branch: str
    before: str | None
    after: str | None
    refs: dict[str, str | None] = field(default_factory=dict)
    objects: int = 0
    pulls: list[PullResult] = field(default_factory=list)  # merges before a retried push

    def to_json(self) -> dict[str, Any]:
        return {"url": self.url, "branch": self.branch, "before": self.before,
                "after": self.after, "refs": self.refs, "objects_uploaded": self.objects,
                "retries": [pulled.to_json() for pulled in self.pulls]}


def push(registry: Registry, remote_name: str | None = None, *, retry: bool = True,
         ) -> PushResult:
    """Send the registry branch, ``refs/modelbox/*`` and the objects pointers need.

    Objects go first; refs only once every object is in the remote's store. When the
    remote moved (another clone pushed first) and ``retry`` is true, its new commits are
    fetched and merged exactly as :func:`pull` does, and the push is tried again, up to
    three times in all; ``PushResult.pulls`` records those merges. While another push
    holds a remote ref's lock and nothing has moved yet, it waits (about 6 s at most)
    and tries again without a pull. A merge conflict
    leaves the registry as it was before the push.

    Raises:
        RemoteMovedError: the remote branch or audit chain has commits we do not have
            (without ``retry``, or still after the last attempt).
        MergeConflictError: with ``retry``, the remote's new commits conflict with ours.
        PushRejectedError: the server refused a ref.
        StoreError: an object cannot be placed (store unreachable, object lost...).
        RemoteError: the remote cannot be reached.
    """
    repo = registry.repo
    before = (registry.head(), repo.ref(AUDIT_REF))
    pulls: list[PullResult] = []
    attempt = waits = 0
    while True:
        try:
            result = _push_once(registry, remote_name)
        except (RemoteMovedError, PushRejectedError) as exc:
            if not retry or not _remote_moved(exc):
                raise
            if _lock_held(exc) and waits < len(_LOCK_WAITS):
                # Another push holds the remote's ref lock and has not landed yet: a pull
                # would find nothing. Wait for it, as git waits on core.filesRefLockTimeout.
                time.sleep(_LOCK_WAITS[waits] * random.uniform(1.0, 1.5))
                waits += 1
                continue
            attempt += 1
            if attempt == _PUSH_ATTEMPTS:
                raise
        else:
            result.pulls = pulls
            return result
        try:
            pulls.append(pull(registry, remote_name))
        except MergeConflictError:
            if pulls:
                _restore(registry, *before)
            raise


_PUSH_ATTEMPTS = 3
# Seconds to wait, one after another, while another push holds a remote ref's lock
# (about 6 s in all, with jitter so two waiting pushes do not retry in step).
_LOCK_WAITS = (0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 2.0)


def _lock_held(exc: RemoteError) -> bool:
    """Whether the remote refused only because another push held a ref's lock while
    nothing we planned against had moved (RemoteMovedError covers a ref that moved)."""
    return isinstance(exc, PushRejectedError) and git_remote.lost_race(exc.statuses)


def _remote_moved(exc: RemoteError) -> bool:
    """Whether a refused push means the remote has commits we lack (pull, then retry)."""
    if isinstance(exc, RemoteMovedError):
        return True
    statuses = exc.statuses if isinstance(exc, PushRejectedError) else {}
    # A ref transaction that lost a race with another push (or found its lock held) is
    # worth another try too: the pull merges what landed, or finds nothing and is cheap.
    return git_remote.lost_race(statuses) or any(
        word in why for why in statuses.values()
        for word in ("non-fast-forward", "fetch first", "stale info"))


def _restore(registry: Registry, head: str | None, audit: str | None) -> None:
    """Undo the merges of earlier push attempts: branch, work tree, audit chain, tag refs."""
    repo = registry.repo
    now = registry.head()
    followed = head is not None and now != head and _advance(registry, now, head)
    current = repo.ref(AUDIT_REF)
    if current != audit:
        with locked(repo.git_dir):
            if audit is None:
                repo.delete_ref(AUDIT_REF)
            else:
                repo.set_ref(AUDIT_REF, audit)
    _sync_refs(registry)
    if followed:
        assert head is not None
        _settled(registry, head)


def _push_once(registry: Registry, remote_name: str | None) -> PushResult:
    repo = registry.repo
    name, remote = _remote(registry, remote_name)
    _, local_tags = _sync_refs(registry)
    ours = registry.head()
    branch_ref = registry.branch_ref
    theirs_refs, _ = remote.ls()
    theirs = theirs_refs.get(branch_ref)
    result = PushResult(remote.url, registry.branch, theirs, ours)
    if ours is None:
        return result
    for ref, mine in ((branch_ref, ours), (AUDIT_REF, repo.ref(AUDIT_REF))):
        other = theirs_refs.get(ref)
        if other is not None and other != mine and not (
            mine is not None and repo.has_object(other)
            and git_remote.is_ancestor(repo, other, mine)
        ):
            raise RemoteMovedError(remote.url, ref)
    updates = _ref_updates(registry, theirs_refs, local_tags)
    updates.update(_git_tag_updates(registry, theirs_refs, remote.url))
    if not updates:
        return result
    delivered: tuple[dict[str, int], ObjectStore, list[ObjectStore]] | None = None
    if branch_ref in updates:
        known = [sha for ref, sha in theirs_refs.items() if ref.startswith("refs/heads/")]
        _check_pushed(registry, theirs, ours, known)
        needs = _new_needs(repo, ours, known)
        if needs:
            stores = _stores(registry, remote)
            if stores.remote is None:
                raise StoreError(
                    f"cannot push to {remote.url}: the registry keeps artifacts in this "
                    "clone's own store (.git/modelbox/store), which a network remote cannot "
                    "receive; set a shared store (the registry's `store` setting or "
                    "MODELBOX_STORE), then push again. Nothing was pushed"
                )
            objects = _expand(needs, [*stores.copies(), stores.remote])
            result.objects = _deliver(objects, stores.remote, stores.copies())
            # Claimed for gc in every clone until they have fetched these commits; a gc
            # racing us is waited for below, then whatever it deleted is put back.
            claims.claim(stores.remote, claims.identity(repo, ours), objects)
            delivered = (objects, stores.remote, stores.copies())
    remote.push(updates, {branch_ref: theirs, AUDIT_REF: theirs_refs.get(AUDIT_REF)})
    if delivered is not None:
        claims.wait_for_gc(delivered[1])
        result.objects += _deliver(*delivered, pushed=True)
    result.refs = updates
    _remember(repo, name, {ref: sha for ref, sha in updates.items() if sha is not None})
    return result


def _check_pushed(registry: Registry, theirs: str | None, ours: str, known: list[str],
                  ) -> None:
    """Refuse to publish hand-made commits that break the rules of ``modelbox check``
    (the engine the pre-push hook runs for a plain ``git push``). Commits modelbox wrote
    are valid by construction: a push of only those costs a look at their messages."""
    from modelbox.check import check_range
    from modelbox.outside import is_audited

    commits = git_remote.new_commits(registry.repo, ours, known)
    if all(is_audited(record) for record in registry.history.records(commits)):
        return
    base = theirs if theirs is not None and registry.repo.has_object(theirs) else None
    errors = [p for p in check_range(registry, base, ours) if not p.warning]
    if errors:
        since = f" --since {base}" if base else ""
        raise ManifestError(errors[0].path, (
            f"{errors[0].message} (and {len(errors) - 1} more problem(s); `modelbox check"
            f"{since}` lists them); nothing was pushed"
            if len(errors) > 1 else f"{errors[0].message}; nothing was pushed"))


# -- tag refs --------------------------------------------------------------------------
_SYNCED = "modelbox/tag-refs-synced"  # below the git dir
_SYNCED_FORMAT = "tag-refs 1"  # bump when the tag refs a branch implies change shape


def _sync_refs(registry: Registry,
               ) -> tuple[dict[str, tuple[str | None, str | None]], dict[str, str]]:
    """``registry.sync_refs()``, skipped when neither the registry branch nor any tag ref
    moved since the last sync this module ran: the tag refs are a function of the branch,
    and computing them reads every model (~1 s for 1,000), which a push that has nothing
    to send must not pay. Returns what changed and the tag refs now."""
    mark = registry.repo.git_dir / _SYNCED
    tags = git_remote.refs_under(registry.repo, layout.TAG_REF_PREFIX)
    try:
        if mark.read_text(encoding="utf-8") == _refs_state(registry, tags):
            return {}, tags
    except OSError:
        pass  # never synced here: sync
    changed = registry.sync_refs()
    if changed:
        tags = git_remote.refs_under(registry.repo, layout.TAG_REF_PREFIX)
    tmp = mark.with_name(f"{mark.name}.{os.getpid()}.tmp")
    try:
        mark.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(_refs_state(registry, tags), encoding="utf-8")
        os.replace(tmp, mark)
    except OSError:
        tmp.unlink(missing_ok=True)  # a read-only git dir: sync every time, as before
    return changed, tags


def _refs_state(registry: Registry, tags: dict[str, str]) -> str:
    """The registry branch's commit and a digest of every tag ref (name and target)."""
    digest = hashlib.sha1(usedforsecurity=False)
    for name, sha in sorted(tags.items()):
        digest.update(f"{name} {sha}\n".encode())
    return f"{_SYNCED_FORMAT}\n{registry.registry_head()}\n{digest.hexdigest()}\n"


def _ref_updates(registry: Registry, theirs: dict[str, str], local_tags: dict[str, str],
                 ) -> dict[str, str | None]:
    """What a push sends: the branch, the audit chain, and the tag refs made to match."""
    repo = registry.repo
    updates: dict[str, str | None] = {}
    for ref, mine in ((registry.branch_ref, registry.head()), (AUDIT_REF, repo.ref(AUDIT_REF))):
        if mine is not None and theirs.get(ref) != mine:
            updates[ref] = mine
    for ref in theirs:
        if ref.startswith(layout.TAG_REF_PREFIX) and ref not in local_tags:
            updates[ref] = None
    for ref, sha in local_tags.items():
        if theirs.get(ref) != sha:
            updates[ref] = sha
    return updates


def _git_tag_updates(registry: Registry, theirs: dict[str, str], url: str,
                     ) -> dict[str, str]:
    """The GTO tags (``git_tags`` on) the remote lacks, each of ours whose counter the
    remote already holds for that model renumbered first. One the remote holds under the
    same name but as another object means someone pushed first with that name:
    RemoteMovedError, so that the retry's pull takes theirs and makes ours again."""
    if not registry.git_tags_on():
        return {}
    for ref, sha in gittags.local_refs(registry).items():
        other = theirs.get(ref)
        if other is not None and other != sha:
            raise RemoteMovedError(url, ref)
    with locked(registry.repo.git_dir):
        return gittags.renumber(registry, theirs)


def _pull_git_tags(registry: Registry, fetched: dict[str, str], url: str) -> list[str]:
    """Take the remote's GTO tags (checked), then make the ones the registry branch now
    lacks: a change merged on a forge gets its tags here, from history (docs/gto.md)."""
    if not registry.git_tags_on():
        return []
    with locked(registry.repo.git_dir):
        changed = gittags.admit(
            registry, {r: s for r, s in fetched.items() if gittags.is_gto_ref(r)}, url)
        admitted = {parsed.artifact for parsed in map(gittags.parse, changed) if parsed}
        return changed + gittags.reconcile_changed(registry, admitted)


# -- pull ------------------------------------------------------------------------------
@dataclass
class PullResult:
    url: str
    branch: str
    before: str | None
    after: str | None
    how: str  # "up to date", "fast-forward", "merge"
    objects: int = 0
    refs: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)
    git_tags: list[str] = field(default_factory=list)  # GTO tags taken or made

    def to_json(self) -> dict[str, Any]:
        return {"url": self.url, "branch": self.branch, "before": self.before,
                "after": self.after, "how": self.how, "objects_copied": self.objects,
                "refs": {k: {"before": b, "after": a} for k, (b, a) in self.refs.items()},
                "git_tags": self.git_tags}


def pull(registry: Registry, remote_name: str | None = None) -> PullResult:
    """Fetch, then fast-forward or merge the registry branch and the audit chain.

    The work tree and index follow as after any write (a hand edit on a file the pull
    changes stops it before anything moves), then the tag refs are rebuilt.

    Raises:
        MergeConflictError: both sides changed the same part of a file.
        WorktreeDirtyError: a file the pull would change carries an uncommitted edit.
        RemoteError: the remote cannot be reached.
    """
    repo = registry.repo
    if recovery.pending(repo.git_dir):  # a write cut short: finish it before pulling
        with locked(repo.git_dir):
            recovery.recover(registry)
    name, remote = _remote(registry, remote_name)
    branch_ref = registry.branch_ref
    ours = registry.head()
    # The branch's new commits are checked before their objects enter the repository
    # (all of them, not only the tip): a path that may not be written stops the pull.
    fetched, _ = remote.fetch(
        lambda ref: ref in (branch_ref, AUDIT_REF) or gittags.is_gto_ref(ref)
        or (name is not None and ref.startswith("refs/heads/")),
        check={branch_ref: ours},
    )
    _remember(repo, name, fetched)
    theirs = fetched.get(branch_ref)
    if _diverged(repo, ours, theirs) or _diverged(repo, repo.ref(AUDIT_REF),
                                                  fetched.get(AUDIT_REF)):
        repo.identity()  # a merge commit needs an author: refuse before anything moves
    result = PullResult(remote.url, registry.branch, ours, ours, "up to date")
    if theirs is not None and ours != theirs:
        if ours is None or git_remote.is_ancestor(repo, ours, theirs):
            result.after, result.how = theirs, "fast-forward"
        elif not git_remote.is_ancestor(repo, theirs, ours):
            result.after = _merge(registry, ours, theirs, remote.url)
            result.how = "merge"
    followed = False
    if result.after != ours:
        assert result.after is not None
        _check_settings(repo, result.after, remote.url)
        followed = _advance(registry, ours, result.after)
        result.objects = _fetch_objects(registry, remote, ours, result.after)
    _join_audit(repo, fetched.get(AUDIT_REF), remote.url)
    if result.after != ours or not git_remote.has_refs_under(repo, layout.TAG_REF_PREFIX):
        try:
            result.refs, _ = _sync_refs(registry)
        except GitError as exc:
            if result.after == ours:
                raise
            # The pull has landed; a ref locked by another process waits for the next write.
            followed = False
            logger.warning("modelbox: warning: %s; the tag refs will be brought up to date "
                           "by the next modelbox write (or `modelbox check --fix`)", exc)
    try:
        result.git_tags = _pull_git_tags(registry, fetched, remote.url)
    except GitError as exc:  # the pull has landed; the next write makes the tags
        logger.warning("modelbox: warning: %s; the Git tags will be made by the next "
                       "modelbox write", exc)
    if followed:
        assert result.after is not None
        _settled(registry, result.after)
    if result.after != ours:  # fetched packs count toward git's gc thresholds too
        maintenance.after_write(repo)
    return result


def _check_settings(repo: GitRepo, commit: str, url: str) -> None:
    """Refuse a pull whose result has settings this clone must not use (a ``branch`` that
    is no safe ref name, a ``store`` with credentials or a local or chained protocol):
    they came from the remote, and nothing has moved yet."""
    data = repo.snapshot(commit).read(layout.SETTINGS)
    if data is None:
        return
    try:
        store = parse_settings(layout.SETTINGS, data).store
        if store:
            from modelbox.objects import schemes

            allowed = schemes.allowed_schemes(repo.config_value(*schemes.CONFIG_KEY))
            schemes.check_store_url(store, f"the store setting of {layout.SETTINGS}", allowed)
    except (ManifestError, InvalidValueError) as exc:
        raise RemoteError(f"refusing to pull from {url}, nothing was pulled: {exc}") from None


def _advance(registry: Registry, old: str | None, new: str) -> bool:
    """Move the registry branch from ``old`` to ``new``; the work tree and index follow.

    The move is journaled first (:mod:`modelbox.recovery`): the caller rebuilds the tag
    refs, then calls :func:`_settled`. False if the index was locked by another process
    (the journal then stays, and the next write finishes the work tree and index).
    """
    repo = registry.repo
    with locked(repo.git_dir):
        recovery.recover(registry)
        if registry.head() != old:
            raise ConcurrentUpdateError(
                f"{registry.branch} moved while pulling; run `modelbox pull` again"
            )
        old_tree = repo.snapshot(old).tree
        changes = list(repo.changed_paths(old_tree, repo.snapshot(new).tree))
        worktree = registry.worktree()
        if worktree is not None:
            worktree.check_clean(changes)
        tag_refs: list[str] | str = recovery.ALL if registry.target_branch is None else []
        recovery.begin(repo.git_dir, recovery.BranchMove(registry.branch_ref, old, new,
                                                         tag_refs=tag_refs))
        repo.update_ref(registry.branch_ref, old, new, "modelbox: pull")
        fault("after-ref-move")
        if worktree is not None:
            try:
                worktree.apply(changes)
            except IndexLockedError as exc:
                logger.warning("modelbox: warning: %s; the index and work tree will be "
                               "brought up to date by the next modelbox write (or "
                               "`modelbox check --fix`)", exc)
                return False
    return True


def _settled(registry: Registry, new: str) -> None:
    """The work tree, index and tag refs have followed the move to ``new``: drop its journal."""
    with locked(registry.repo.git_dir):
        recovery.clear(registry.repo.git_dir, new=new)


def _fetch_objects(registry: Registry, remote: Remote, old: str | None, new: str) -> int:
    """With per-clone stores and a remote on this machine, copy what new pointers need."""
    repo = registry.repo
    needs = _new_needs(repo, new, [old] if old else [])
    if not needs:
        return 0
    stores = _stores(registry, remote)
    if stores.shared or stores.remote is None:
        return 0  # shared: nothing to copy; network remote: `get` will report what lacks
    objects = _expand(needs, [stores.remote, stores.local])
    present = set(objects) - stores.remote.missing(objects)
    return _deliver({d: objects[d] for d in present}, stores.local, [stores.remote])


def _diverged(repo: GitRepo, ours: str | None, theirs: str | None) -> bool:
    """Whether joining ``theirs`` into ``ours`` takes a merge commit."""
    return (ours is not None and theirs is not None and ours != theirs
            and not git_remote.is_ancestor(repo, ours, theirs)
            and not git_remote.is_ancestor(repo, theirs, ours))


def _join_audit(repo: GitRepo, theirs: str | None, url: str) -> None:
    """Fast-forward the local audit chain, or join both with a merge commit."""
    if theirs is None:
        return
    with locked(repo.git_dir):
        ours = repo.ref(AUDIT_REF)
        if ours == theirs or (ours is not None and git_remote.is_ancestor(repo, theirs, ours)):
            return
        new = theirs
        if ours is not None and not git_remote.is_ancestor(repo, ours, theirs):
            new = repo.write_commit(
                tree=repo.build_tree(None, {}), parents=[ours, theirs],
                message=f"Merge audit events from {url}\n", author=repo.identity(),
            )
        repo.update_ref(AUDIT_REF, ours, new, "modelbox: pull audit")


# -- merging ---------------------------------------------------------------------------
class _ConflictError(Exception):
    """Both sides changed one value differently (internal: becomes MergeConflictError)."""


_ABSENT: Any = object()


def _merge_values(base: Any, ours: Any, theirs: Any) -> Any:
    """Three-way merge of JSON values: dicts key by key, append-only lists by their tails."""
    if ours == theirs:
        return ours
    if ours == base:
        return theirs
    if theirs == base:
        return ours
    if all(isinstance(v, dict) for v in (ours, theirs)) and (
        base is _ABSENT or isinstance(base, dict)
    ):
        start = base if isinstance(base, dict) else {}
        out = {}
        for key in sorted(start.keys() | ours.keys() | theirs.keys()):
            merged = _merge_values(start.get(key, _ABSENT), ours.get(key, _ABSENT),
                                   theirs.get(key, _ABSENT))
            if merged is not _ABSENT:
                out[key] = merged
        return out
    if all(isinstance(v, list) for v in (base, ours, theirs)) and (
        ours[: len(base)] == base and theirs[: len(base)] == base
    ):
        return base + ours[len(base):] + theirs[len(base):]
    raise _ConflictError


def _merge_file(base: bytes | None, ours: bytes | None, theirs: bytes | None) -> bytes | None:
    """The merged content of a JSON document changed on both sides (None: deleted)."""
    docs = [_ABSENT if data is None else limits.loads(data, "") for data in (base, ours, theirs)]
    merged = _merge_values(*docs)
    return None if merged is _ABSENT else canonical.encode(merged)


def _merge(registry: Registry, ours: str, theirs: str, url: str) -> str:
    """Write a merge commit of ``ours`` and ``theirs``; refuse overlapping changes."""
    repo = registry.repo
    base = git_remote.merge_base(repo, ours, theirs)
    base_snap, our_snap, their_snap = (repo.snapshot(base), repo.snapshot(ours),
                                       repo.snapshot(theirs))
    mine = {c.path: c for c in repo.changed_paths(base_snap.tree, our_snap.tree)}
    other = {c.path: c for c in repo.changed_paths(base_snap.tree, their_snap.tree)}
    _refuse_twin_versions(registry, mine, other, our_snap, their_snap, url)
    writes: dict[str, bytes | None] = {}
    conflicts = []
    for path, change in other.items():
        if path not in mine:
            writes[path] = their_snap.read(path) if change.new_sha else None
        elif mine[path].new_sha != change.new_sha:
            try:
                writes[path] = _merge_file(base_snap.read(path), our_snap.read(path),
                                           their_snap.read(path))
            except (_ConflictError, ValueError):
                conflicts.append(path)
    if conflicts:
        raise MergeConflictError(url, registry.branch, sorted(conflicts))
    tree = repo.build_tree(our_snap.tree, writes)
    _check_tags(repo, tree, mine.keys() | other.keys(), url, registry.branch)
    return repo.write_commit(
        tree=tree, parents=[ours, theirs], author=repo.identity(),
        message=f"Merge {registry.branch} of {url}\n",
    )


_VERSION_PATH = re.compile(
    rf"{layout.MODELS}/(.+)/{layout.VERSIONS_DIR}/([^/]+)/{re.escape(layout.VERSION_FILE)}")


def _refuse_twin_versions(registry: Registry, mine: dict[str, PathChange],
                          other: dict[str, PathChange], our_snap: Snapshot,
                          their_snap: Snapshot, url: str) -> None:
    """Refuse a merge where both sides created the same version (two clones that each took
    the next ``vN``), before any file of it is merged: one line naming the version and a
    way to keep ours, instead of a list of conflicting paths."""
    twins = sorted(
        (match.group(1), match.group(2), path) for path, change in other.items()
        if change.old_sha is None and change.new_sha is not None
        and (match := _VERSION_PATH.fullmatch(path))
        and path in mine and mine[path].old_sha is None and mine[path].new_sha is not None
        and mine[path].new_sha != change.new_sha
    )
    if not twins:
        return
    from modelbox.numbering import next_version

    model, version, _ = twins[0]
    name = parse_model(model)
    first = f"{model}@{version}"
    free = max((next_version(our_snap, name), next_version(their_snap, name)),
               key=lambda v: int(v[1:]))
    if _is_collection(our_snap, name):
        link = _doc(our_snap, twins[0][2]).get("link") or "SOURCE"
        remedy = (f"Link yours again after a pull: `modelbox unlink {first} --force`, "
                  f"`modelbox pull`, then `modelbox link {link} {model}`")
    else:
        remedy = (f"Keep yours under a free number: `modelbox version create {model} {free} "
                  f"--from {first}`, then `modelbox version delete {first} --force`, and push "
                  f"again")
    raise VersionCollisionError(url, registry.branch, [t[2] for t in twins],
                                [f"{m}@{v}" for m, v, _ in twins], remedy)


def _doc(snap: Snapshot, path: str) -> dict[str, Any]:
    """A document as plain JSON, ``{}`` when missing or broken (``check`` reports those)."""
    try:
        doc = limits.loads(snap.read(path) or b"{}", "")
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}


def _is_collection(snap: Snapshot, model: ModelName) -> bool:
    return _doc(snap, layout.model_file(model)).get("collection") is True


def _check_tags(repo: GitRepo, tree: str, paths: Iterable[str], url: str, branch: str) -> None:
    """Refuse a merge whose tag maps name a version the other side removed."""
    snap = Snapshot(repo, None, tree)
    models = {p.split("/_", 1)[0] for p in paths if p.startswith(layout.MODELS + "/")}
    bad = []
    for model_dir in sorted(models):
        data = snap.read(f"{model_dir}/{layout.TAGS_FILE}")
        tags = json.loads(data).get("tags", {}) if data else {}
        for version in tags.values():
            path = f"{model_dir}/{layout.VERSIONS_DIR}/{version}/{layout.VERSION_FILE}"
            if snap.read(path) is None:
                bad.append(f"{model_dir}/{layout.TAGS_FILE}")
    if bad:
        raise MergeConflictError(url, branch, sorted(set(bad)))


# -- clone -----------------------------------------------------------------------------
def _default_dir(url: str) -> Path:
    name = url.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1]
    name = name[: -len(".git")] if name.endswith(".git") else name
    return Path(name or "registry")


def _absolute_if_local(url: str) -> str:
    """A relative path to a repository on this machine made absolute, as ``git clone``
    stores it: ``origin`` must still name it from inside the clone. URLs (``scheme://``)
    and scp-like ``host:path`` stay as given."""
    colon, slash = url.find(":"), url.find("/")
    scp_like = colon > 0 and (slash < 0 or colon < slash)
    if "://" in url or scp_like or os.path.isabs(url) or not os.path.exists(url):
        return url
    return os.path.abspath(url)


def clone(url: str, dest: Path | None = None, *, name: str = DEFAULT_REMOTE) -> Path:
    """Clone the registry at ``url`` into ``dest``: its branch, ``refs/modelbox/*`` and the
    remote's refspecs, checked out. Artifacts are not downloaded (``modelbox get`` does).

    Raises:
        AlreadyExistsError: ``dest`` exists and is not empty.
        RemoteError: the remote cannot be reached, or no branch of it holds a registry.
    """
    url = _absolute_if_local(url)
    dest = dest or _default_dir(url)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise AlreadyExistsError(f"{dest} already exists and is not empty; choose another DIR")
    existed = dest.exists()
    try:
        with git_remote.cloning(url, dest, name) as (repo, branches, head):
            commit = _settle_branch(repo, url, name, branches, head)
            incoming.check_tree(repo, commit, url)  # before a file is written
            registry = Registry.open(dest)
            try:
                # With git, three things at once: the history behind the commits the
                # clone holds so far arrives, git writes the work tree (disk work), and
                # the tag refs are synced (CPU work). A shallow clone's refs are synced
                # once its history is whole: its one commit would date every tag, so
                # each ref would be written twice (3,334 ref writes, ~13 s at 100k).
                with git_remote.checking_out(registry.repo, commit):
                    shallow = (registry.repo.git_dir / "shallow").exists()
                    if not shallow:
                        _sync_refs(registry)
                    _clone_objects(registry, url)
            finally:
                registry.close()
        _check_history(dest, commit, url)
        if shallow:  # the tag refs' dates come from history, which is whole only now
            _resync_refs(dest)
        _check_git_tags(dest, url)
    except (ModelboxError, KeyboardInterrupt):
        git_remote.discard_clone(dest, existed=existed)
        raise
    return dest


def _resync_refs(dest: Path) -> None:
    registry = Registry.open(dest)
    try:
        (registry.repo.git_dir / _SYNCED).unlink(missing_ok=True)
        _sync_refs(registry)
    finally:
        registry.close()


def _check_git_tags(dest: Path, url: str) -> None:
    """A clone copies ``refs/tags/*`` as the remote has them: drop each GTO tag that
    would not be admitted by a pull (a bad name, a commit off the registry branch)."""
    registry = Registry.open(dest)
    try:
        with locked(registry.repo.git_dir):
            gittags.admit(registry, gittags.local_refs(registry), url)
    finally:
        registry.close()


def _check_history(dest: Path, commit: str, url: str) -> None:
    """Refuse a clone whose history (complete only now, with git) holds a path that may
    not be written: a later checkout of an older commit would write it."""
    repo = GitRepo.open(dest)
    try:
        incoming.check_commits(repo, [commit], [], url)
    finally:
        repo.close()


def _settle_branch(repo: GitRepo, url: str, name: str, branches: dict[str, str],
                   head: str | None) -> str:
    """Pick the registry branch, make it the clone's one branch and the checked-out one,
    and configure the remote; return its commit (the caller checks it out)."""
    order = [b for b in (head, "main", "master") if b and f"refs/heads/{b}" in branches]
    order += sorted(ref[len("refs/heads/"):] for ref in branches
                    if ref[len("refs/heads/"):] not in order)
    branch = None
    for candidate in order:
        data = repo.snapshot(branches[f"refs/heads/{candidate}"]).read(layout.SETTINGS)
        if data is not None:
            branch = parse_settings(layout.SETTINGS, data).branch
            branch = branch if f"refs/heads/{branch}" in branches else candidate
            break
    if branch is None:
        raise RemoteError(f"{url} holds no modelbox registry (no branch has {layout.SETTINGS})")
    if branch != head:  # the clone holds one branch of its own: the registry's
        repo.set_ref(f"refs/heads/{branch}", branches[f"refs/heads/{branch}"])
        git_remote.set_head(repo, branch)
        if head is not None:
            git_remote.forget_branch(repo, head)
    git_remote.configure_remote(repo, name, url, branch)
    return branches[f"refs/heads/{branch}"]


def _clone_objects(registry: Registry, url: str) -> None:
    """With the default store and a remote on this machine, copy into the clone's store
    the objects the checked-out pointers need (so `get` works offline, as before)."""
    remote = Remote(registry.repo, url)
    if remote.is_network():
        return  # no store of the remote to copy from, whatever the store setting
    stores = _stores(registry, remote)
    if not stores.shared and stores.remote is not None:
        objects = _expand(_head_needs(registry.repo, registry.head()), [stores.remote])
        present = set(objects) - stores.remote.missing(objects)
        _deliver({d: objects[d] for d in present}, stores.local, [stores.remote])


# -- status ----------------------------------------------------------------------------
@dataclass
class Status:
    url: str
    branch: str
    local: str | None
    remote: str | None
    ahead: int
    behind: int | None  # None: the remote has commits not fetched yet
    audit: str  # "up to date", "ahead", "behind", "diverged", "none"
    missing_locally: list[str]
    missing_remotely: list[str] | None  # None: no store of the remote is reachable
    ref_drift: dict[str, str]  # local tag refs vs the manifests
    remote_ref_drift: dict[str, str]  # the remote's tag refs vs the manifests

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _drift(actual: dict[str, str], desired: dict[str, str]) -> dict[str, str]:
    out = {ref: "missing" for ref in desired.keys() - actual.keys()}
    out.update({ref: "extra" for ref in actual.keys() - desired.keys()})
    out.update({ref: "stale" for ref in desired.keys() & actual.keys()
                if desired[ref] != actual[ref]})
    return dict(sorted(out.items()))


def _relation(repo: GitRepo, ours: str | None, theirs: str | None) -> str:
    if ours == theirs:
        return "up to date" if ours else "none"
    if theirs is None:
        return "ahead"
    if ours is None:
        return "behind"
    if not repo.has_object(theirs):
        return "behind"
    if git_remote.is_ancestor(repo, theirs, ours):
        return "ahead"
    return "behind" if git_remote.is_ancestor(repo, ours, theirs) else "diverged"


def status(registry: Registry, remote_name: str | None = None) -> Status:
    """Compare this clone with the remote: commits, audit chain, objects and tag refs.

    Raises:
        RemoteError: the remote cannot be reached.
        StoreError: a store cannot be listed.
    """
    repo = registry.repo
    _, remote = _remote(registry, remote_name)
    refs, _ = remote.ls()
    ours, theirs = registry.head(), refs.get(registry.branch_ref)
    known = [theirs] if theirs and repo.has_object(theirs) else []
    ahead = len(git_remote.new_commits(repo, ours, known)) if ours else 0
    behind: int | None = 0
    if theirs is not None and theirs != ours:
        behind = (len(git_remote.new_commits(repo, theirs, [ours] if ours else []))
                  if repo.has_object(theirs) else None)
    desired = registry.all_desired_refs()
    stores = _stores(registry, remote)
    copies = [stores.local] if stores.remote is None else [stores.local, stores.remote]
    objects = _expand(_head_needs(repo, ours), copies)
    remote_tags = {r: s for r, s in refs.items() if r.startswith(layout.TAG_REF_PREFIX)}
    return Status(
        url=remote.url, branch=registry.branch, local=ours, remote=theirs, ahead=ahead,
        behind=behind, audit=_relation(repo, repo.ref(AUDIT_REF), refs.get(AUDIT_REF)),
        missing_locally=sorted(stores.local.missing(objects)),
        missing_remotely=None if stores.remote is None else sorted(
            stores.remote.missing(objects)),
        ref_drift=_drift(git_remote.refs_under(repo, layout.TAG_REF_PREFIX), desired),
        remote_ref_drift=_drift(remote_tags, desired),
    )
