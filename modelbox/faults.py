"""A test hook: die at a named step of a write, as ``kill -9`` would.

``MODELBOX_FAULT=STEP`` makes the process call ``os._exit(137)`` (no cleanup, no
``finally``, no flush: what SIGKILL does) when it reaches ``STEP``. It exists so the test
suite can hit each window of :mod:`modelbox.recovery` deterministically; the random-time
``kill -9`` tests cover the rest. Never set it outside tests. The steps:

``after-journal``   the recovery journal is written, the branch has not moved
``after-ref-move``  the branch moved, the work tree and index have not followed
``index-locked``    modelbox holds ``index.lock`` and has not written the new index
``index-written``   the new index is in ``index.lock``, the old one also named
                    ``.git/modelbox/index-spare``; not renamed yet
``before-tag-refs`` the work tree and index followed, the tag refs have not

``MODELBOX_INTERRUPT=STEP`` raises ``KeyboardInterrupt`` at ``STEP`` instead, as a Ctrl-C
there would: the process lives on, and its next write must not trust what the failed one
left in memory. The steps:

``index-edited``    the index entries held in memory have the write's edits; the file
                    has not been written
"""

from __future__ import annotations

import os

STEPS = ("after-journal", "after-ref-move", "index-locked", "index-written",
         "before-tag-refs")


def fault(step: str) -> None:
    """Exit at once, like ``kill -9``, when ``MODELBOX_FAULT`` names ``step``."""
    if os.environ.get("MODELBOX_FAULT") == step:
        os._exit(137)


def interrupt(step: str) -> None:
    """Raise ``KeyboardInterrupt``, as a Ctrl-C would, when ``MODELBOX_INTERRUPT`` names
    ``step``."""
    if os.environ.get("MODELBOX_INTERRUPT") == step:
        raise KeyboardInterrupt
