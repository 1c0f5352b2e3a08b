"""Local files that appear only whole: temp file + fsync + rename, and placement by link.

Every temporary file is named ``.mbtmp-<host>-<pid>-<random>-<final name>`` and sits in the
folder of its final name, so a rename publishes it atomically. A temp file left by a process
that died (same host, pid gone) or older than a day is stale and removed by
:func:`remove_stale_temps`; any other is ignored.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from modelbox.errors import ArtifactError

TEMP_PREFIX = ".mbtmp-"
_STALE_AFTER_S = 24 * 3600
_TEMP = re.compile(r"\.mbtmp-(?P<host>[A-Za-z0-9]*)-(?P<pid>\d+)-[0-9a-f]+-.*", re.DOTALL)
_FICLONE = 0x40049409  # Linux ioctl: share the source's extents (btrfs, XFS, ...)


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9]", "", socket.gethostname())[:16]


def temp_path(final: Path) -> Path:
    """A fresh temp path beside ``final``, named so it can be recognised as ours."""
    name = f"{TEMP_PREFIX}{_host()}-{os.getpid()}-{secrets.token_hex(4)}-{final.name[:100]}"
    return final.parent / name


def remove_stale_temps(directory: Path) -> None:
    """Delete temp files in ``directory`` whose writer is gone; ignore every other file."""
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return
    host = _host()
    now = time.time()
    for entry in entries:
        match = _TEMP.fullmatch(entry.name)
        if match is None:
            continue
        try:
            old = now - entry.stat(follow_symlinks=False).st_mtime > _STALE_AFTER_S
        except OSError:
            continue
        dead = match["host"] == host and not _alive(int(match["pid"]))
        if old or dead:
            with contextlib.suppress(OSError):
                os.unlink(entry.path)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    if sys.platform == "win32":
        # os.kill would terminate the process there; rely on the age of the file instead.
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable (a no-op where directories cannot be opened)."""
    if sys.platform == "win32":
        return
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


@contextlib.contextmanager
def atomic_write(
    final: Path, *, readonly: bool = False, durable_name: bool = True
) -> Iterator[BinaryIO]:
    """Yield a file that replaces ``final`` only if the ``with`` block completes.

    The data is written to a temp file beside ``final``, fsynced, then renamed over it; on
    any error the temp file is deleted and ``final`` is untouched. ``durable_name`` also
    fsyncs the folder so the rename survives a crash; a cache, which simply fetches a lost
    entry again, can skip that (one fsync fewer per file of a 2,000-file download).

    Raises:
        OSError: the folder cannot be created or written.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    temp = temp_path(final)
    stream = open(temp, "xb")  # noqa: SIM115 -- closed below, before the rename
    published = False
    try:
        yield stream
        stream.flush()
        os.fsync(stream.fileno())
        stream.close()
        if readonly:
            os.chmod(temp, 0o444)
        os.replace(temp, final)
        published = True
        if durable_name:
            fsync_dir(final.parent)
    finally:
        stream.close()
        if not published:
            with contextlib.suppress(OSError):
                os.unlink(temp)


def place(source: Path, dest: Path) -> None:
    """Make ``dest`` a copy of ``source``: a hardlink if possible, else a reflink or a copy.

    ``dest`` appears only whole (temp file + rename); its parent folders are created. A
    hardlinked ``dest`` shares ``source``'s inode and so its read-only mode.

    Raises:
        ArtifactError: ``dest`` is a folder, or cannot be written.
    """
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        if dest.is_dir() and not dest.is_symlink():
            raise ArtifactError(f"cannot write {dest}: it is a folder")
        if dest.exists() and os.path.samefile(source, dest):
            return
        temp = temp_path(dest)
        published = False
        try:
            try:
                os.link(source, temp)
            except OSError:
                _clone_or_copy(source, temp)
            os.replace(temp, dest)
            published = True
        finally:
            if not published:
                with contextlib.suppress(OSError):
                    os.unlink(temp)
    except OSError as error:
        raise ArtifactError(f"cannot write {dest}: {error.strerror or error}") from error


def _clone_or_copy(source: Path, target: Path) -> None:
    with open(source, "rb") as reader, open(target, "xb") as writer:
        if not _reflink(reader, writer):
            shutil.copyfileobj(reader, writer, length=1 << 20)
        writer.flush()
        os.fsync(writer.fileno())


def _reflink(reader: BinaryIO, writer: BinaryIO) -> bool:
    if sys.platform != "linux":
        return False
    import fcntl

    try:
        fcntl.ioctl(writer.fileno(), _FICLONE, reader.fileno())
    except OSError:
        # EXDEV, EOPNOTSUPP, ENOTTY...: the filesystem cannot clone; a plain copy will do.
        return False
    return True
