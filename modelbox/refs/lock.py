"""One writer at a time per repository: an advisory lock in the git directory.

Two modelbox processes writing to the same clone queue on this lock, so the second one reads
the first one's commit before it builds its own; neither update is lost. A writer that waits
longer than the timeout (``MODELBOX_LOCK_TIMEOUT``, default 60 s) fails cleanly instead.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path

from modelbox.errors import ConcurrentUpdateError

_POLL_SECONDS = 0.01


@contextlib.contextmanager
def locked(git_dir: Path, timeout: float | None = None) -> Iterator[None]:
    """Hold the repository's write lock for the duration of the block."""
    if timeout is None:
        timeout = float(os.environ.get("MODELBOX_LOCK_TIMEOUT", "60"))
    path = git_dir / "modelbox" / "lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise ConcurrentUpdateError(
                        f"another modelbox process has held {path} for {timeout:g} s; "
                        "try again when it has finished"
                    ) from None
                time.sleep(_POLL_SECONDS)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock
