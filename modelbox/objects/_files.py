"""Local files that appear only whole: temp file (+ fsync) + rename, and placement by link.

Every temporary file is named ``.mbtmp-<host>-<pid>-<random>-<final name>`` and sits in the
folder of its final name, so a rename publishes it atomically. A temp file left by a process
that died (same host, pid gone) or older than a day is stale and removed by
:func:`remove_stale_temps`; any other is ignored.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import re
import secrets
import shutil
import socket
import stat
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from modelbox.errors import ArtifactError
from modelbox.processes import process_alive

TEMP_PREFIX = ".mbtmp-"
_STALE_AFTER_S = 24 * 3600
_TEMP = re.compile(r"\.mbtmp-(?P<host>[A-Za-z0-9]*)-(?P<pid>\d+)-[0-9a-f]+-.*", re.DOTALL)
_FICLONE = 0x40049409  # Linux ioctl: share the source's extents (btrfs, XFS, ...)


@functools.cache
def _host() -> str:
    return re.sub(r"[^A-Za-z0-9]", "", socket.gethostname())[:16]


def temp_path(final: Path) -> Path:
    """A fresh temp path beside ``final``, named so it can be recognised as ours."""
    name = f"{TEMP_PREFIX}{_host()}-{os.getpid()}-{secrets.token_hex(4)}-{final.name[:100]}"
    return final.parent / name


def remove_stale_temps(directory: Path) -> None:
    """Delete temp files (and staging folders) in ``directory`` whose writer is gone;
    ignore every other file."""
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
        dead = match["host"] == host and not process_alive(int(match["pid"]))
        if not (old or dead):
            continue
        if entry.is_dir(follow_symlinks=False):  # a staging folder (objects/staging.py)
            shutil.rmtree(entry.path, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                os.unlink(entry.path)


def fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable (a no-op where directories cannot be opened)."""
    if sys.platform == "win32":
        return
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


class AtomicFile:
    """A temp file beside ``final`` that replaces ``final`` only when :meth:`publish` is called.

    For writers that cannot keep a ``with`` block open around the whole write (a download
    whose chunks arrive from an event loop); :func:`atomic_write` is the usual interface.
    ``durable`` fsyncs the data before the rename and the folder after it, so that the new
    file survives a crash whole; without it a crash may lose the file or leave it short,
    which a cache, whose entries are checked by size and simply fetched again, can afford.

    Raises:
        OSError: the folder cannot be created or written.
    """

    def __init__(self, final: Path, *, readonly: bool = False, durable: bool = True) -> None:
        self.final = final
        self._readonly = readonly
        self._durable = durable
        self.temp = temp_path(final)
        try:
            self.stream: BinaryIO = open(self.temp, "xb")  # noqa: SIM115 -- see publish/discard
        except FileNotFoundError:
            final.parent.mkdir(parents=True, exist_ok=True)
            self.stream = open(self.temp, "xb")  # noqa: SIM115 -- closed by publish/discard
        self._published = False

    def publish(self, final: Path | None = None) -> None:
        """Rename the temp file over ``final`` (fsyncing first when ``durable``): the one
        given at the start, or one on the same filesystem learnt while writing."""
        final = self.final if final is None else final
        self.stream.flush()
        if self._durable:
            os.fsync(self.stream.fileno())
        self.stream.close()
        if self._readonly:
            os.chmod(self.temp, 0o444)
        os.replace(self.temp, final)
        self._published = True
        if self._durable:
            fsync_dir(final.parent)

    def discard(self) -> None:
        """Delete the temp file unless it was published; never raises."""
        with contextlib.suppress(OSError):
            self.stream.close()
        if not self._published:
            with contextlib.suppress(OSError):
                os.unlink(self.temp)


class DirectWriter:
    """Writes to a new file's descriptor ``fd`` that skip the page cache (``O_DIRECT``)
    while they are aligned: a large object written once is not read again soon, and a
    copy through the cache costs CPU twice (the copy, then its writeback) and evicts what
    other programs use (a trainer beside a checkpoint watcher). It falls back to ordinary
    writes where the filesystem refuses (tmpfs...) and from the first write that is not
    aligned on (the last chunk). The caller still fsyncs: the disk's own cache remains.
    """

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._direct = _DIRECT != 0 and _set_direct(fd, True)
        self._offset = 0

    def __call__(self, data: memoryview) -> None:
        while data:
            if self._direct and (len(data) % _ALIGN or self._offset % _ALIGN):
                self._stop()
            try:
                done = os.write(self._fd, data)
            except OSError as error:
                if not (self._direct and error.errno == errno.EINVAL):
                    raise
                self._stop()  # the memory or the device wants another alignment
                continue
            data = data[done:]
            self._offset += done

    def _stop(self) -> None:
        self._direct = False
        _set_direct(self._fd, False)


_DIRECT: int = getattr(os, "O_DIRECT", 0)
_ALIGN = 4096  # the largest logical block size of a disk in use; memory pages too


def _set_direct(fd: int, on: bool) -> bool:
    """Turn ``O_DIRECT`` on or off for ``fd``; False where the filesystem refuses."""
    import fcntl

    flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    try:
        fcntl.fcntl(fd, fcntl.F_SETFL, (flags | _DIRECT) if on else (flags & ~_DIRECT))
    except OSError:
        return False
    return True


def write_whole(final: Path, data: bytes | memoryview, *, readonly: bool = False) -> None:
    """Write ``data`` to a temp file beside ``final`` and rename it over ``final``.

    :class:`AtomicFile` without ``durable``, in as few system calls as possible, for the
    thousands of small files of a folder artifact: the file is created with its final mode
    and written unbuffered.

    Raises:
        OSError: the folder cannot be created or written.
    """
    temp = temp_path(final)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    mode = 0o444 if readonly else 0o666
    try:
        descriptor = os.open(temp, flags, mode)
    except FileNotFoundError:
        final.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(temp, flags, mode)
    published = False
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(descriptor, view) :]
        finally:
            os.close(descriptor)
        os.replace(temp, final)
        published = True
    finally:
        if not published:
            with contextlib.suppress(OSError):
                os.unlink(temp)


@contextlib.contextmanager
def atomic_write(
    final: Path, *, readonly: bool = False, durable: bool = True
) -> Iterator[BinaryIO]:
    """Yield a file that replaces ``final`` only if the ``with`` block completes.

    The data is written to a temp file beside ``final``, then renamed over it; on any error
    the temp file is deleted and ``final`` is untouched. ``durable`` (see
    :class:`AtomicFile`) also makes the new file survive a crash: fsync before the rename,
    fsync of the folder after.

    Raises:
        OSError: the folder cannot be created or written.
    """
    file = AtomicFile(final, readonly=readonly, durable=durable)
    try:
        yield file.stream
        file.publish()
    finally:
        file.discard()


def place(source: Path, dest: Path) -> None:
    """Make ``dest`` a copy of ``source``: a hardlink if possible, else a reflink or a copy.

    ``dest`` appears only whole: a new name is hardlinked at once (the file is complete
    already), anything else goes through a temp file + rename. Its parent folders are
    created. A hardlinked ``dest`` shares ``source``'s inode and so its read-only mode.

    Raises:
        ArtifactError: ``dest`` is a folder, or cannot be written.
    """
    # As few system calls as possible: a folder artifact places thousands of files, most
    # of them new names (one link).
    try:
        try:
            if _link(source, dest):
                return
        except FileExistsError:
            if stat.S_ISDIR(os.lstat(dest).st_mode):
                raise ArtifactError(f"cannot write {dest}: it is a folder") from None
            if _same_file(source, dest):
                return
        temp = temp_path(dest)
        published = False
        try:
            if not _link(source, temp):
                _clone_or_copy(source, temp)
            os.replace(temp, dest)
            published = True
        finally:
            if not published:
                with contextlib.suppress(OSError):
                    os.unlink(temp)
    except OSError as error:
        raise ArtifactError(f"cannot write {dest}: {error.strerror or error}") from error


def _same_file(source: Path, dest: Path) -> bool:
    try:
        return os.path.samefile(source, dest)
    except FileNotFoundError:  # a dangling symlink at dest
        return False


def _link(source: Path, dest: Path) -> bool:
    """Hardlink ``dest`` to ``source``, creating its folder; False where the filesystem
    refuses (another filesystem, no hardlinks...): copy instead.

    Raises:
        FileExistsError: ``dest`` exists.
        OSError: ``source`` is gone, or the folder cannot be created.
    """
    for attempt in range(2):
        try:
            os.link(source, dest)
        except FileExistsError:
            raise
        except FileNotFoundError:
            if attempt:
                raise  # the folder exists now: the source is gone
            dest.parent.mkdir(parents=True, exist_ok=True)  # its folder's first file
        except OSError:  # EXDEV, EPERM, EMLINK...
            return False
        else:
            return True
    return False  # pragma: no cover


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
