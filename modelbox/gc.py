"""Garbage collection: retention first, then the store's unreferenced objects.

1. For every model with a retention policy, the versions it drops (beyond the newest
   ``keep_last``; tagged ones kept unless ``keep_tagged`` is false) are archived — one
   commit each, naming the policy. Archived versions keep their history and pointers.
2. An object is *referenced* if a pointer in any commit reachable from any branch, any
   remote-tracking branch, HEAD, or any tag ref names it (directly, or through a directory
   manifest). Everything else in the store is garbage, except objects younger than the
   grace period (default 24 h): another clone may have uploaded them for a commit it has
   not pushed yet. So a pushed commit never loses an object, and neither does one about to
   be pushed within the grace period.

``--dry-run`` reports both steps and changes nothing. ``--no-history`` is the one way to
free the storage of archived versions and of old history: it counts only pointers at the
tips of the refs, outside archived versions that no live collection link reaches — objects
only old commits need are deleted, so checking out such a commit later will find its
artifacts gone.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from modelbox import layout, limits
from modelbox.errors import ModelboxError
from modelbox.manifests import DirectoryManifest, VersionManifest, parse
from modelbox.names import parse_model
from modelbox.objects import ObjectStore
from modelbox.policies import read_policy
from modelbox.refs import GitRepo
from modelbox.registry import Registry

DEFAULT_GRACE_SECONDS = 24 * 3600


@dataclass
class GcPlan:
    archive: list[tuple[str, str]] = field(default_factory=list)  # (model, version)
    delete: list[str] = field(default_factory=list)  # digests
    referenced: int = 0
    young: int = 0  # unreferenced but inside the grace period
    unreadable: list[str] = field(default_factory=list)  # directory manifests we could not read

    def to_json(self) -> dict[str, object]:
        return {
            "archive": [f"{m}@{v}" for m, v in self.archive], "delete": self.delete,
            "referenced": self.referenced, "young": self.young, "unreadable": self.unreadable,
        }


def retention_drops(registry: Registry) -> list[tuple[str, str]]:
    """``(model, version)`` pairs the retention policies would archive."""
    snap = registry.snapshot()
    out = []
    for manifest in registry.list_models():
        model = parse_model(manifest.full_name)
        policy = read_policy(snap, model)
        if policy is None or policy.retention is None:
            continue
        versions: list[VersionManifest] = registry.list_versions(model)  # not archived
        tagged = set(registry.tags_in(snap, model).values())
        keep = {v.version for v in versions[-policy.retention.keep_last :]}
        for v in versions:
            if v.version in keep or (policy.retention.keep_tagged and v.version in tagged):
                continue
            out.append((str(model), v.version))
    return out


def referenced_digests(
    registry: Registry, store: ObjectStore, plan: GcPlan, *, history: bool = True
) -> set[str]:
    """Every digest a pointer in any reachable commit (or, without ``history``, at the tip
    of any ref and outside archived versions) or tag ref names."""
    repo = registry.repo
    digests: set[str] = set()
    directories: set[str] = set()
    # With history, the walk covers every tree ever committed (~7 per commit); git's own
    # rev-list does it in C, ~10x faster than reading each tree here. Without git, or
    # without history (which must look inside version folders), walk in Python.
    fast = repo.reachable_blobs(_roots(repo), layout.ARTIFACTS_DIR) if history else None
    for sha in fast or ():
        _collect(repo.object(sha).as_raw_string(), digests, directories)
    trees = [] if fast is not None else _root_trees(repo, history=history)
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


def _roots(repo: GitRepo) -> set[str]:
    """What gc keeps alive: every branch, remote-tracking branch, tag ref and HEAD."""
    roots: set[str] = set()
    for prefix in ("refs/heads/", "refs/remotes/", layout.TAG_REF_PREFIX):
        roots.update(repo.refs_under(prefix).values())
    head = repo.ref("HEAD")
    if head:
        roots.add(head)
    return roots


def _root_trees(repo: GitRepo, *, history: bool) -> list[str]:
    """The trees of every commit reachable from every ref (only the tips without
    ``history``), and the version-folder trees the tag refs point at."""
    trees: list[str] = []
    seen: set[str] = set()
    stack = list(_roots(repo))
    while stack:
        sha = stack.pop()
        if sha in seen:
            continue
        seen.add(sha)
        tagged = repo.tag_target(sha)
        if tagged is not None:  # a tag ref: its target is a version folder's tree
            trees.append(tagged[0])
            continue
        commit = repo.commit_info(sha)
        trees.append(commit.tree.decode())
        if history:
            stack.extend(p.decode() for p in commit.parents)
    return trees


def _linked_trees(registry: Registry) -> set[str]:
    """The folder trees of the versions that live links reach, at the tip of every branch
    (an archived version a collection still links keeps its objects)."""
    from modelbox.collections import follow, iter_links

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
                tree = snap.tree_id(layout.version_dir(model, ver))
                if tree is not None:
                    out.add(tree)
    return out


def _archived(repo: GitRepo, entries: list[tuple[str, bool, str]]) -> bool:
    for name, is_dir, sha in entries:
        if name == layout.VERSION_FILE and not is_dir:
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
    registry: Registry, store: ObjectStore, grace_seconds: float, *, history: bool = True
) -> GcPlan:
    """What gc would do, changing nothing."""
    result = GcPlan(archive=retention_drops(registry))
    referenced = referenced_digests(registry, store, result, history=history)
    result.referenced = len(referenced)
    cutoff = time.time() - grace_seconds
    for digest, modified in store.iter_ages():
        if digest in referenced:
            continue
        if modified > cutoff:
            result.young += 1
        else:
            result.delete.append(digest)
    if result.unreadable:
        result.delete = []  # a directory we could not read may reference anything
    result.delete.sort()
    return result


def run(registry: Registry, store: ObjectStore, gc_plan: GcPlan) -> None:
    """Archive what retention drops (one commit each), then delete garbage objects."""
    with registry.batch():
        for model, version in gc_plan.archive:
            with registry.transaction() as txn:
                registry.archive_in(txn, parse_model(model), version)
                assert txn.change is not None
                txn.change.policy = "retention"
    store.delete(gc_plan.delete)
