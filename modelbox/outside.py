"""Tag moves that no modelbox trailer records: changed outside modelbox.

A modelbox commit says what it moved in its trailers (:mod:`modelbox.audit`). A plain
``git commit`` of a hand-edited ``_tags.json`` says nothing, yet moves a tag as surely:
such a commit is compared with its first parent and every tag it moves becomes an audit
event of its own (operation ``tag.move (outside modelbox)``, author the commit's), so
``modelbox log M:TAG`` and ``resolve --at`` see it and ``modelbox check`` warns.

A merge commit (``git pull``, a forge's merge button) is audited already where its tag
changes come from its parents: a tag whose value differs from the first parent's but
equals another parent's came from that side, whose own commits say how. Only a value no
parent holds (a conflict resolved by hand) is a move of the merge itself. A squash merge
keeps the squashed commits' messages in its own (a forge's unindented, read as trailers
by :mod:`modelbox.audit`; ``git merge --squash`` indented): a move that those quoted
trailers describe is an ordinary audited move of the squash commit.

Only commits without trailers are diffed, and only their ``models/`` subtrees that
differ; each result is kept in ``.git/modelbox/outside-tags.jsonl`` (commits never
change), so a log pays for a commit once.
"""

from __future__ import annotations

import json
from pathlib import Path

from modelbox import layout
from modelbox.audit import NONE, PREFIX, AuditEvent, TagMove, moved_events
from modelbox.documents import parse_tags
from modelbox.errors import GitError, ModelboxError
from modelbox.refs import CommitRecord, GitRepo, Snapshot

__all__ = ["OutsideMoves", "is_audited"]

_TAGS_SUFFIX = f"/{layout.TAGS_FILE}"
_OPERATION = f"\n{PREFIX}Operation: "


def is_audited(record: CommitRecord) -> bool:
    """Whether modelbox wrote the commit (its trailers say what it changed)."""
    return _OPERATION in f"\n{record.message}"


class OutsideMoves:
    """The tag moves of commits modelbox did not write, cached per commit."""

    def __init__(self, repo: GitRepo) -> None:
        self.repo = repo
        self.path = repo.git_dir / "modelbox" / "outside-tags.jsonl"
        self._cache: dict[str, list[TagMove]] | None = None
        self._fresh: dict[str, list[TagMove]] = {}
        self._unknown: set[str] = set()

    def events(self, record: CommitRecord) -> list[AuditEvent]:
        """The tag moves of a commit modelbox did not write, as audit events: those the
        squashed trailers in its message describe as ordinary moves by its author, the
        others as moves outside modelbox."""
        if is_audited(record):
            return []
        described = _described(record.message)
        moves = self.moves(record)
        return [
            *moved_events(record, [m for m in moves if (m.target, m.after) not in described],
                          outside=True),
            *moved_events(record, [m for m in moves if (m.target, m.after) in described],
                          outside=False),
        ]

    def moves(self, record: CommitRecord) -> list[TagMove]:
        """Every tag the commit moves that no parent brought."""
        cache = self._load()
        found = cache.get(record.sha)
        if found is None:
            found = self._diff(record)
            if found is None:
                self._unknown.add(record.sha)
                return []  # cannot tell here (a shallow clone); not cached
            cache[record.sha] = self._fresh[record.sha] = found
        return found

    def unknown(self, record: CommitRecord) -> bool:
        """Whether the tag moves of ``record`` could not be told (so none were reported)."""
        return record.sha in self._unknown

    def save(self) -> None:
        """Append what was computed since the last save (best effort: a cache)."""
        if not self._fresh:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as f:
                for sha, moves in self._fresh.items():
                    line = {"sha": sha, "moves": [[m.target, m.before, m.after] for m in moves]}
                    f.write(json.dumps(line, ensure_ascii=False) + "\n")
        except OSError:
            pass  # a read-only git dir: compute again next time
        self._fresh = {}

    def _load(self) -> dict[str, list[TagMove]]:
        if self._cache is None:
            self._cache = _read_cache(self.path)
        return self._cache

    def _diff(self, record: CommitRecord) -> list[TagMove] | None:
        if not all(self.repo.has_object(p) for p in record.parents):
            return None  # a shallow history: nothing to compare with
        try:
            snap = self.repo.snapshot(record.sha)
            parents = [self.repo.snapshot(p) for p in record.parents]
        except GitError:
            return None  # a damaged history: `git fsck` is the tool for it
        first = parents[0] if parents else self.repo.snapshot(None)
        moves = []
        old_tree, new_tree = first.tree_id(layout.MODELS), snap.tree_id(layout.MODELS)
        for change in self.repo.changed_paths(old_tree, new_tree, f"{layout.MODELS}/"):
            if not change.path.endswith(_TAGS_SUFFIX):
                continue
            model = change.path[len(layout.MODELS) + 1 : -len(_TAGS_SUFFIX)]
            before, after = _tags(first, change.path), _tags(snap, change.path)
            others = [_tags(parent, change.path) for parent in parents[1:]]
            for tag in sorted(before.keys() | after.keys()):
                was, now = before.get(tag), after.get(tag)
                if was == now or any(other.get(tag) == now for other in others):
                    continue  # unchanged, or brought by a merged parent (audited there)
                moves.append(TagMove(f"{model}:{tag}", was, now))
        return moves


def _described(message: str) -> set[tuple[str, str | None]]:
    """``(MODEL:TAG, version after)`` of each tag move that trailers quoted anywhere in
    ``message`` describe, indented or not: ``git merge --squash`` indents the squashed
    commits' messages by four spaces."""
    out: set[tuple[str, str | None]] = set()
    operation = target = ""
    for line in message.splitlines():
        key, sep, value = line.strip().partition(": ")
        if not sep or not key.startswith(PREFIX):
            continue
        name = key[len(PREFIX) :]
        if name == "Tag":
            what, _, change = value.partition(" ")
            after = change.partition(" -> ")[2]
            out.add((what, None if after in ("", NONE) else after))
        elif name == "Operation":
            operation, target = value, ""
        elif name == "Target":
            target = value
            if operation == "tag.remove":
                out.add((target, None))
        elif name == "After" and operation.startswith("tag."):
            out.add((target, value))
    return out


def _tags(snap: Snapshot, path: str) -> dict[str, str]:
    data = snap.read(path)
    if data is None:
        return {}
    try:
        return parse_tags(path, data)
    except ModelboxError:
        return {}  # a broken tag map is `check`'s to report; it names no version


def _read_cache(path: Path) -> dict[str, list[TagMove]]:
    cache: dict[str, list[TagMove]] = {}
    try:
        with path.open(encoding="utf-8") as f:
            for line in f:
                try:
                    raw = json.loads(line)
                    cache[raw["sha"]] = [TagMove(t, b, a) for t, b, a in raw["moves"]]
                except (ValueError, KeyError, TypeError):
                    continue  # a torn line: that commit is diffed again
    except OSError:
        pass
    return cache
