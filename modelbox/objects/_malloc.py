"""Keep the transfer buffers of a remote store from bloating the process (glibc only).

glibc raises its mmap threshold each time a large mmapped block is freed, so after a few
8 MiB parts every later part comes from per-thread heaps that never shrink: eight parallel
uploads then hold ~250 MiB instead of ~50. Pinning the threshold at 4 MiB makes each part an
mmap of its own, returned to the system as soon as it is freed. This is process-wide, so it
is done once, only when a remote store is opened, and never over a user's own
``MALLOC_MMAP_THRESHOLD_``.
"""

from __future__ import annotations

import os
import platform
import sys

_M_MMAP_THRESHOLD = -3  # from glibc's malloc.h
_THRESHOLD = 4 << 20
_done = False


def pin_mmap_threshold() -> None:
    """Make blocks of 4 MiB and more go straight to mmap (once per process, glibc only)."""
    global _done  # noqa: PLW0603 -- a process-wide setting is applied once per process
    if _done:
        return
    _done = True
    if sys.platform != "linux" or "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return
    if platform.libc_ver()[0] != "glibc":
        return
    import ctypes

    try:
        libc = ctypes.CDLL(None)
        libc.mallopt(_M_MMAP_THRESHOLD, _THRESHOLD)
    except (OSError, AttributeError):
        return  # not the libc we expected: keep its defaults
