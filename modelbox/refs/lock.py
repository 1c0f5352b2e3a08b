"""One writer at a time per repository: an advisory lock in the git directory.

Two modelbox processes writing to the same clone queue on this lock, so the second one reads
the first one's commit before it builds its own; neither update is lost. A writer that waits
longer than the timeout (``MODELBOX_LOCK_TIMEOUT``, default 60 s) fails cleanly instead.

A writer also touches the lock file (its mtime) when it takes the lock and while it waits
for it. That is how the background repository maintenance (:mod:`modelbox.refs.maintenance`)
knows the registry is busy: it starts only after a quiet spell, and a maintenance that holds
the lock gives it up as soon as a writer starts waiting.
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
_TOUCH_SECONDS = 0.1  # how often a waiting writer says so


def lock_path(git_dir: Path) -> Path:
    return git_dir / "modelbox" / "lock"


def open_lock(git_dir: Path) -> int:
    """A descriptor of the lock file (created if missing), not locked yet."""
    path = lock_path(git_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    return os.open(path, os.O_RDWR | os.O_CREAT, 0o644)


def try_lock(fd: int) -> bool:
    """Take the lock on ``fd`` if nobody holds it; never waits, never touches the file."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def touch(fd: int) -> None:
    """Mark the lock file as wanted now (see the module docstring)."""
    with contextlib.suppress(OSError):  # a read-only or odd file system: no signal, no harm
        os.utime(fd)


@contextlib.contextmanager
def locked(git_dir: Path, timeout: float | None = None) -> Iterator[None]:
    """Hold the repository's write lock for the duration of the block."""
    if timeout is None:
        timeout = float(os.environ.get("MODELBOX_LOCK_TIMEOUT", "60"))
    path = lock_path(git_dir)
    fd = open_lock(git_dir)
    try:
        deadline = time.monotonic() + timeout
        touched = 0.0
        while not try_lock(fd):
            now = time.monotonic()
            if now >= deadline:
                raise ConcurrentUpdateError(
                    f"another modelbox process has held {path} for {timeout:g} s; "
                    "try again when it has finished"
                ) from None
            if now - touched >= _TOUCH_SECONDS:
                touch(fd)  # a maintenance holding the lock yields to a waiting writer
                touched = now
            time.sleep(_POLL_SECONDS)
        touch(fd)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock
