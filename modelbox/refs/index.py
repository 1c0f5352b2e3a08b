"""The Git index (``.git/index``), read once and rewritten by splicing raw entries.

dulwich parses every entry into Python objects on read and serialises them all again on
write, which costs ~0.2 s per command on a registry of 10,000 versions. A modelbox command
changes a handful of entries, so this module keeps each entry's raw bytes and only builds
the few it changes. It understands index versions 2 and 3 (what git writes by default) and
drops the optional cache extensions (``TREE``, ``UNTR``, ...), which git rebuilds itself;
a split or sparse index is refused with a message saying how to turn it off.
"""

from __future__ import annotations

import bisect
import hashlib
import os
import struct
import time
from dataclasses import dataclass
from pathlib import Path

from modelbox.errors import GitError, IndexLockedError
from modelbox.faults import fault
from modelbox.processes import process_alive

_HEADER = struct.Struct(">4sII")
_ENTRY = struct.Struct(">10I20sH")  # stat fields, sha, flags
_EXTENDED = 0x4000
_STAGE_MASK = 0x3000
_NAME_MASK = 0x0FFF
_REFUSED_EXTENSIONS = {b"link": "split index", b"sdir": "sparse index"}


@dataclass(frozen=True)
class IndexEntry:
    sha: str
    mode: int
    size: int
    mtime_ns: int
    ino: int


class GitIndex:
    """A mutable view of the index; :meth:`write` replaces the file atomically."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.version = 2
        # (path, stage) -> raw entry bytes, padding included; _keys keeps git's sort order
        self._raw: dict[tuple[bytes, int], bytes] = {}
        self._keys: list[tuple[bytes, int]] = []
        self._stamp: tuple[int, int, int] | None = None
        self.reload()

    def reload(self) -> None:
        """Read the index file again (an absent file is an empty index)."""
        try:
            data = self.path.read_bytes()
            st = self.path.stat()
        except FileNotFoundError:
            self._raw, self._keys, self._stamp = {}, [], None
            return
        self._raw = self._parse(data)
        self._keys = sorted(self._raw)
        self._stamp = (st.st_mtime_ns, st.st_size, st.st_ino)

    def is_stale(self) -> bool:
        """True when someone else rewrote the index file since we read or wrote it."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return self._stamp is not None
        return self._stamp != (st.st_mtime_ns, st.st_size, st.st_ino)

    def _parse(self, data: bytes) -> dict[tuple[bytes, int], bytes]:
        if len(data) < _HEADER.size + 20:
            raise GitError(f"{self.path} is truncated; run `git reset` to rebuild it")
        if hashlib.sha1(data[:-20]).digest() != data[-20:]:
            raise GitError(f"{self.path} has a bad checksum; run `git reset` to rebuild it")
        signature, version, count = _HEADER.unpack_from(data)
        if signature != b"DIRC" or version not in (2, 3):
            raise GitError(
                f"{self.path} uses index version {version}, which modelbox cannot update; "
                "run `git update-index --index-version 2`"
            )
        self.version = version
        raw: dict[tuple[bytes, int], bytes] = {}
        offset = _HEADER.size
        unpack = _ENTRY.unpack_from
        for _ in range(count):
            flags = unpack(data, offset)[11]
            name_at = offset + _ENTRY.size + (2 if flags & _EXTENDED else 0)
            end = data.index(b"\0", name_at)
            name = data[name_at:end]
            length = ((end - offset) // 8 + 1) * 8
            raw[(name, (flags & _STAGE_MASK) >> 12)] = data[offset : offset + length]
            offset += length
        while offset < len(data) - 20:
            signature = data[offset : offset + 4]
            (size,) = struct.unpack_from(">I", data, offset + 4)
            if signature in _REFUSED_EXTENSIONS:
                kind = _REFUSED_EXTENSIONS[signature]
                raise GitError(
                    f"{self.path} is a {kind}, which modelbox cannot update; turn it off "
                    "with `git update-index --no-split-index` / `git sparse-checkout disable`"
                )
            offset += 8 + size
        return raw

    def get(self, path: str) -> IndexEntry | None:
        """The stage-0 entry for ``path``, or None (also None when the path is conflicted)."""
        raw = self._raw.get((path.encode(), 0))
        if raw is None:
            return None
        fields = _ENTRY.unpack_from(raw)
        return IndexEntry(
            sha=fields[10].hex(),
            mode=fields[6],
            size=fields[9],
            mtime_ns=fields[2] * 1_000_000_000 + fields[3],
            ino=fields[5],
        )

    def is_conflicted(self, path: str) -> bool:
        name = path.encode()
        return any((name, stage) in self._raw for stage in (1, 2, 3))

    def set(self, path: str, sha: str, st: os.stat_result, mode: int = 0o100644) -> None:
        """Record ``path`` as ``sha`` with the stat data of the file just written."""
        name = path.encode()
        mask = 0xFFFFFFFF
        head = _ENTRY.pack(
            int(st.st_ctime) & mask,
            st.st_ctime_ns % 1_000_000_000,
            int(st.st_mtime) & mask,
            st.st_mtime_ns % 1_000_000_000,
            st.st_dev & mask,
            st.st_ino & mask,
            mode,
            st.st_uid & mask,
            st.st_gid & mask,
            st.st_size & mask,
            bytes.fromhex(sha),
            min(len(name), _NAME_MASK),
        )
        body = head + name
        if (name, 0) not in self._raw:
            bisect.insort(self._keys, (name, 0))
        self._raw[(name, 0)] = body + b"\0" * (8 - len(body) % 8)

    def remove(self, path: str) -> None:
        name = path.encode()
        for stage in (0, 1, 2, 3):
            if self._raw.pop((name, stage), None) is not None:
                del self._keys[bisect.bisect_left(self._keys, (name, stage))]

    def write(self) -> None:
        """Write the index through ``index.lock`` and rename, as git does.

        A lock held by another process (a ``git status`` loop, an IDE) is waited for, with
        backoff, up to ``MODELBOX_INDEX_LOCK_TIMEOUT`` seconds (default 3); then
        IndexLockedError. A lock left by a modelbox process that died holding it is removed
        first (see :func:`clear_stale_lock`).
        """
        body = _HEADER.pack(b"DIRC", self.version, len(self._keys)) + b"".join(
            map(self._raw.__getitem__, self._keys)
        )
        body += hashlib.sha1(body).digest()
        lock = self.path.with_name(self.path.name + ".lock")
        fd = _acquire(lock)
        try:
            fault("index-locked")
            with os.fdopen(fd, "wb") as f:
                f.write(body)
            os.replace(lock, self.path)
        except OSError:
            lock.unlink(missing_ok=True)
            raise
        finally:
            _owner_file(lock).unlink(missing_ok=True)
        st = self.path.stat()
        self._stamp = (st.st_mtime_ns, st.st_size, st.st_ino)


# -- index.lock: waiting for it, and telling our own dead lock from a live git's ------------
_BACKOFF_START, _BACKOFF_MAX = 0.005, 0.1
_RACE_NS = 100_000_000  # an owner record without an inode names a lock made within 0.1 s


def _owner_file(lock: Path) -> Path:
    """``index.lock.modelbox-owner``: "PID [INODE]" of the modelbox process holding the lock.

    Written before the lock is created (PID only) and again once it exists (with the lock's
    inode), removed after the rename; git ignores the file.
    """
    return lock.with_name(lock.name + ".modelbox-owner")


def _acquire(lock: Path) -> int:
    timeout = float(os.environ.get("MODELBOX_INDEX_LOCK_TIMEOUT", "3"))
    owner = _owner_file(lock)
    deadline = time.monotonic() + timeout
    delay = _BACKOFF_START
    while True:
        clear_stale_lock(lock)
        owner.write_text(f"{os.getpid()}\n")
        try:
            fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            owner.unlink(missing_ok=True)
            if time.monotonic() >= deadline:
                raise IndexLockedError(str(lock), timeout) from None
            time.sleep(delay)
            delay = min(delay * 2, _BACKOFF_MAX)
            continue
        owner.write_text(f"{os.getpid()} {os.fstat(fd).st_ino}\n")
        return fd


def clear_stale_lock(lock: Path) -> bool:
    """Remove ``lock`` if a modelbox process that is gone (``kill -9``) left it; True if so.

    The lock is ours only if the owner record names a dead process and either the lock's
    inode (recorded once the lock existed) or, when the process died before recording it,
    a creation time within 0.1 s of the record. A lock of a live git is never touched.
    """
    owner = _owner_file(lock)
    try:
        fields = owner.read_text().split()
        recorded = owner.stat().st_mtime_ns
        pid = int(fields[0])
        ino = int(fields[1]) if len(fields) > 1 else None
    except (OSError, ValueError, IndexError):
        return False
    if process_alive(pid):
        return False
    try:
        st = lock.stat()
    except FileNotFoundError:
        st = None
    ours = st is not None and (
        st.st_ino == ino if ino is not None else abs(st.st_ctime_ns - recorded) < _RACE_NS
    )
    if ours:
        lock.unlink(missing_ok=True)
    owner.unlink(missing_ok=True)
    return ours
