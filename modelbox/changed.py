"""When an object last changed: seed 003's ``updated_at``, read from the audit history.

Nothing stores it (a manifest rewritten for every change would make each metric batch or
artifact add a diff of the manifest too); the branch's history already records every
change to every target, so ``updated_at`` is the time of the newest one. It walks history:
``show`` commands and the Python property call it, never a hot read path.
"""

from __future__ import annotations

from datetime import datetime

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
