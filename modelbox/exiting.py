"""The end of a command-line process: everything Python's own exit does that anyone can
see, without the teardown no one sees.

After ``main`` returns, CPython's exit tears down every module and collects every object:
60-80 ms after a write at 100,000 versions and 25-40 ms after ``resolve`` on the benchmark
machine (2026-12-04), for no effect outside the process. A console script here ends with
:func:`exit_now` instead, which does what a normal exit does that has effects, in the same
order, then ends the process with :func:`os._exit`:

1. the ``atexit`` functions run, in their usual order: ``weakref.finalize`` objects
   (the index offsets kept for the next process, a client's buffered metrics, open
   repositories closed), ``logging.shutdown``, ``multiprocessing``'s clean-up;
2. stdout and stderr are flushed.

It falls back to Python's normal exit (``sys.exit``) whenever it cannot be sure to do as
well: when a thread other than the main one and the daemons is still running (a normal
exit waits for those; this would cut them off), when flushing fails (a closed pipe: Python
reports it its own way), or on an interpreter without ``atexit._run_exitfuncs``. The same
approach is Instagram's ("Dismissing Python Garbage Collection at Instagram", 2017): skip
the final collection, not the exit handlers.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
from typing import NoReturn

__all__ = ["exit_now"]


def exit_now(code: int) -> NoReturn:
    """End the process with ``code`` after the exit handlers and a flush of stdout and
    stderr; Python's normal exit when that cannot be done safely (see the module)."""
    run_exit_functions = getattr(atexit, "_run_exitfuncs", None)
    if run_exit_functions is None or _threads_at_work():
        sys.exit(code)
    run_exit_functions()  # each runs once: CPython clears the list after running it
    try:
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:
                stream.flush()
    except (OSError, ValueError):
        sys.exit(code)  # Python's own exit reports the closed pipe as it always did
    os._exit(code & 0xFF)  # what the shell sees of sys.exit(code) too


def _threads_at_work() -> bool:
    """Whether a thread a normal exit waits for still runs: any but the main thread and
    the daemons (fsspec's event loop, say), which a normal exit does not wait for either."""
    main = threading.main_thread()
    return any(t is not main and not t.daemon and t.is_alive() for t in threading.enumerate())
