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

``branch-move``::

    {"kind": "branch-move", "format": 1, "pid": 4242, "ref": "refs/heads/main",
     "old": "<sha>|null", "new": "<sha>", "tag_refs": ["ai/yolo"] | "all" | [],
     "absorbs": {"metrics-4242-81.jsonl": 17}}

``metrics`` (:class:`MetricsJournal`): one append-only file per writer process,
``metrics-<pid>-<start>.jsonl``, one line per ``log_metrics`` call, written with one
``os.write`` to an ``O_APPEND`` descriptor before the call returns (so ``kill -9`` loses
nothing; fsync happens at commit)::

    {"kind": "metrics", "n": 17, "ref": "ai/vision/yolo@v1",
     "points": [["acc", 3, 1795443494.36, 0.91], ["raw", 3, 1795443494.36, {"bytes": "AA=="}]]}

The same file holds events a training callback records (epoch start/end, checkpoint
written), one line per call, numbered, written and committed the same way (an event is
as durable as a metric point)::

    {"kind": "events", "n": 18, "ref": "ai/run-17",
     "events": [{"name": "epoch_end", "source": "keras", "wallclock": 1795443494.4,
                 "metadata": {"epoch": 3}}]}

The writer holds an ``flock`` on its file for its whole life; a write takes a journal
(:func:`take_metrics`) only when it gets that lock, so never while the process that wrote it
(or a child it forked) lives, and only a journal of the same user. Exactly once: lines are
numbered; the commit that absorbs a journal names the last line it holds in its
``branch-move`` record (``absorbs``), written before the branch moves. Right after the
branch moved, the write appends ``{"absorbed": N}`` to the journal (fsynced); if it dies
before that, :func:`recover` sees the move landed and appends it. Lines up to N are
skipped by whoever takes the journal later.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import threading
import time
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelbox.faults import fault
from modelbox.processes import process_alive

if TYPE_CHECKING:
    from modelbox.manifests import EventRecord, MetricPoint
    from modelbox.names import Reference
    from modelbox.refs import GitRepo, PathChange, Worktree
    from modelbox.registry import Registry

__all__ = [
    "BranchMove",
    "MetricsJournal",
    "TakenJournal",
    "begin",
    "clear",
    "lagging",
    "mark_absorbed",
    "pending",
    "recover",
    "take_metrics",
    "waiting_metrics",
]

logger = logging.getLogger(__name__)

JOURNAL_DIR = "modelbox/journal"  # below the git dir
FORMAT = 1
ALL = "all"
_SHA = re.compile(r"[0-9a-f]{40}")


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
    # metrics journal file name -> the last line number the new commits hold
    absorbs: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out = {"kind": self.KIND, "format": FORMAT, "pid": self.pid, "ref": self.ref,
               "old": self.old, "new": self.new, "tag_refs": self.tag_refs}
        if self.absorbs:
            out["absorbs"] = self.absorbs
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BranchMove:
        """The record of ``data``; ValueError unless its ref is a branch and its commits
        are object names (a journal is input: a hand edit could name ``../..`` or an
        option, which the recovery would hand to the file system or to git)."""
        from modelbox.refs.refnames import is_well_formed

        ref, old, new = data["ref"], data.get("old"), data["new"]
        if not (isinstance(ref, str) and ref.startswith("refs/heads/")
                and is_well_formed(ref.encode())):
            raise ValueError(f"not a branch: {ref!r}")
        for sha in (old, new) if old is not None else (new,):
            if not (isinstance(sha, str) and _SHA.fullmatch(sha)):
                raise ValueError(f"not a commit name: {sha!r}")
        tag_refs = data.get("tag_refs", [])
        absorbs = data.get("absorbs", {})
        return cls(ref=ref, old=old, new=new,
                   tag_refs=tag_refs if tag_refs == ALL else [str(m) for m in tag_refs],
                   pid=int(data.get("pid", 0)),
                   absorbs={str(k): int(v) for k, v in absorbs.items()})


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


def landed(repo: GitRepo, move: BranchMove) -> bool:
    """Whether the branch moved to ``move.new`` (it may have moved on since, by hand).

    Not from the reflog: dulwich appends the reflog line before the ref itself moves, so
    a kill in between leaves a reflog that names a move that never happened."""
    from modelbox.refs.remote import is_ancestor

    current = repo.ref(move.ref)
    if current is None:
        return False
    if current == move.new:
        return True
    # A commit that was never written (a hand edit, or a writer killed before its objects)
    # did not land; git would refuse to compare it, and so every later write.
    return repo.has_object(move.new) and is_ancestor(repo, move.new, current)


def absorbed(registry: Registry, name: str) -> int | None:
    """The last line of the metrics journal ``name`` that a landed branch move holds,
    according to a ``branch-move`` record still pending (a write that raised after its
    branch moved), else None."""
    data = _read(_path(registry.repo.git_dir, BranchMove.KIND))
    if not data or data.get("kind") != BranchMove.KIND:
        return None
    try:
        move = BranchMove.from_json(data)
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
    if name not in move.absorbs or not landed(registry.repo, move):
        return None
    return move.absorbs[name]


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
    _clear_temporaries(git_dir)
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
            if move.old is not None and not registry.repo.has_object(move.old):
                raise ValueError("the branch never held that commit")
        except (KeyError, TypeError, ValueError):
            logger.warning("modelbox: warning: %s is unreadable and was removed", path)
            path.unlink(missing_ok=True)
            # What it would have finished, found as `check` finds it (rare: a hand edit).
            lag = lagging(registry)
            if lag is not None:
                skipped += finish(registry, lag)[0]
            continue
        if not process_alive(move.pid):
            _clear_ref_locks(git_dir, move, path)
        if move.absorbs and landed(registry.repo, move):
            mark_absorbed(git_dir, move.absorbs)
        left, done = finish(registry, move)
        skipped += left
        if done:
            path.unlink(missing_ok=True)  # else kept: the next write tries the refs again
    return skipped


def _clear_temporaries(git_dir: Path) -> None:
    """Remove the ``<file>.<pid>.tmp`` a killed writer left before its rename."""
    try:
        names = os.listdir(git_dir / JOURNAL_DIR)
    except OSError:
        return
    for name in names:
        pid = name.rsplit(".", 2)[1] if name.endswith(".tmp") and name.count(".") >= 2 else ""
        if pid.isdigit() and not process_alive(int(pid)):
            (git_dir / JOURNAL_DIR / name).unlink(missing_ok=True)


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
    from modelbox.refs.worktree import Worktree

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


# -- the metrics journal -------------------------------------------------------------------
METRICS_PREFIX = "metrics-"
EVENTS_KIND = "events"  # a line of events in a metrics journal
METRICS_SUFFIX = ".jsonl"
#: Where points that could not be committed are kept (their target was deleted meanwhile).
REJECTED_SUFFIX = ".rejected"


def _encode_line(number: int, ref: str, points: list[tuple[str, MetricPoint]]) -> bytes:
    from modelbox.manifests import BytesValue

    rows = [[key, p.step, p.wallclock,
             {"bytes": p.value.bytes} if isinstance(p.value, BytesValue) else p.value]
            for key, p in points]
    line = _ENCODER.encode({"kind": MetricsJournal.KIND, "n": number, "ref": ref,
                            "points": rows})
    return (line + "\n").encode("utf-8")


_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _encode_events(number: int, ref: str, events: list[EventRecord]) -> bytes:
    line = _ENCODER.encode({"kind": EVENTS_KIND, "n": number, "ref": ref,
                            "events": [e.model_dump(mode="json") for e in events]})
    return (line + "\n").encode("utf-8")


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _start_ticks() -> str:
    """This process's start time (``/proc/self/stat`` field 22), so a recycled pid never
    names an old journal; a clock reading where there is no ``/proc``."""
    try:
        stat = Path("/proc/self/stat").read_text()
        return stat.rpartition(")")[2].split()[19]
    except (OSError, IndexError):
        return str(time.time_ns())


class MetricsJournal:
    """The points one process logged and has not committed yet, on disk before
    :meth:`append` returns. Thread-safe; one per client. :meth:`flush` commits them."""

    KIND = "metrics"

    def __init__(self, registry: Registry) -> None:
        self._registry = registry
        self.lock = threading.Lock()
        self._pid = os.getpid()
        self._fd: int | None = None
        self.name = ""
        self._number = 0
        self._pending: list[tuple[Reference, list[tuple[str, MetricPoint]]]] = []
        self._events: list[tuple[Reference, list[EventRecord]]] = []
        self.count = 0
        self.since = 0.0
        _JOURNALS.add(self)

    @property
    def path(self) -> Path | None:
        return None if self._fd is None else self._dir() / self.name

    def _dir(self) -> Path:
        return self._registry.repo.git_dir / JOURNAL_DIR

    def _forked(self) -> None:
        """In a forked child (a DataLoader worker): the journal, its lock and its points
        are the parent's. Close our copy, so the parent's death frees the journal for the
        next write even while the children run; a point the child logs opens its own."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
        self._fd, self._pending, self._events, self.count = None, [], [], 0
        self._pid = os.getpid()
        self.lock = threading.Lock()  # a lock the parent's other threads held stays held

    def _open(self) -> int:
        if self._pid != os.getpid():
            self._forked()
        if self._fd is None:
            folder = self._dir()
            folder.mkdir(parents=True, exist_ok=True)
            name = f"{METRICS_PREFIX}{self._pid}-{_start_ticks()}-{id(self):x}{METRICS_SUFFIX}"
            # Locked under a temporary name, then renamed: a write that lists the folder
            # never sees the journal before its writer holds the lock.
            tmp = folder / f".{name}.{self._pid}.tmp"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND
                         | os.O_CLOEXEC, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.replace(tmp, folder / name)
            self._fd, self.name = fd, name
        return self._fd

    def append(self, ref: Reference, points: list[tuple[str, MetricPoint]]) -> None:
        """Write one line for ``points`` (flushed to the OS, not fsynced) and keep them."""
        if not points:
            return
        with self.lock:
            fd = self._open()
            self._number += 1
            _write_all(fd, _encode_line(self._number, str(ref), points))
            if not self.count:
                self.since = time.monotonic()
            self._pending.append((ref, points))
            self.count += len(points)

    def append_events(self, ref: Reference, events: list[EventRecord]) -> None:
        """Write one line for ``events`` (validated records), like :meth:`append`; they
        are committed with the points, one commit per target."""
        if not events:
            return
        with self.lock:
            fd = self._open()
            self._number += 1
            _write_all(fd, _encode_events(self._number, str(ref), events))
            if not self.count:
                self.since = time.monotonic()
            self._events.append((ref, events))
            self.count += len(events)

    def flush(self) -> None:
        """Commit the pending points (one batch, one commit per target) and empty the
        journal; the caller holds :attr:`lock`. Deferred inside a batch of this process
        (which may still fail): the points wait in the journal for the next flush."""
        if not self.count or self._fd is None or self._pid != os.getpid():
            return
        registry = self._registry
        if registry.in_batch:
            return
        os.fsync(self._fd)
        last = self._number
        grouped: dict[str, tuple[Reference, list[tuple[str, MetricPoint]]]] = {}
        for ref, points in self._pending:
            grouped.setdefault(str(ref), (ref, []))[1].extend(points)
        events: dict[str, tuple[Reference, list[EventRecord]]] = {}
        for ref, records in self._events:
            events.setdefault(str(ref), (ref, []))[1].extend(records)
        try:
            with registry.batch():
                registry.absorb_journal(self.name, last)
                for ref, points in grouped.values():
                    registry.append_metrics(ref, points)
                for ref, records in events.values():
                    _log_events(registry, ref, records)
        except BaseException:
            if absorbed(registry, self.name) != last:
                raise
            self._emptied()  # the commit landed; what failed came after it
            raise
        self._emptied()

    def _emptied(self) -> None:
        self._pending, self._events, self.count = [], [], 0
        if self._fd is not None:
            os.ftruncate(self._fd, 0)

    def close(self) -> None:
        """Release the journal: removed when empty, else left for the next write."""
        if self._fd is None or self._pid != os.getpid():
            self._fd = None
            return
        if not self.count:
            (self._dir() / self.name).unlink(missing_ok=True)
        os.close(self._fd)  # releases the flock: a later write may take what is left
        self._fd = None


_JOURNALS: weakref.WeakSet[MetricsJournal] = weakref.WeakSet()


def _after_fork() -> None:
    for journal in list(_JOURNALS):
        journal._forked()


os.register_at_fork(after_in_child=_after_fork)


@dataclass
class TakenJournal:
    """The journal of a process that ended, locked by the write committing it."""

    path: Path
    fd: int
    last: int
    rejected: list[dict[str, Any]] = field(default_factory=list)

    def remove(self) -> None:
        """After the batch was published: keep what was rejected, drop the journal."""
        if self.rejected:
            with open(self.path.with_name(self.path.name + REJECTED_SUFFIX), "a",
                      encoding="utf-8") as f:
                f.writelines(json.dumps(i, ensure_ascii=False) + "\n" for i in self.rejected)
        self.path.unlink(missing_ok=True)

    def release(self) -> None:
        os.close(self.fd)


def _metrics_journals(git_dir: Path) -> list[Path]:
    try:
        names = os.listdir(git_dir / JOURNAL_DIR)
    except (FileNotFoundError, NotADirectoryError):
        return []
    return [git_dir / JOURNAL_DIR / n for n in sorted(names)
            if n.startswith(METRICS_PREFIX) and n.endswith(METRICS_SUFFIX)]


def _lock_dead(path: Path) -> int | None:
    """An fd holding the flock of ``path`` if its writer has ended and it is ours."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if info.st_uid != os.geteuid():
            raise BlockingIOError  # another user's journal: theirs to commit
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        # The writer may have removed it between our open and our lock (a clean close).
        if os.fstat(fd).st_nlink == 0 or os.stat(path).st_ino != info.st_ino:
            raise BlockingIOError
    except OSError:
        os.close(fd)
        return None
    return fd


def _read_journal(fd: int, path: Path) -> tuple[int, int, list[dict[str, Any]]]:
    """(last line number, absorbed line number, lines not yet absorbed) of a journal."""
    with os.fdopen(os.dup(fd), "rb") as f:
        raw = f.read()
    lines: list[dict[str, Any]] = []
    done = 0
    last = 0
    for number, text in enumerate(raw.splitlines(), 1):
        try:
            item = json.loads(text)
            if not isinstance(item, dict):
                raise ValueError("not an object")
        except ValueError:
            # Only the very end can be torn (a power cut before the fsync); say so.
            logger.warning("modelbox: warning: %s line %d is unreadable and was skipped",
                           path, number)
            continue
        if "absorbed" in item:
            done = max(done, int(item["absorbed"]))
        elif isinstance(item.get("n"), int):
            last = max(last, item["n"])
            lines.append(item)
    return last, done, [line for line in lines if line["n"] > done]


def _log_events(registry: Registry, ref: Reference, records: list[EventRecord]) -> None:
    from modelbox import lifecycle

    lifecycle.log_events(registry, ref, [lifecycle.Event.of(r) for r in records])


def _records(item: dict[str, Any]) -> list[EventRecord]:
    from modelbox.manifests import EventRecord

    return [EventRecord.model_validate(e) for e in item["events"]]


def _size(item: dict[str, Any]) -> int:
    """Points or events a journal line holds."""
    held = item.get("events" if item.get("kind") == EVENTS_KIND else "points", [])
    return len(held) if isinstance(held, list) else 0


def _points(item: dict[str, Any]) -> list[tuple[str, MetricPoint]]:
    from modelbox.manifests import MetricPoint

    return [(str(key), MetricPoint.model_validate(
        {"step": step, "wallclock": wallclock, "value": value}))
        for key, step, wallclock, value in item["points"]]


def take_metrics(registry: Registry) -> list[TakenJournal]:
    """Commit, into the current batch, the metrics journals of processes that ended.

    The caller publishes the batch, then removes the returned journals, and releases them
    in any case. Points whose target cannot take them any more (deleted meanwhile) are
    kept beside the journal as ``*.rejected`` with a warning, never retried forever.
    """
    from pydantic import ValidationError

    from modelbox.errors import ModelboxError
    from modelbox.names import parse_reference

    taken: list[TakenJournal] = []
    git_dir = registry.repo.git_dir
    for path in _metrics_journals(git_dir):
        fd = _lock_dead(path)
        if fd is None:
            continue
        journal = TakenJournal(path, fd, 0)
        taken.append(journal)
        last, _, lines = _read_journal(fd, path)
        journal.last = last
        if not lines:
            continue
        registry.absorb_journal(path.name, last)
        grouped: dict[str, list[dict[str, Any]]] = {}
        for item in lines:
            grouped.setdefault(str(item.get("ref")), []).append(item)
        for ref, items in grouped.items():
            for kind in (MetricsJournal.KIND, EVENTS_KIND):  # each on its own: one may fail
                some = [i for i in items if (i.get("kind") == EVENTS_KIND) == (
                    kind == EVENTS_KIND)]
                if not some:
                    continue
                try:
                    target = parse_reference(ref)
                    if kind == EVENTS_KIND:
                        _log_events(registry, target, [r for i in some for r in _records(i)])
                    else:
                        registry.append_metrics(target, [p for i in some for p in _points(i)])
                except (ModelboxError, ValidationError, KeyError, TypeError,
                        ValueError) as exc:
                    journal.rejected += some
                    logger.warning(
                        "modelbox: warning: %d metric point(s) or event(s) for %s left by "
                        "an ended process were not committed (%s); kept in %s",
                        sum(_size(i) for i in some), ref, str(exc).splitlines()[0],
                        path.name + REJECTED_SUFFIX)
    return taken


def waiting_metrics(git_dir: Path) -> tuple[list[tuple[Path, int]], list[Path]]:
    """For ``check`` (reads only, commits nothing): the journals of ended writers with the
    number of points they still hold, and the ``*.rejected`` files."""
    waiting: list[tuple[Path, int]] = []
    for path in _metrics_journals(git_dir):
        fd = _lock_dead(path)
        if fd is None:
            continue
        try:
            _, _, lines = _read_journal(fd, path)
        finally:
            os.close(fd)
        count = sum(_size(line) for line in lines)
        if count:
            waiting.append((path, count))
    try:
        rejected = sorted(p for p in (git_dir / JOURNAL_DIR).iterdir()
                          if p.name.endswith(METRICS_SUFFIX + REJECTED_SUFFIX))
    except OSError:
        rejected = []
    return waiting, rejected


@contextlib.contextmanager
def metrics_taken(registry: Registry) -> Iterator[list[TakenJournal]]:
    """:func:`take_metrics` for a batch: the journals are released when the block ends."""
    taken = take_metrics(registry)
    try:
        yield taken
    finally:
        for journal in taken:
            journal.release()


def mark_absorbed(git_dir: Path, absorbs: dict[str, int]) -> None:
    """Record in each journal that its lines up to N are committed (a landed move): by the
    write right after its branch moved, and again by :func:`recover` if it was killed
    before, since the ``branch-move`` record that names them is removed at the end."""
    for name, last in absorbs.items():
        path = git_dir / JOURNAL_DIR / name
        if not (name.startswith(METRICS_PREFIX) and name.endswith(METRICS_SUFFIX)
                and "/" not in name and path.exists()):
            continue
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        except OSError:
            continue  # removed meanwhile by its writer: nothing left to skip
        try:
            _write_all(fd, (json.dumps({"absorbed": last}) + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)
