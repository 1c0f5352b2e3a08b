"""The Git index (``.git/index``), read without parsing it and rewritten by splicing.

dulwich parses every entry into Python objects on read and serialises them all again on
write; at 100,000 versions that is most of a command's time. A modelbox command looks at
and changes a handful of entries, so this module keeps the file's bytes and the offset of
each entry, finds an entry by binary search, and writes by copying the unchanged runs of
bytes around the few entries it changed. The offsets are kept in
``.git/modelbox/index-offsets``, keyed by the index's own checksum (a hash of its whole
content), so they are used only for the exact bytes they were computed from: after a
``git status``, ``git checkout`` or a hand edit the checksum differs and the offsets are
computed again, once. The checksum itself is verified on every read.

It understands index versions 2 and 3 (what git writes by default) and drops the optional
cache extensions (``TREE``, ``UNTR``, ...), which git rebuilds itself; a split or sparse
index is refused with a message saying how to turn it off.
"""

from __future__ import annotations

import bisect
import contextlib
import hashlib
import os
import struct
import sys
import time
from array import array
from dataclasses import dataclass
from pathlib import Path

from modelbox.errors import GitError, IndexLockedError
from modelbox.faults import fault
from modelbox.processes import process_alive

_HEADER = struct.Struct(">4sII")
_ENTRY = struct.Struct(">10I20sH")  # stat fields, sha, flags
_FLAGS_AT = 60  # the flags field inside an entry
_EXTENDED = 0x4000
_STAGE_MASK = 0x3000
_NAME_MASK = 0x0FFF
_REFUSED_EXTENSIONS = {b"link": "split index", b"sdir": "sparse index"}
_CHECKSUM = 20
# The offsets file: magic, the index's checksum, entry count, end of the entries, the
# digest of the offsets that follow (a damaged file is recomputed, never trusted).
_CACHE_MAGIC = f"modelbox index offsets 1 {sys.byteorder}\n".encode()
_CACHE_HEAD = struct.Struct(">20sIQ20s")

Key = tuple[bytes, int]  # (path, stage): git's sort order


_ITEM = 8  # bytes per kept offset


def _offset_array(values: list[int] | None = None) -> array[int]:
    """Entry offsets: 8-byte unsigned integers, stored as they are kept in memory."""
    return array("Q", values or [])


def _shifted(run: array[int], shift: int) -> array[int]:
    """``run`` with ``shift`` added to every offset, without a Python loop over them: the
    offsets, read as one big integer of 8-byte lanes, plus ``shift`` in every lane.
    No lane carries or borrows into the next: every offset after a change stays a valid
    file position, between 0 and 2**64."""
    if not shift or not run:
        return run
    raw, order = run.tobytes(), sys.byteorder
    lanes = int.from_bytes(abs(shift).to_bytes(_ITEM, order) * len(run), order)
    value = int.from_bytes(raw, order)
    value = value + lanes if shift > 0 else value - lanes
    out = _offset_array()
    out.frombytes(value.to_bytes(len(raw), order))
    return out


@dataclass(frozen=True)
class IndexEntry:
    sha: str
    mode: int
    size: int
    mtime_ns: int
    ino: int


class GitIndex:
    """A mutable view of the index; :meth:`write` replaces the file atomically."""

    def __init__(self, path: Path, offsets: Path | None = None) -> None:
        self.path = path
        self.offsets_path = offsets or path.parent / "modelbox" / "index-offsets"
        self.version = 2
        self._data = b""
        self._offsets = _offset_array()  # where each entry starts, in git's sort order
        self._end = _HEADER.size  # where the entries end (extensions or checksum follow)
        self._changes: dict[Key, bytes | None] = {}  # entry -> raw bytes (None: removed)
        self._parts: list[bytes | memoryview] | None = None  # _data, not joined yet
        self._stamp: tuple[int, int, int] | None = None
        self.reload()

    def reload(self) -> None:
        """Read the index file again (an absent file is an empty index)."""
        self._changes, self._parts = {}, None
        try:
            with open(self.path, "rb") as f:
                data = f.read()
                st = os.fstat(f.fileno())
        except FileNotFoundError:
            self.version, self._data, self._end = 2, b"", _HEADER.size
            self._offsets = _offset_array()
            self._stamp = None
            return
        self._load(data)
        self._stamp = (st.st_mtime_ns, st.st_size, st.st_ino)

    def is_stale(self) -> bool:
        """True when someone else rewrote the index file since we read or wrote it."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return self._stamp is not None
        return self._stamp != (st.st_mtime_ns, st.st_size, st.st_ino)

    def _load(self, data: bytes) -> None:
        if len(data) < _HEADER.size + _CHECKSUM:
            raise GitError(f"{self.path} is truncated; run `git reset` to rebuild it")
        if hashlib.sha1(memoryview(data)[:-_CHECKSUM]).digest() != data[-_CHECKSUM:]:
            raise GitError(f"{self.path} has a bad checksum; run `git reset` to rebuild it")
        signature, version, count = _HEADER.unpack_from(data)
        if signature != b"DIRC" or version not in (2, 3):
            raise GitError(
                f"{self.path} uses index version {version}, which modelbox cannot update; "
                "run `git update-index --index-version 2`"
            )
        self.version, self._data = version, data
        # Offsets are saved only by :meth:`write` (under the repository lock): a read or a
        # refused command leaves .git as it found it.
        self._offsets, self._end = (self._cached_offsets(data, count)
                                    or self._walk(data, count))
        offset = self._end
        while offset < len(data) - _CHECKSUM:
            signature = data[offset : offset + 4]
            (size,) = struct.unpack_from(">I", data, offset + 4)
            if signature in _REFUSED_EXTENSIONS:
                kind = _REFUSED_EXTENSIONS[signature]
                raise GitError(
                    f"{self.path} is a {kind}, which modelbox cannot update; turn it off "
                    "with `git update-index --no-split-index` / `git sparse-checkout disable`"
                )
            offset += 8 + size

    def _walk(self, data: bytes, count: int) -> tuple[array[int], int]:
        """The offset of every entry, and where the entries end: one pass over the file."""
        if count * _ENTRY.size > len(data):  # a count no file this size can hold
            raise GitError(f"{self.path} is truncated; run `git reset` to rebuild it")
        offsets = [0] * count
        offset = _HEADER.size
        try:
            for i in range(count):
                offsets[i] = offset
                flags = (data[offset + _FLAGS_AT] << 8) | data[offset + _FLAGS_AT + 1]
                name_at = offset + _ENTRY.size + (2 if flags & _EXTENDED else 0)
                length = flags & _NAME_MASK
                end = (data.index(b"\0", name_at) if length == _NAME_MASK
                       else name_at + length)
                offset += ((end - offset) // 8 + 1) * 8
        except (IndexError, ValueError):
            raise GitError(f"{self.path} is truncated; run `git reset` to rebuild it") from None
        if offset > len(data) - _CHECKSUM:
            raise GitError(f"{self.path} is truncated; run `git reset` to rebuild it")
        return _offset_array(offsets), offset

    def _cached_offsets(self, data: bytes, count: int) -> tuple[array[int], int] | None:
        """The offsets kept for exactly these bytes, or None (absent, stale or damaged)."""
        try:
            raw = self.offsets_path.read_bytes()
        except OSError:
            return None
        head_at = len(_CACHE_MAGIC)
        body_at = head_at + _CACHE_HEAD.size
        if not raw.startswith(_CACHE_MAGIC) or len(raw) != body_at + _ITEM * count:
            return None
        checksum, cached_count, end, digest = _CACHE_HEAD.unpack_from(raw, head_at)
        body = memoryview(raw)[body_at:]
        if (checksum != data[-_CHECKSUM:] or cached_count != count
                or hashlib.sha1(body).digest() != digest
                or not _HEADER.size <= end <= len(data) - _CHECKSUM):
            return None
        offsets = _offset_array()
        offsets.frombytes(body)
        if count and offsets[0] != _HEADER.size:
            return None
        return offsets, end

    def _save_offsets(self, checksum: bytes, offsets: array[int], end: int) -> None:
        """Keep the offsets for the next process (temp file + rename; best effort: a
        read-only ``.git`` only means they are computed again)."""
        body = offsets.tobytes()
        head = _CACHE_HEAD.pack(checksum, len(offsets), end, hashlib.sha1(body).digest())
        tmp = self.offsets_path.with_name(f"{self.offsets_path.name}.{os.getpid()}.tmp")
        with contextlib.suppress(OSError):
            self.offsets_path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_bytes(_CACHE_MAGIC + head + body)
            os.replace(tmp, self.offsets_path)
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)

    # -- entries -------------------------------------------------------------------------
    def _key_at(self, offset: int) -> Key:
        data = self._data
        flags = (data[offset + _FLAGS_AT] << 8) | data[offset + _FLAGS_AT + 1]
        name_at = offset + _ENTRY.size + (2 if flags & _EXTENDED else 0)
        length = flags & _NAME_MASK
        end = data.index(b"\0", name_at) if length == _NAME_MASK else name_at + length
        return data[name_at:end], (flags & _STAGE_MASK) >> 12

    def _position(self, key: Key, lo: int = 0) -> tuple[int, bool]:
        """Where ``key`` is (or would go) among the file's entries, and whether it is there."""
        self._bytes()
        offsets = self._offsets
        at = bisect.bisect_left(offsets, key, lo, key=self._key_at)
        return at, at < len(offsets) and self._key_at(offsets[at]) == key

    def _raw(self, key: Key) -> bytes | None:
        if key in self._changes:
            return self._changes[key]
        at, found = self._position(key)
        if not found:
            return None
        stop = self._offsets[at + 1] if at + 1 < len(self._offsets) else self._end
        return self._bytes()[self._offsets[at] : stop]

    def get(self, path: str) -> IndexEntry | None:
        """The stage-0 entry for ``path``, or None (also None when the path is conflicted)."""
        raw = self._raw((path.encode(), 0))
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
        return any(self._raw((name, stage)) is not None for stage in (1, 2, 3))

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
        self._changes[(name, 0)] = body + b"\0" * (8 - len(body) % 8)

    def remove(self, path: str) -> None:
        name = path.encode()
        for stage in (0, 1, 2, 3):
            self._changes[(name, stage)] = None

    def _spliced(self) -> tuple[list[bytes | memoryview], array[int], int]:
        """The new file but its checksum, as parts: runs of unchanged entries are views of
        the old bytes (never copied), with their offsets shifted. Returns the parts, the
        new offsets and where the entries end."""
        data, offsets, end = memoryview(self._bytes()), self._offsets, self._end
        parts: list[bytes | memoryview] = []
        new_offsets = _offset_array()
        at = _HEADER.size  # where the next part lands in the new file
        copied = 0  # entries of the old file before this one are placed
        for key in sorted(self._changes):
            raw = self._changes[key]
            position, found = self._position(key, copied)
            if position > copied:
                start = offsets[copied]
                stop = offsets[position] if position < len(offsets) else end
                parts.append(data[start:stop])
                shift = at - start
                run = offsets[copied:position]
                new_offsets += _shifted(run, shift)
                at += stop - start
            copied = position + 1 if found else position
            if raw is not None:
                parts.append(raw)
                new_offsets.append(at)
                at += len(raw)
        if copied < len(offsets):
            start = offsets[copied]
            parts.append(data[start:end])
            shift = at - start
            run = offsets[copied:]
            new_offsets += _shifted(run, shift)
            at += end - start
        parts.insert(0, _HEADER.pack(b"DIRC", self.version, len(new_offsets)))
        return parts, new_offsets, at

    def write(self) -> None:
        """Write the index through ``index.lock`` and rename, as git does.

        A lock held by another process (a ``git status`` loop, an IDE) is waited for, with
        backoff, up to ``MODELBOX_INDEX_LOCK_TIMEOUT`` seconds (default 3); then
        IndexLockedError. A lock left by a modelbox process that died holding it is removed
        first (see :func:`clear_stale_lock`).
        """
        parts, offsets, end = self._spliced()
        digest = hashlib.sha1()
        for part in parts:
            digest.update(part)
        checksum = digest.digest()
        parts.append(checksum)
        lock = self.path.with_name(self.path.name + ".lock")
        fd = _acquire(lock)
        try:
            fault("index-locked")
            with os.fdopen(fd, "wb") as f:
                f.writelines(parts)
            os.replace(lock, self.path)
        except OSError:
            lock.unlink(missing_ok=True)
            raise
        finally:
            _owner_file(lock).unlink(missing_ok=True)
        st = self.path.stat()
        self._stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        # The new bytes are joined only if this process reads the index again (a script
        # writing in a loop); a command that ends here never copies them.
        self._data, self._parts = b"", parts
        self._offsets, self._end, self._changes = offsets, end, {}
        self._save_offsets(checksum, offsets, end)

    def _bytes(self) -> bytes:
        if self._parts is not None:
            self._data, self._parts = b"".join(self._parts), None
        return self._data

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
