"""Which commits of a ref carry audit events about which model, so that ``log M``,
``log M:TAG`` and ``resolve --at`` read that model's history only.

A full ``modelbox log`` walks every commit reachable from the branch (105,000 at 100,000
versions: ~1.5 s even from the commit cache). For one model, the index of a ref answers
"which of those commits have events about ``M``" in walk order (git log's order, the one
:meth:`modelbox.refs.History.walk` yields), and only those commits are read.

One file per ref, ``.git/modelbox/audit-index/<sha1 of the ref name>.json``::

    {"kind": "audit-index", "format": 1, "ref": "refs/heads/main", "head": "<sha>",
     "models": {"ai/yolo": "<sha> <sha> ...", ...}}     (oldest first)

It describes exactly the commits reachable from ``head``. When the ref has moved on, the
index is extended only when the new head is a chain of single-parent commits on top of
``head`` (modelbox's own writes, a fast-forward pull, a plain ``git commit``): the walk
from the new head then yields that chain first and then exactly the old walk, so the
order stays git log's. Anything else (a merge, ``git reset``, a force-pushed history, a
switch to another branch the index did not see) rebuilds it from a full walk. A commit
whose tag moves cannot be told here (a shallow clone) leaves the index unsaved.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from modelbox import audit, derived
from modelbox.audit import AuditEvent
from modelbox.outside import OutsideMoves
from modelbox.refs import CommitRecord, History

__all__ = ["AuditIndex", "events_of"]

KIND = "audit-index"
_CHAIN_LIMIT = 2000
"""New single-parent commits read one by one before a full walk (which reads the commit
cache and ``git log`` in bulk) is cheaper."""


def events_of(record: CommitRecord, outside: OutsideMoves | None) -> list[AuditEvent]:
    """The audit events of one commit: its trailers, or, for a commit of the branch
    (``outside`` given) that has none, the tag moves it made outside modelbox."""
    found = audit.events(record)
    if not found and outside is not None:
        found = outside.events(record)
    return found


@dataclass
class _Slot:
    head: str
    models: dict[str, list[str]]
    complete: bool = True  # False: some commit's tag moves could not be told; not saved


class AuditIndex:
    """The commits about each model among those reachable from ``head`` of ``ref``."""

    def __init__(self, history: History, ref: str, head: str, outside: OutsideMoves | None,
                 ) -> None:
        self.history, self.ref, self.head, self.outside = history, ref, head, outside
        name = hashlib.sha1(ref.encode("utf-8")).hexdigest()
        self.path: Path = derived.folder(history.repo.git_dir) / "audit-index" / f"{name}.json"

    def records(self, model: str) -> list[CommitRecord]:
        """The commits with events about ``model``, newest first (walk order)."""
        slot = self._current()
        return [self.history.record(sha) for sha in reversed(slot.models.get(model, []))]

    def _current(self) -> _Slot:
        slot = self._read()
        if slot is not None and slot.head == self.head:
            return slot
        grown = self._extend(slot) if slot is not None else None
        if grown is None:
            grown = self._build()
        if grown.complete:
            self._save(grown)
        return grown

    def _read(self) -> _Slot | None:
        document = derived.load(self.path, KIND)
        if document is None or document.get("ref") != self.ref:
            return None
        head, models = document.get("head"), document.get("models")
        if not isinstance(head, str) or not isinstance(models, dict):
            return None
        if not all(isinstance(v, str) for v in models.values()):
            return None
        return _Slot(head, {model: shas.split() for model, shas in models.items()})

    def _extend(self, slot: _Slot) -> _Slot | None:
        """``slot`` plus the single-parent commits from the new head down to its head,
        or None when the new head is not such a chain on top of it."""
        chain: list[CommitRecord] = []
        sha = self.head
        while sha != slot.head:
            if len(chain) == _CHAIN_LIMIT:
                return None
            record = self.history.record(sha)
            if len(record.parents) != 1:
                return None  # a merge or a root: the old walk is not what follows
            chain.append(record)
            sha = record.parents[0]
        chain.reverse()
        added = self._index(chain)
        for model, shas in added.models.items():
            slot.models.setdefault(model, []).extend(shas)
        return _Slot(self.head, slot.models, added.complete)

    def _build(self) -> _Slot:
        records = list(self.history.walk(self.head))
        records.reverse()
        return self._index(records)

    def _index(self, records: list[CommitRecord]) -> _Slot:
        """The models ``records`` (oldest first) have events about, and their commits."""
        models: dict[str, list[str]] = {}
        complete = True
        for record in records:
            found = events_of(record, self.outside)
            if self.outside is not None and self.outside.unknown(record):
                complete = False
            for model in dict.fromkeys(audit.model_of(e.target) for e in found):
                models.setdefault(model, []).append(record.sha)
        if self.outside is not None:
            self.outside.save()
        return _Slot(self.head, models, complete)

    def _save(self, slot: _Slot) -> None:
        derived.save(self.path, KIND, {
            "ref": self.ref, "head": slot.head,
            "models": {model: " ".join(shas) for model, shas in slot.models.items()},
        })
