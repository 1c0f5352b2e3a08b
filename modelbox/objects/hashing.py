"""SHA-256 of files, streamed in fixed-size chunks."""

from __future__ import annotations

import hashlib
import mmap
import os
import re
import stat
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from modelbox.errors import ArtifactError, InvalidValueError

if TYPE_CHECKING:
    from modelbox.objects.cache import HashCache

CHUNK_SIZE = 1 << 20
"""Bytes read per step when hashing or copying; large enough to reach hashlib's full speed."""

_DIGEST = re.compile(r"[0-9a-f]{64}")

_RACY_NS = 2_000_000_000
"""A file modified this recently may change again within the same mtime tick: don't cache
its digest (git's "racily clean" entries)."""


@dataclass(frozen=True)
class FileDigest:
    """The SHA-256 (lowercase hex) and size in bytes of a file's content."""

    sha256: str
    size: int


def check_digest(digest: str) -> str:
    """Return ``digest`` if it is 64 lowercase hex characters.

    Raises:
        InvalidValueError: it is not.
    """
    if not _DIGEST.fullmatch(digest):
        raise InvalidValueError(f"{digest!r} is not a SHA-256 digest (64 lowercase hex digits)")
    return digest


def hash_file(path: Path, *, cache: HashCache | None = None) -> FileDigest:
    """Hash the content of ``path`` without reading it into memory at once.

    With a ``cache``, an unchanged file (same size, mtime, ctime, inode and device as when
    it was last hashed) costs one ``stat`` and is not read.

    Raises:
        ArtifactError: the file is missing, unreadable, not a regular file, or changed while
            it was being hashed.
    """
    path = Path(os.path.abspath(path))
    before = _stat(path)
    if cache is not None:
        known = cache.lookup(path, before)
        if known is not None:
            return FileDigest(known, before.st_size)
    return _hash(path, before, None, None, cache)


def copy_hashing(path: Path, write: Callable[[memoryview], object], *,
                 cache: HashCache | None = None) -> FileDigest:
    """Give the content of ``path`` to ``write``, chunk by chunk, while hashing it: one
    read, where hashing and then copying take two (a file new to a local store). Each
    chunk starts a page-aligned buffer, and all but the last are :data:`CHUNK_SIZE`
    long (what a write past the page cache needs); ``write`` must be done with it
    before it returns.

    The checks and the cache are :func:`hash_file`'s, except that the cache is only told
    the digest, never asked: the caller wants the bytes.

    Raises:
        ArtifactError: as :func:`hash_file`; OSError: what ``write`` raises.
    """
    path = Path(os.path.abspath(path))
    # Anonymous, so page-aligned; never closed by hand: a traceback may hold a chunk.
    return _hash(path, _stat(path), mmap.mmap(-1, CHUNK_SIZE), write, cache)


def _hash(path: Path, before: os.stat_result, buffer: bytearray | mmap.mmap | None,
          write: Callable[[memoryview], object] | None,
          cache: HashCache | None) -> FileDigest:
    started_ns = time.time_ns()
    hasher = hashlib.sha256()
    buffer = bytearray(CHUNK_SIZE) if buffer is None else buffer
    try:
        stream = open(path, "rb", buffering=0)  # noqa: SIM115 -- closed below
    except OSError as error:
        raise ArtifactError(f"cannot read {path}: {error.strerror or error}") from error
    view = memoryview(buffer)
    with stream:
        while True:
            try:
                count = stream.readinto(view)
            except OSError as error:
                raise ArtifactError(f"cannot read {path}: {error.strerror or error}") from error
            if not count:
                break
            hasher.update(view[:count])
            if write is not None:
                write(view[:count])  # an OSError here is the destination's
    after = _stat(path)
    if stat_changed(before, after):
        raise ArtifactError(
            f"{path} changed while it was being hashed; wait until it is completely written "
            "and try again"
        )
    digest = FileDigest(hasher.hexdigest(), after.st_size)
    if cache is not None and not racy(after, started_ns):
        cache.store(path, after, digest.sha256)
    return digest


def cached_digest(path: Path, cache: HashCache | None) -> tuple[int, FileDigest | None]:
    """``(size, digest)`` of ``path`` with one ``stat``: the digest if ``cache`` knows the
    file as it is now, else None. Nothing is read.

    Raises:
        ArtifactError: the file is missing, unreadable or not a regular file.
    """
    path = Path(os.path.abspath(path))
    now = _stat(path)
    known = cache.lookup(path, now) if cache is not None else None
    return now.st_size, (FileDigest(known, now.st_size) if known is not None else None)


def read_into(path: Path, into: memoryview) -> os.stat_result:
    """Read the whole of a small file into ``into``, which must be exactly its size.

    Returns the file's ``stat`` after the read. (One ``open`` and two ``fstat``: a folder
    of small files is read thousands of files at a time.)

    Raises:
        ArtifactError: the file is unreadable or not a regular file, is not ``len(into)``
            bytes, or changed while it was read.
    """
    try:
        # O_NONBLOCK: a FIFO put where a file was must not hang the read (no effect on
        # regular files).
        flags = os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_NONBLOCK", 0)
        descriptor = os.open(path, flags)
    except OSError as error:
        raise ArtifactError(f"cannot read {path}: {error.strerror or error}") from error
    with open(descriptor, "rb", buffering=0) as stream:
        before = os.fstat(descriptor)
        if not stat.S_ISREG(before.st_mode):
            raise ArtifactError(f"{path} is not a regular file")
        if before.st_size != len(into):
            raise ArtifactError(
                f"{path} changed since it was listed ({before.st_size} bytes, expected "
                f"{len(into)}); wait until it is completely written and add it again"
            )
        received = 0
        try:
            while received < len(into) and (count := stream.readinto(into[received:])):
                received += count
        except OSError as error:
            raise ArtifactError(f"cannot read {path}: {error.strerror or error}") from error
        after = os.fstat(descriptor)
    if received != len(into) or stat_changed(before, after):
        raise ArtifactError(
            f"{path} changed while it was being read; wait until it is completely written "
            "and add it again"
        )
    return after


def read_small(
    path: Path, into: memoryview, *, expected: FileDigest | None = None
) -> tuple[FileDigest, os.stat_result | None]:
    """Read the whole of a small file into ``into`` (exactly its size) and hash it.

    With ``expected`` the content must hash to it (the file was hashed before). Returns
    the digest, and the ``stat`` under which a hash cache may remember it: None when it
    was known already, or when the file changed too recently to be trusted.

    Raises:
        ArtifactError: the file is unreadable, is not ``len(into)`` bytes, changed while
            it was read, or no longer hashes to ``expected``.
    """
    started_ns = time.time_ns()
    after = read_into(path, into)
    digest = FileDigest(hashlib.sha256(into).hexdigest(), len(into))
    if expected is not None:
        if digest != expected:
            raise ArtifactError(
                f"{path} changed since it was hashed; wait until it is completely written "
                "and add it again"
            )
        return digest, None
    return digest, (None if racy(after, started_ns) else after)


def racy(stat: os.stat_result, started_ns: int) -> bool:
    """Whether a file hashed from ``started_ns`` on, whose ``stat`` after the read this is,
    was modified too recently for a hash cache to remember its digest by that ``stat``.

    As git, on the mtime only: a ``touch -r`` after an edit moves the ctime, which is in
    the cache's key (and the kernel's multigrain timestamps give a changed inode a ctime
    finer than the last one anybody read).
    """
    return started_ns - stat.st_mtime_ns <= _RACY_NS


def _stat(path: Path) -> os.stat_result:
    try:
        result = os.stat(path)
    except OSError as error:
        raise ArtifactError(f"cannot read {path}: {error.strerror or error}") from error
    if not stat.S_ISREG(result.st_mode):
        raise ArtifactError(f"{path} is not a regular file")
    return result


def stat_changed(before: os.stat_result, after: os.stat_result) -> bool:
    """Whether two ``stat`` results of one path tell of different content (ctime too: an
    edit that puts the mtime back still moves it)."""
    return (before.st_size, before.st_mtime_ns, before.st_ctime_ns, before.st_ino,
            before.st_dev) != (after.st_size, after.st_mtime_ns, after.st_ctime_ns,
                               after.st_ino, after.st_dev)


def read_verified(path: Path, expected: FileDigest, chunk_size: int) -> Generator[bytes]:
    """Yield the content of ``path`` in chunks of ``chunk_size`` bytes, hashing it on the way.

    After the last chunk, checks that the bytes read hash to ``expected`` and that the file
    was not modified meanwhile; an uploader consumes every chunk before it publishes. Use
    it in ``contextlib.closing`` so that an abandoned upload closes the file at once.

    Raises:
        ArtifactError: the file is unreadable, or its content is not ``expected`` (it changed
            since it was hashed, or while it was being read).
    """
    before = _stat(path)
    if before.st_size != expected.size:
        raise ArtifactError(
            f"{path} changed since it was hashed ({before.st_size} bytes, expected "
            f"{expected.size}); add it again"
        )
    hasher = hashlib.sha256()
    try:
        with open(path, "rb") as stream:
            while chunk := stream.read(chunk_size):
                hasher.update(chunk)
                yield chunk
    except OSError as error:
        raise ArtifactError(f"cannot read {path}: {error.strerror or error}") from error
    after = _stat(path)
    if stat_changed(before, after) or hasher.hexdigest() != expected.sha256:
        raise ArtifactError(
            f"{path} changed while it was being uploaded (or since it was hashed); "
            "wait until it is completely written and add it again"
        )
