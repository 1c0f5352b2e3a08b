"""What Linux says of a process's threads (``/proc/PID/task/TID/stat``), for the tests of
the priority the watcher and the training callbacks run at."""

from __future__ import annotations

from pathlib import Path


def nice(pid: int, thread: int | None = None) -> int:
    """The nice value of a process's main thread, or of one of its threads (Linux)."""
    stat = Path(f"/proc/{pid}/task/{thread or pid}/stat").read_text()
    return int(stat.rpartition(")")[2].split()[16])
