"""Run one command and report its wall time and peak RSS: ``python -I -S launch.py OUT CMD...``.

Why a launcher: Linux counts, in a child's ``ru_maxrss``, the high-water RSS of the memory
it had before ``exec`` — with ``vfork``/``posix_spawn`` (what ``subprocess`` uses) that is
the *parent's* memory, so every command would look at least as large as the benchmark
itself. This small process forks (its copy is ~6 MB, the floor of every reading), execs the
command, and writes ``[exit code, peak RSS KiB, seconds from fork to exit, CPU seconds
(user + sys)]`` to OUT as JSON.
Standard streams are inherited. Standard library only, and started with ``-S``, to stay small.
"""

import json
import os
import signal
import sys
import time


def main() -> int:
    out, argv = sys.argv[1], sys.argv[2:]
    started = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        try:
            os.execvp(argv[0], argv)
        finally:
            os._exit(127)
    # SIGTERM to the launcher is for the command (scenario 14 stops its watcher so).
    signal.signal(signal.SIGTERM, lambda signum, frame: os.kill(pid, signum))
    _, status, usage = os.wait4(pid, 0)
    elapsed = time.perf_counter() - started
    with open(out, "w") as stream:
        json.dump([os.waitstatus_to_exitcode(status), usage.ru_maxrss, elapsed,
                   usage.ru_utime + usage.ru_stime], stream)
    return 0


if __name__ == "__main__":
    sys.exit(main())
