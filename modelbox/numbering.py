"""W&B's version numbers (seed 004): ``v0``, ``v1``, ... in the order they are made.

A version created with no name, and a link made into a collection with none, is called
``vN``: one more than the highest ``vN`` the model (or collection) has, archived versions
included, ``v0`` when it has none. Other names (``1.0.0``, ``best``) do not count. The number
is taken under the repository lock, so two writers of one clone never get the same one; two
*clones* can, and the second to push is refused (``docs/collaboration.md``).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from modelbox import layout

if TYPE_CHECKING:
    from modelbox.names import ModelName
    from modelbox.refs import Snapshot

__all__ = ["NUMBERED", "next_version"]

#: A numbered version's name: ``v`` and digits.
NUMBERED = re.compile(r"v(\d+)")


def next_version(snap: Snapshot, model: ModelName) -> str:
    """The next ``vN`` of ``model`` in ``snap``."""
    numbers = [
        int(m.group(1)) for name, _ in snap.listdir(layout.versions_dir(model))
        if (m := NUMBERED.fullmatch(name))
    ]
    return f"v{max(numbers) + 1 if numbers else 0}"
