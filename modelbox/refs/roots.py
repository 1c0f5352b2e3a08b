"""What ``git gc`` keeps alive, so that ``modelbox gc`` keeps the same: every ref (any
namespace: branches, tags, remote-tracking, ``refs/modelbox/*``, ``refs/stash``...), HEAD
and the HEAD and refs of every linked worktree, and both sides of every reflog entry newer
than ``gc.reflogExpire`` (git's default: 90 days; ``never`` keeps them all).

A setting we cannot read keeps every reflog entry: keeping too much costs storage, keeping
too little costs data.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from modelbox.refs.repo import GitRepo

_ZERO = "0" * 40
_SHA = re.compile(r"[0-9a-f]{40}")
DEFAULT_REFLOG_EXPIRE = 90.0 * 86400
_UNITS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400, "week": 7 * 86400,
          "month": 30 * 86400, "year": 365 * 86400}
_AGE = re.compile(r"(\d+)[ .]*([a-z]+?)s?([ .]+ago)?")


@dataclass
class Roots:
    """The commits (and tag objects) gc walks from, and where they came from."""

    refs: dict[str, str] = field(default_factory=dict)  # name (HEAD, worktree HEADs) -> sha
    reflog: set[str] = field(default_factory=set)
    reflog_entries: int = 0
    reflog_expire: float | None = DEFAULT_REFLOG_EXPIRE  # seconds; None: never expire

    def all(self) -> set[str]:
        return set(self.refs.values()) | self.reflog

    def describe(self) -> str:
        """One line for ``gc --dry-run``: which roots keep objects alive."""
        worktrees = sum(1 for name in self.refs if name.startswith("worktree "))
        heads = sum(1 for name in self.refs if name == "HEAD" or name.endswith(" HEAD"))
        expire = ("never expire" if self.reflog_expire is None
                  else f"newer than {_days(self.reflog_expire)}, gc.reflogExpire*")
        return (f"kept what git keeps: {len(self.refs) - heads} ref(s) in every namespace "
                f"(branches, tags, remote-tracking, refs/modelbox), {heads} HEAD(s) "
                f"({worktrees} of linked worktrees), {self.reflog_entries} reflog "
                f"entr{'y' if self.reflog_entries == 1 else 'ies'} ({expire}), and what "
                "every worktree's index stages (with the git CLI)")


def _days(seconds: float) -> str:
    days = seconds / 86400
    return f"{days:g} day{'s' if days != 1 else ''}"


def gc_roots(repo: GitRepo, now: float) -> Roots:
    """Every root ``git gc`` keeps, as of ``now`` (seconds since the epoch)."""
    raw = repo.raw
    common = Path(raw.commondir())
    roots = Roots(reflog_expire=reflog_expire(repo))
    for name in raw.refs.allkeys():
        try:
            sha = raw.refs[name].decode()
        except KeyError:
            continue  # a symbolic ref to a branch not born yet
        roots.refs[name.decode("utf-8", "replace")] = sha
    worktrees = common / "worktrees"
    logs = [common / "logs"]
    if worktrees.is_dir():
        for tree in sorted(worktrees.iterdir()):
            _worktree_refs(tree, roots)
            logs.append(tree / "logs")
    cutoff = None if roots.reflog_expire is None else now - roots.reflog_expire
    for folder in logs:
        for log in sorted(folder.rglob("*")) if folder.is_dir() else ():
            if log.is_file():
                _read_reflog(log, cutoff, roots)
    roots.reflog = {sha for sha in roots.reflog if repo.has_object(sha)}  # pruned already
    roots.refs = {name: sha for name, sha in roots.refs.items() if repo.has_object(sha)}
    return roots


def _worktree_refs(tree: Path, roots: Roots) -> None:
    """A linked worktree's HEAD (detached or not) and its own refs (refs/bisect...)."""
    head = _read(tree / "HEAD")
    if head is not None and _SHA.fullmatch(head):
        roots.refs[f"worktree {tree.name} HEAD"] = head
    folder = tree / "refs"
    for ref in sorted(folder.rglob("*")) if folder.is_dir() else ():
        value = _read(ref) if ref.is_file() else None
        if value is not None and _SHA.fullmatch(value):
            roots.refs[f"worktree {tree.name} {ref.relative_to(tree).as_posix()}"] = value


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return None


def _read_reflog(log: Path, cutoff: float | None, roots: Roots) -> None:
    try:
        lines = log.read_bytes().decode("utf-8", "replace").splitlines()
    except OSError:
        return
    for line in lines:
        head = line.partition("\t")[0].split()
        if len(head) < 4 or not (_SHA.fullmatch(head[0]) and _SHA.fullmatch(head[1])):
            continue
        try:
            when = int(head[-2])
        except ValueError:
            when = None  # unreadable time: keep the entry
        if cutoff is not None and when is not None and when < cutoff:
            continue
        roots.reflog_entries += 1
        roots.reflog.update(sha for sha in head[:2] if sha != _ZERO)


def reflog_expire(repo: GitRepo) -> float | None:
    """How old a reflog entry git may expire, in seconds (None: never): the longest of
    ``gc.reflogExpire`` (90 days unless set) and its per-ref ``gc.<pattern>.reflogExpire``
    forms, read from every config file git reads. (``gc.reflogExpireUnreachable`` only
    expires entries sooner.) A value we cannot parse counts as ``never``."""
    main: float | None = DEFAULT_REFLOG_EXPIRE
    patterns: list[float | None] = []
    # dulwich lists the repository's own file first; git reads it last, and the last wins.
    for backend in reversed(repo.config_stack().backends):
        for section in backend.sections():
            if not section or section[0].lower() != b"gc":
                continue
            for key, value in backend.items(section):
                if key.lower() != b"reflogexpire":
                    continue
                seconds = parse_expiry(value.decode("utf-8", "replace"))
                if len(section) == 1:
                    main = seconds
                else:
                    patterns.append(seconds)
    values = [main, *patterns]
    return None if any(v is None for v in values) else max(v for v in values if v is not None)


def parse_expiry(text: str) -> float | None:
    """``90 days``, ``2.weeks.ago``, ``now``, ``never``... in seconds; None for never or
    anything unreadable (keep all)."""
    value = text.strip().lower()
    if value in ("now", "all"):
        return 0.0
    match = _AGE.fullmatch(value)
    if match is None:
        return None
    unit = _UNITS.get(match[2])
    return None if unit is None else int(match[1]) * unit
