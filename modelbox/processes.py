"""Whether a process that left a lock, a temporary file or a journal is still running."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` (on this host) still runs: this one counts as running, a
    zombie (killed, not yet reaped) does not. Where that cannot be told without harm
    (Windows, where ``os.kill`` terminates), every process counts as running."""
    if pid == os.getpid() or sys.platform == "win32":
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie holds its pid but nothing else
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[0:1] != ["Z"]


def yield_cpu(amount: int) -> None:
    """Run the calling thread ``amount`` nicer (``nice -n AMOUNT``, capped at 19), and
    with it the threads it starts afterwards: a background ingest that lets the trainer
    beside it have the CPU first. Linux only, where a thread has its own nice value
    (elsewhere it is the whole process's, which a library must not change: a no-op);
    a no-op too where the system refuses."""
    if amount <= 0 or not sys.platform.startswith("linux"):
        return
    import threading

    thread = threading.get_native_id()
    try:
        now = os.getpriority(os.PRIO_PROCESS, thread)
        os.setpriority(os.PRIO_PROCESS, thread, min(19, now + amount))
    except OSError:
        pass
