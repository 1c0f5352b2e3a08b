"""Garbage collection: retention first, then the store's unreferenced objects.

1. For every model with a retention policy, the versions it drops (beyond the newest
   ``keep_last``; tagged ones kept unless ``keep_tagged`` is false, linked ones unless
   ``keep_linked`` is false) are archived — one commit each, naming the policy. Archived
   versions keep their history and pointers.
2. An object is *referenced* if a pointer in any commit reachable from what ``git gc``
   keeps names it (directly, or through a directory manifest): every ref in every
   namespace, HEAD and every linked worktree's HEAD, and the reflog entries newer than
   ``gc.reflogExpire`` (:mod:`modelbox.refs.roots`). Everything else in the store is
   garbage, except objects younger than the grace period (default 14 days, git's
   ``gc.pruneExpire``) and objects a write in any clone claimed within it
   (:mod:`modelbox.claims`): another clone may have committed pointers to them that it has
   not pushed yet.
3. A store another registry also writes to is refused (``StoreSharedError``) unless the
   caller says it owns the store: gc cannot see that registry's pointers.

Deleting re-reads the claims before each batch, under a ``gc/`` note that makes a
concurrent write wait and then put its objects again — so a committed pointer never names
an object gc deleted.

``--dry-run`` reports both steps and changes nothing. ``--no-history`` is the one way to
free the storage of archived versions (and archived checkpoints: an experiment's retention
archives them, :mod:`modelbox.autopromote`) and of old history: it counts only pointers at
the tips of the refs (no reflog), outside archived versions and checkpoints that no live
collection link reaches — objects only old commits need are deleted, so checking out such
a commit later will find its artifacts gone.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

from modelbox import claims, layout, limits
from modelbox.errors import GitError, ModelboxError, StoreSharedError
from modelbox.manifests import DirectoryManifest, VersionManifest, parse
from modelbox.names import parse_model
from modelbox.objects import ObjectStore
from modelbox.policies import read_policy
from modelbox.refs import GitRepo
from modelbox.refs.roots import Roots, gc_roots
from modelbox.registry import Registry

DEFAULT_GRACE_SECONDS = 14 * 86400  # git's gc.pruneExpire
_BATCH = 100  # objects deleted per re-read of the claims
_SHA1 = re.compile(r"[0-9a-f]{40}")


@dataclass(frozen=True)
class ArchivedCheckpoint:
    """An archived checkpoint (by checkpoint retention, or by hand): the objects its
    pointers name, their size, and how many of them this gc deletes."""

    checkpoint: str  # EXP@CKPT
    objects: int
    bytes: int
    freed: int
    freed_bytes: int

    def to_json(self) -> dict[str, object]:
        return {"checkpoint": self.checkpoint, "objects": self.objects, "bytes": self.bytes,
                "freed": self.freed, "freed_bytes": self.freed_bytes}


@dataclass
class GcPlan:
    archive: list[tuple[str, str]] = field(default_factory=list)  # (model, version)
    delete: list[str] = field(default_factory=list)  # digests
    referenced: int = 0
    young: int = 0  # unreferenced but inside the grace period
    unreadable: list[str] = field(default_factory=list)  # directory manifests we could not read
    checkpoints: list[ArchivedCheckpoint] = field(default_factory=list)  # archived ones
    claimed: int = 0  # unreferenced here, but a write in some clone claimed it lately
    grace_seconds: float = DEFAULT_GRACE_SECONDS
    roots: str = ""  # which roots kept objects alive, for the dry run
    others: list[claims.Writer] = field(default_factory=list)  # other clones writing here
    foreign: list[claims.Writer] = field(default_factory=list)  # other registries (overridden)
    _claims: claims.Claims | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "archive": [f"{m}@{v}" for m, v in self.archive], "delete": self.delete,
            "referenced": self.referenced, "young": self.young, "unreadable": self.unreadable,
            "claimed": self.claimed, "grace_hours": self.grace_seconds / 3600,
            "archived_checkpoints": [c.to_json() for c in self.checkpoints],
            "roots": self.roots,
            "other_clones": [{"clone": w.where, "written": w.written} for w in self.others],
            "other_registries": [{"registry": w.registry, "clone": w.where,
                                  "written": w.written} for w in self.foreign],
        }


def retention_drops(registry: Registry) -> list[tuple[str, str]]:
    """``(model, version)`` pairs the retention policies would archive: beyond the newest
    ``keep_last``, except tagged versions (unless ``keep_tagged`` is false) and versions a
    collection links (unless ``keep_linked`` is false)."""
    from modelbox.collections import iter_links

    snap = registry.snapshot()
    out = []
    linked: set[str] | None = None  # every link's source, read once and only if needed
    for manifest in registry.list_models():
        model = parse_model(manifest.full_name)
        policy = read_policy(snap, model)
        if policy is None or policy.retention is None:
            continue
        keep = policy.retention
        if keep.keep_linked and linked is None:
            linked = {source for _, source, archived in iter_links(snap) if not archived}
        versions: list[VersionManifest] = registry.list_versions(model)  # not archived
        tagged = set(registry.tags_in(snap, model).values())
        newest = {v.version for v in versions[-keep.keep_last :]}
        for v in versions:
            if (v.version in newest or (keep.keep_tagged and v.version in tagged)
                    or (keep.keep_linked and f"{model}@{v.version}" in (linked or set()))):
                continue
            out.append((str(model), v.version))
    return out


def referenced_digests(
    registry: Registry, store: ObjectStore, plan: GcPlan, *, history: bool = True,
    roots: Roots | None = None,
) -> set[str]:
    """Every digest a pointer in any reachable commit (or, without ``history``, at the tip
    of any ref and outside archived versions) or tag ref names."""
    repo = registry.repo
    digests: set[str] = set()
    directories: set[str] = set()
    # With history, the walk covers every tree ever committed (~7 per commit); git's own
    # rev-list does it in C, ~10x faster than reading each tree here. Without git, or
    # without history (which must look inside version folders), walk in Python.
    roots = roots or gc_roots(repo, time.time())
    starts = roots.all() if history else set(roots.refs.values())
    fast = repo.reachable_blobs(starts, layout.ARTIFACTS_DIR, index=True) if history else None
    for sha in fast or ():
        _collect(repo.object(sha).as_raw_string(), digests, directories)
    trees = [] if fast is not None else _root_trees(repo, starts, history=history)
    linked = set() if history else _linked_trees(registry)
    seen_trees: set[str] = set()
    seen_blobs: set[str] = set()
    work = [(t, False) for t in trees]
    while work:
        tree, in_artifacts = work.pop()
        if tree in seen_trees:
            continue
        seen_trees.add(tree)
        entries = repo.tree_entries(tree)
        if not history and tree not in linked and _archived(repo, entries):
            continue  # an archived version folder no live link reaches: not live
        for name, is_dir, sha in entries:
            inside = in_artifacts or name == layout.ARTIFACTS_DIR
            if is_dir:
                work.append((sha, inside))
            elif in_artifacts and name.endswith(".json") and sha not in seen_blobs:
                seen_blobs.add(sha)
                _collect(repo.object(sha).as_raw_string(), digests, directories)
    for digest in directories:
        try:
            listing = parse(DirectoryManifest, f"sha256:{digest}", store.open_bytes(digest))
        except ModelboxError:
            plan.unreadable.append(digest)  # keep what we cannot see into: never guess
            continue
        digests.update(listing.objects())  # its loose files and its packs
    return digests | directories


def _root_trees(repo: GitRepo, starts: set[str], *, history: bool) -> list[str]:
    """The trees of every commit reachable from ``starts`` (only the starts themselves
    without ``history``), and the trees tag objects point at (modelbox's tag refs name a
    version folder's tree; a plain annotated tag names a commit)."""
    trees: list[str] = []
    seen: set[str] = set()
    stack = sorted(starts)
    while stack:
        sha = stack.pop()
        if sha in seen:
            continue
        seen.add(sha)
        tagged = repo.tag_target(sha)
        if tagged is not None:  # a tag object: peel it
            stack.append(tagged[0])
            continue
        try:
            commit = repo.commit_info(sha)
        except GitError:  # a tree (or a blob, which holds no pointer)
            try:
                repo.tree_entries(sha)
            except GitError:
                continue
            trees.append(sha)
            continue
        trees.append(commit.tree.decode())
        if history:
            stack.extend(p.decode() for p in commit.parents)
    return trees


def _linked_trees(registry: Registry) -> set[str]:
    """The folder trees of the versions that live links reach, at the tip of every branch
    (an archived version a collection still links keeps its objects)."""
    from modelbox.collections import follow, iter_links, source_dir

    repo = registry.repo
    tips = {*repo.refs_under("refs/heads/").values(), *repo.refs_under("refs/remotes/").values(),
            repo.ref("HEAD")}
    out: set[str] = set()
    for tip in sorted(t for t in tips if t):
        snap = repo.snapshot(tip)
        for name, _, archived in iter_links(snap):
            if archived:
                continue
            head, _, version = name.rpartition("@")
            try:
                chain = follow(snap, parse_model(head), version)
            except ModelboxError:
                continue  # dangling or looping: `modelbox check` reports it
            for model, ver in chain:
                tree = snap.tree_id(source_dir(snap, model, ver))
                if tree is not None:
                    out.add(tree)
    return out


def _archived(repo: GitRepo, entries: list[tuple[str, bool, str]]) -> bool:
    """Whether a folder is an archived version or an archived checkpoint."""
    for name, is_dir, sha in entries:
        if name in (layout.VERSION_FILE, layout.CHECKPOINT_FILE) and not is_dir:
            raw = repo.object(sha).as_raw_string()
            try:
                return bool(limits.loads(raw, "").get("archived"))
            except (ValueError, AttributeError):
                return False
    return False


def _collect(data: bytes, digests: set[str], directories: set[str]) -> None:
    try:
        pointer = limits.loads(data, "")  # no size cap: gc keeps what it cannot rule out
    except ValueError:
        return  # not a pointer; `modelbox check` reports it
    sha = pointer.get("sha256") if isinstance(pointer, dict) else None
    if isinstance(sha, str):
        (directories if pointer.get("directory") else digests).add(sha)


def plan(
    registry: Registry, store: ObjectStore, grace_seconds: float, *, history: bool = True,
    own_store: bool = False,
) -> GcPlan:
    """What gc would do, changing nothing.

    Raises:
        StoreSharedError: another registry writes to ``store`` and ``own_store`` is false.
        StoreError: the store failed.
    """
    now = time.time()
    result = GcPlan(archive=retention_drops(registry), grace_seconds=grace_seconds)
    _writers(registry, store, result, own_store=own_store)
    roots = gc_roots(registry.repo, now)
    result.roots = roots.describe() if history else (
        f"kept the tips of {len(roots.refs)} ref(s) and HEAD(s) only (--no-history: no "
        "reflog, no older commits)")
    referenced = referenced_digests(registry, store, result, history=history, roots=roots)
    result.referenced = len(referenced)
    cutoff = now - grace_seconds
    result._claims = claims.Claims(store, cutoff)
    claimed = result._claims.refresh()
    for digest, modified in store.iter_ages():
        if digest in referenced:
            continue
        if modified > cutoff:
            result.young += 1
        elif digest in claimed:
            result.claimed += 1
        else:
            result.delete.append(digest)
    if result.unreadable:
        result.delete = []  # a directory we could not read may reference anything
    result.delete.sort()
    result.checkpoints = archived_checkpoints(registry, set(result.delete))
    return result


def archived_checkpoints(registry: Registry, deleted: set[str]) -> list[ArchivedCheckpoint]:
    """Every archived checkpoint with what its objects weigh and how much of that
    ``deleted`` frees (with history kept, none: old commits still name them). An
    experiment whose files cannot be read is left out (``modelbox check`` reports it)."""
    from modelbox import lifecycle
    from modelbox.artifacts import list_artifacts
    from modelbox.names import Reference

    out = []
    for experiment in lifecycle.list_experiments(registry):
        name = parse_model(experiment.full_name)
        try:
            archived = [c for c in lifecycle.list_checkpoints(registry, name) if c.archived]
            for checkpoint in archived:
                sizes = {a.checksum.removeprefix("sha256:"): a.size for a in list_artifacts(
                    registry, Reference(name, version=checkpoint.checkpoint)) if a.checksum}
                freed = [d for d in sizes if d in deleted]
                out.append(ArchivedCheckpoint(
                    f"{name}@{checkpoint.checkpoint}", len(sizes), sum(sizes.values()),
                    len(freed), sum(sizes[d] for d in freed)))
        except ModelboxError:
            continue
    return out


def _writers(registry: Registry, store: ObjectStore, result: GcPlan, *, own_store: bool) -> None:
    """Sort the clones that wrote to ``store`` into this registry's others and foreign
    registries; refuse a foreign one unless ``own_store``."""
    repo = registry.repo
    me = claims.identity(repo, registry.head(), keep=False)
    for writer in claims.writers(store):
        if writer.id == me.id:
            continue
        ours = writer.registry == me.registry or (
            _SHA1.fullmatch(writer.registry) is not None and repo.has_object(writer.registry))
        (result.others if ours else result.foreign).append(writer)
    if result.foreign and not own_store:
        first = result.foreign[0]
        written = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(first.written))
        raise StoreSharedError(store.url, first.registry, first.where, written)


def run(registry: Registry, store: ObjectStore, gc_plan: GcPlan) -> None:
    """Archive what retention drops (one commit each), then delete garbage objects: in
    batches, each after re-reading the claims (a write may have claimed an object since
    the plan), under a ``gc/`` note that concurrent writes wait for. ``gc_plan.delete``
    ends as what was deleted."""
    with registry.batch():
        for model, version in gc_plan.archive:
            with registry.transaction() as txn:
                registry.archive_in(txn, parse_model(model), version)
                assert txn.change is not None
                txn.change.policy = "retention"
    found = gc_plan._claims or claims.Claims(store, time.time() - gc_plan.grace_seconds)
    if not gc_plan.delete and not found.stale:
        return
    deleted: list[str] = []
    me = claims.identity(registry.repo, registry.head(), keep=False)
    with claims.Deleting(store, me) as note:
        for start in range(0, len(gc_plan.delete), _BATCH):
            note.next_batch()  # a write that saw the previous batch's note waits for this
            held = found.refresh()
            batch = [d for d in gc_plan.delete[start : start + _BATCH] if d not in held]
            store.delete(batch)
            deleted.extend(batch)
        store.delete_notes(claims.CLAIMS, found.stale)
    gc_plan.claimed += len(gc_plan.delete) - len(deleted)
    gc_plan.delete = deleted
