"""Finishing a write that was cut short: the recovery journal.

A write moves the branch first and then makes the work tree, the index and the tag refs
follow. A process killed between the two (``kill -9``, a power cut, a ``git status`` that
holds ``index.lock`` too long) would leave an index that still holds the old commit, which
``git status`` shows as staged changes reverting the new commits, and which a plain
``git commit`` would turn into a real revert. So, before the branch moves, the write records
what must follow in a journal, ``.git/modelbox/journal/<kind>.json``, written to a temporary
file, fsynced and renamed into place; the journal is removed when everything has followed.

Every write runs :func:`recover` first, under the repository lock, and finishes whatever a
journal names; read commands never look (they read the committed tree, which is always
whole). ``modelbox check`` reports a pending journal, and an index that lags the branch
without one (:func:`lagging`: a run by an older modelbox); ``check --fix`` finishes both.

Record kinds: the ``kind`` field names the record type, and the file is named after it.
``branch-move`` is the only one so far::

    {"kind": "branch-move", "format": 1, "pid": 4242, "ref": "refs/heads/main",
     "old": "<sha>|null", "new": "<sha>", "tag_refs": ["ai/yolo"] | "all" | []}

A new kind (the durable metrics journal of the releases work) adds a class with ``KIND``,
``to_json``/``from_json`` and a branch in :func:`recover`; :func:`pending` and the file
handling here serve every kind.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelbox.faults import fault
from modelbox.refs import Worktree
from modelbox.refs.lock import process_alive

if TYPE_CHECKING:
    from modelbox.refs import GitRepo, PathChange
    from modelbox.registry import Registry

__all__ = ["BranchMove", "begin", "clear", "lagging", "pending", "recover"]

logger = logging.getLogger(__name__)

JOURNAL_DIR = "modelbox/journal"  # below the git dir
FORMAT = 1
ALL = "all"


@dataclass
class BranchMove:
    """A branch about to move from ``old`` to ``new``; then the work tree and index must
    follow (when the branch is checked out) and the tag refs of ``tag_refs`` be rebuilt."""

    KIND = "branch-move"

    ref: str
    old: str | None
    new: str
    tag_refs: list[str] | str = field(default_factory=list)  # model names, or ALL
    pid: int = field(default_factory=os.getpid)

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.KIND, "format": FORMAT, "pid": self.pid, "ref": self.ref,
                "old": self.old, "new": self.new, "tag_refs": self.tag_refs}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BranchMove:
        tag_refs = data.get("tag_refs", [])
        return cls(ref=str(data["ref"]), old=data.get("old"), new=str(data["new"]),
                   tag_refs=tag_refs if tag_refs == ALL else [str(m) for m in tag_refs],
                   pid=int(data.get("pid", 0)))


def _path(git_dir: Path, kind: str) -> Path:
    return git_dir / JOURNAL_DIR / f"{kind}.json"


def begin(git_dir: Path, record: BranchMove) -> None:
    """Write ``record`` durably (temp file, fsync, rename, fsync of the folder)."""
    path = _path(git_dir, record.KIND)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(record.to_json(), f, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    fault("after-journal")


def clear(git_dir: Path, kind: str = BranchMove.KIND, *, new: str | None = None) -> None:
    """Remove the journal of ``kind`` (only if it still names ``new``, when given)."""
    path = _path(git_dir, kind)
    if new is not None:
        record = _read(path)
        if record is None or record.get("new") != new:
            return
    path.unlink(missing_ok=True)


def pending(git_dir: Path) -> list[str]:
    """The kinds with a journal waiting to be finished (one directory listing)."""
    try:
        names = os.listdir(git_dir / JOURNAL_DIR)
    except (FileNotFoundError, NotADirectoryError):
        return []
    return sorted(n[: -len(".json")] for n in names if n.endswith(".json"))


def _read(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}  # unreadable: a torn write cannot happen (rename), so a hand edit
    return data if isinstance(data, dict) else {}


def recover(registry: Registry) -> list[str]:
    """Finish every pending journal; the caller holds the repository lock.

    Returns the paths left alone because they carry hand edits (logged as a warning).
    A write calls this first; it costs one failed directory listing when nothing is pending.
    """
    skipped: list[str] = []
    git_dir = registry.repo.git_dir
    for kind in pending(git_dir):
        path = _path(git_dir, kind)
        data = _read(path)
        if data is None:
            continue
        if data.get("kind") != BranchMove.KIND:
            # A kind this version does not know (a newer modelbox wrote it): leave it.
            logger.warning("modelbox: warning: %s is a journal this modelbox cannot finish; "
                           "upgrade modelbox", path)
            continue
        try:
            move = BranchMove.from_json(data)
        except (KeyError, TypeError, ValueError):
            logger.warning("modelbox: warning: %s is unreadable and was removed", path)
            path.unlink(missing_ok=True)
            continue
        if not process_alive(move.pid):
            _clear_ref_locks(git_dir, move, path)
        left, done = finish(registry, move)
        skipped += left
        if done:
            path.unlink(missing_ok=True)  # else kept: the next write tries the refs again
    return skipped


def _clear_ref_locks(git_dir: Path, move: BranchMove, journal: Path) -> None:
    """Remove the ref locks the dead writer of ``journal`` left behind (``kill -9`` while
    dulwich held ``<ref>.lock``): git and modelbox would refuse the ref until someone
    deleted it. Under ``refs/modelbox/`` every lock is ours (modelbox writes those refs
    only under the repository lock, which the caller holds); the branch's lock only if it
    was made within a second after the journal, i.e. by the move the journal announced.
    """
    for lock in (git_dir / "refs" / "modelbox").rglob("*.lock"):
        lock.unlink(missing_ok=True)
    branch_lock = git_dir / f"{move.ref}.lock"
    try:
        made, announced = branch_lock.stat().st_mtime_ns, journal.stat().st_mtime_ns
    except OSError:
        return
    if 0 <= made - announced <= 1_000_000_000:
        branch_lock.unlink(missing_ok=True)


def clear_stale_ref_lock(git_dir: Path, ref: str, *, wait: float = 2.0) -> None:
    """Before writing a ``refs/modelbox/`` ref that no journal covers (the download audit
    chain), under the repository lock: a ``<ref>.lock`` left by a writer killed inside
    dulwich would refuse every later write. Git holds a ref lock for milliseconds, so a lock
    older than ``wait`` seconds is stale; a younger one is waited for, then removed."""
    lock = git_dir / f"{ref}.lock"
    deadline = time.monotonic() + wait
    while True:
        try:
            age = time.time() - lock.stat().st_mtime
        except FileNotFoundError:
            return
        if age >= wait or time.monotonic() >= deadline:
            lock.unlink(missing_ok=True)
            return
        time.sleep(0.05)


def finish(registry: Registry, move: BranchMove) -> tuple[list[str], bool]:
    """Make the work tree, index and tag refs follow ``move`` (idempotent).

    Returns the paths left alone (hand edits) and whether the tag refs followed (a ref
    lock held by someone else stops them: warned, and left for the next write)."""
    repo = registry.repo
    current = repo.ref(move.ref)
    if current != move.new:
        # Not moved (killed before the compare-and-swap: the new objects are unreferenced,
        # harmless) or moved on since by something else: nothing of ours to finish.
        return [], True
    skipped: list[str] = []
    worktree = _worktree(repo, move.ref)
    if worktree is not None:
        changes = _changes(repo, move.old, move.new)
        skipped = worktree.follow(changes)
        if skipped:
            logger.warning(
                "modelbox: warning: %s changed by hand while a modelbox command was "
                "interrupted; left as it is (compare it with `git diff HEAD -- %s`)",
                skipped[0] if len(skipped) == 1 else f"{len(skipped)} files ({skipped[0]}...)",
                skipped[0],
            )
    done = True
    if move.ref == f"refs/heads/{registry.branch}":
        done = registry.follow_tag_refs(move.tag_refs)
    return skipped, done


def _worktree(repo: GitRepo, ref: str) -> Worktree | None:
    if repo.root is None or f"refs/heads/{repo.head_branch()}" != ref:
        return None
    return Worktree(repo, repo.root)


def _changes(repo: GitRepo, old: str | None, new: str) -> list[PathChange]:
    return list(repo.changed_paths(repo.snapshot(old).tree, repo.snapshot(new).tree))


def lagging(registry: Registry, *, depth: int = 20) -> BranchMove | None:
    """A branch move by modelbox whose changes the index still lacks, journal or not.

    Walks the newest ``depth`` entries of the branch's reflog written by modelbox; if the
    index still holds the old content of every path one of them changed, the index lags
    from there. Only ``check`` calls this (it reads the reflog and the index).
    """
    repo = registry.repo
    ref = registry.branch_ref
    worktree = _worktree(repo, ref)
    head = repo.ref(ref)
    if worktree is None or head is None:
        return None
    index = worktree.index
    lag: str | None = None
    for old, new, message in repo.reflog(ref)[:depth]:
        if not message.startswith("modelbox:"):
            break
        changes = _changes(repo, old, new)
        held = [None if (e := index.get(c.path)) is None else e.sha for c in changes]
        if changes and all(h == c.old_sha for h, c in zip(held, changes, strict=True)):
            lag = old
            continue
        if lag is None and any(h == c.old_sha for h, c in zip(held, changes, strict=True)):
            lag = old  # partly followed: a kill during the index write
        break
    if lag is None:
        return None
    return BranchMove(ref=ref, old=lag, new=head, tag_refs=ALL)
