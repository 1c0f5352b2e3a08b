"""What changed: between two commits (:func:`tagged_models`), and when an object last
changed (seed 003's ``updated_at``, read from the audit history).

Nothing stores it (a manifest rewritten for every change would make each metric batch or
artifact add a diff of the manifest too); the branch's history already records every
change to every target, so ``updated_at`` is the time of the newest one. It walks history:
``show`` commands and the Python property call it, never a hot read path.
"""

from __future__ import annotations

from datetime import datetime

from modelbox import layout
from modelbox.refs import GitRepo
from modelbox.registry import Registry

# Downloads are recorded on the audit ref but change nothing.
_NOT_CHANGES = frozenset({"artifact.download"})


def updated_at(registry: Registry, target: str, created: datetime) -> datetime:
    """The time of the newest audited change to ``target`` (``NS/NAME`` or
    ``NS/NAME@VERSION``), never before ``created``."""
    for event in registry.log(target):  # newest first
        if event.target == target and event.operation not in _NOT_CHANGES:
            return max(event.time, created)
    return created


def tagged_models(repo: GitRepo, base: str | None, head: str) -> set[str]:
    """Models (``ai/vision/yolo``) whose tag map, or a version, ``base..head`` changes
    (every model with either when ``base`` is None). Equal subtrees are skipped unread:
    the cost is that of the change, not of the registry."""
    old = repo.snapshot(base).tree_id(layout.MODELS) if base else None
    new = repo.snapshot(head).tree_id(layout.MODELS)
    out = set()
    for change in repo.changed_paths(old, new, f"{layout.MODELS}/"):
        if not (change.path.endswith(f"/{layout.TAGS_FILE}")
                or f"/{layout.VERSIONS_DIR}/" in change.path):
            continue
        parts = change.path.split("/")[1:]
        # The owner's folders end where the layout's own names (``_tags.json``...) begin.
        owned = next((i for i, part in enumerate(parts) if part.startswith("_")), 0)
        if owned:
            out.add("/".join(parts[:owned]))
    return out
