"""Downloads that appear together or not at all: staged in a hidden folder, then moved.

A ``get`` places many files. Each appears only whole (a hardlink, or temp file + rename),
but one corrupt or missing object must not leave the others placed either: every file is
first placed under a hidden folder on the destination's own filesystem, and only once all
of them are there are they moved to their final names, by renames. A destination folder
that did not exist appears with one rename (a ``kill -9`` leaves it absent or complete);
into an existing folder each file is renamed over its final name.
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from modelbox.errors import ArtifactError
from modelbox.objects._files import remove_stale_temps, temp_path

_SHOWN = 5
"""Paths named in an error saying what was placed before a failure."""


class Staging:
    """Files meant for paths under ``root``, held in a hidden folder until :meth:`publish`.

    The hidden folder (``.mbtmp-<host>-<pid>-<random>-get``) sits in ``root``, or in its
    nearest existing parent when ``root`` does not exist yet; one left by a killed process
    is removed by the next ``get`` there. Use it as a context manager: leaving the block
    without :meth:`publish` (an error) deletes everything staged, and the destination is
    as it was.

    Raises:
        ArtifactError: the hidden folder cannot be created.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(os.path.abspath(root))
        base = self.root
        while not os.path.lexists(base) and base != base.parent:
            base = base.parent
        self.base = base
        self._finals: dict[str, str] = {}
        """Each staged path, with its final path."""
        self._on_close: list[Callable[[], None]] = []
        remove_stale_temps(base)
        if self.root.parent != base and self.root.parent.is_dir():
            remove_stale_temps(self.root.parent)  # left when the folder did not exist yet
        self.folder = temp_path(base / "get")
        self._base, self._folder = str(base), str(self.folder)
        self._prefix = os.path.join(self._base, "")
        try:
            os.mkdir(self.folder)
        except OSError as error:
            raise ArtifactError(f"cannot write in {base}: {error.strerror or error}") from error

    def path(self, final: Path) -> Path:
        """Where to place the file meant for ``final`` (a path under ``root``)."""
        # Strings, not pathlib: a folder artifact stages thousands of files.
        absolute = str(final)  # a Path is normalised already, but for ".."
        if ".." in absolute or not os.path.isabs(absolute):
            absolute = os.path.abspath(absolute)
        if not absolute.startswith(self._prefix):
            raise ValueError(f"{final} is not under {self.root}")  # a caller's bug
        staged = os.path.join(self._folder, absolute[len(self._prefix) :])
        self._finals[staged] = absolute
        return Path(staged)

    def on_close(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once the staged files are published or discarded."""
        self._on_close.append(callback)

    def publish(self) -> None:
        """Move every staged file to its final name.

        Nothing moves unless every final name can take its file (no folder where a file
        goes, no file or link where a folder is needed).

        Raises:
            ArtifactError: a final name cannot take its file; nothing was moved. Or a
                rename failed midway: the message lists what was placed before it.
        """
        moves = self._moves()
        done: list[str] = []
        try:
            for source, final in moves:
                try:
                    os.replace(source, final)
                except OSError as error:
                    placed = ", ".join(str(path) for path in done[:_SHOWN])
                    more = f" and {len(done) - _SHOWN} more" if len(done) > _SHOWN else ""
                    raise ArtifactError(
                        f"cannot write {final}: {error.strerror or error}; placed before "
                        f"that: {placed or 'nothing'}{more}"
                    ) from error
                done.append(final)
        finally:
            self.close()

    def close(self) -> None:
        """Delete the hidden folder and whatever is still in it; never raises."""
        shutil.rmtree(self.folder, ignore_errors=True)
        callbacks, self._on_close = self._on_close, []
        for callback in callbacks:
            callback()

    def __enter__(self) -> Staging:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _moves(self) -> list[tuple[str, str]]:
        """``(staged, final)`` renames that publish everything: the first missing folder
        on a final path moves whole; a file whose folders all exist moves alone.

        Raises:
            ArtifactError: a final name cannot take its file.
        """
        tops: dict[str, str | None] = {self._base: None}
        """Each folder met: the missing folder that holds it (None: it exists)."""

        def top(folder: str) -> str | None:
            if folder not in tops:
                above = top(os.path.dirname(folder))
                if above is not None:
                    tops[folder] = above
                else:
                    kind = _kind(folder)
                    if kind == "other":
                        raise ArtifactError(f"cannot write in {folder}: it is not a folder")
                    tops[folder] = folder if kind == "absent" else None
            return tops[folder]

        moves: dict[str, str] = {}
        for staged, final in self._finals.items():
            missing = top(os.path.dirname(final))
            if missing is not None:
                moves[missing] = self._staged(missing)
            elif _kind(final) == "dir":
                raise ArtifactError(f"cannot write {final}: it is a folder")
            else:
                moves[final] = staged
        return [(source, final) for final, source in moves.items()]

    def _staged(self, final: str) -> str:
        return os.path.join(self._folder, final[len(self._prefix) :])


def _kind(path: str) -> str:
    """"absent", "dir" or "other" (a file, a symbolic link: never followed)."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return "absent"
    except OSError as error:
        raise ArtifactError(f"cannot write {path}: {error.strerror or error}") from error
    return "dir" if stat.S_ISDIR(mode) else "other"
