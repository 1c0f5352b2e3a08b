"""A progress bar for transfers: bytes and files, shown only when someone is watching."""

from __future__ import annotations

import sys
import threading
from types import TracebackType
from typing import Any


def wanted(progress: bool | None) -> bool:
    """``progress`` itself, or when None whether stderr is a terminal."""
    if progress is not None:
        return progress
    isatty = getattr(sys.stderr, "isatty", None)
    return bool(isatty and isatty())


class Progress:
    """Thread-safe aggregate progress of a transfer of several files.

    Does nothing (and never imports tqdm) when disabled.
    """

    def __init__(self, description: str, total_bytes: int, total_files: int, *, enabled: bool):
        self._lock = threading.Lock()
        self._files_done = 0
        self._total_files = total_files
        self._bar: Any = None
        if enabled and total_files:
            from tqdm import tqdm

            self._bar = tqdm(
                desc=description,
                total=total_bytes,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                file=sys.stderr,
                dynamic_ncols=True,
                postfix=f"0/{total_files} files",
            )

    def advance(self, count: int) -> None:
        """Count ``count`` more bytes as transferred."""
        if self._bar is not None and count:
            with self._lock:
                self._bar.update(count)

    def file_done(self, count: int = 1) -> None:
        """Count ``count`` more files as complete."""
        if self._bar is not None:
            with self._lock:
                self._files_done += count
                self._bar.set_postfix_str(
                    f"{self._files_done}/{self._total_files} files", refresh=False
                )

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
