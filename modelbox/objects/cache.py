"""Where modelbox caches things on this machine: verified objects, and the hashes of files."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import sqlite3
import stat
import threading
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from modelbox.errors import InvalidValueError, ObjectCorruptError
from modelbox.objects._errors import local_errors
from modelbox.objects._files import remove_stale_temps, write_whole
from modelbox.objects._layout import relative_key
from modelbox.objects.hashing import CHUNK_SIZE, stat_changed

logger = logging.getLogger(__name__)

# Table `files`, not `hashes` (keyed without ctime_ns, by modelbox before 0.x): an older
# modelbox sharing this cache keeps its own table and never reads these rows.
_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    ctime_ns INTEGER NOT NULL,
    inode INTEGER NOT NULL,
    device INTEGER NOT NULL,
    sha256 TEXT NOT NULL
) WITHOUT ROWID
"""
_QUERY_SIZE = 500
"""Paths per query of :meth:`HashCache.lookup_many` (SQLite allows 999 parameters)."""
_PACKS_SCHEMA = """
CREATE TABLE IF NOT EXISTS packs (
    members TEXT PRIMARY KEY,
    sha256 TEXT NOT NULL
) WITHOUT ROWID
"""


def default_cache_dir() -> Path:
    """The machine-wide cache folder shared by every registry.

    ``$MODELBOX_CACHE_DIR``, else ``$XDG_CACHE_HOME/modelbox``, else ``~/.cache/modelbox``.
    """
    explicit = os.environ.get("MODELBOX_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser().absolute()
    xdg = os.environ.get("XDG_CACHE_HOME")
    # The XDG spec says a relative value is invalid and must be ignored.
    if xdg and os.path.isabs(xdg):
        return Path(xdg) / "modelbox"
    return Path.home() / ".cache" / "modelbox"


class ObjectCache:
    """The machine-wide cache of verified objects, in the store layout under ``root``.

    Cached objects are read-only, and a placed file is usually a hardlink to its entry: the
    same inode. Root ignores the mode, and so may an owner after a ``chmod``, so an entry
    is trusted without reading it only while it is exactly as modelbox last left it: its
    ``stat`` (size, mtime, ctime, inode), recorded in the hash cache ``hashes`` once this
    transfer's own links are made (:meth:`settle`; a link moves the ctime). Any other entry
    is hashed again before use, and a bad one evicted and fetched again. An in-place edit
    moves the ctime even when the mtime is put back, so an edited download never reaches
    another registry.
    """

    def __init__(self, root: Path, hashes: HashCache | None = None) -> None:
        self.root = root
        self.hashes = hashes if hashes is not None else HashCache(root.parent / "hashes.sqlite")
        self._swept: set[Path] = set()
        self._lock = threading.Lock()
        self._good: dict[str, os.stat_result] = {}
        """Entries known good in this transfer, with their ``stat`` when they were."""
        self._paths: dict[str, Path] = {}

    def path(self, digest: str) -> Path:
        path = self._paths.get(digest)
        if path is None:
            path = self._paths[digest] = self.root / relative_key(digest)
        return path

    def known(self, digest: str, size: int) -> bool | None:
        """Whether the entry of ``digest`` can be used without reading it: True if it is
        recorded (by :meth:`settle`) exactly as it is now; False if there is none (an entry
        of the wrong size is deleted); None if it must be hashed first (:meth:`holds`).
        """
        return self.known_all([(digest, size)])[0]

    def known_all(self, wanted: Sequence[tuple[str, int]]) -> list[bool | None]:
        """:meth:`known` of each ``(digest, size)``: one ``stat`` each, one query in all."""
        found: list[bool | None] = [False] * len(wanted)
        present: list[tuple[int, Path, os.stat_result]] = []
        with local_errors(str(self.root)):
            for index, (digest, size) in enumerate(wanted):
                path = self.path(digest)
                try:
                    now = os.lstat(path)
                except FileNotFoundError:
                    continue
                if now.st_size != size or not stat.S_ISREG(now.st_mode):
                    _evict(path)  # a symlink, a FIFO, a folder: never read, never placed
                    continue
                present.append((index, path, now))
        recorded = self.hashes.lookup_many([(path, now) for _, path, now in present])
        for (index, _, now), record in zip(present, recorded, strict=True):
            if record == wanted[index][0]:
                found[index] = True
                self._good[record] = now
            else:
                found[index] = None
        return found

    def holds(self, digest: str, size: int, *, verify: bool) -> bool:
        """Whether a good copy is cached: right size, and either known as it is now (see
        :meth:`known`; not with ``verify``) or hashing right.

        A bad copy is deleted: a bit flip, an edit through a hardlink... is never placed,
        the files linked to it keep their inode, and the cache gets a fresh copy.
        """
        if not verify:
            known = self.known(digest, size)
            if known is not None:
                return known
        path = self.path(digest)
        with local_errors(str(self.root)):
            try:
                before = os.lstat(path)
                if (
                    stat.S_ISREG(before.st_mode)
                    and before.st_size == size
                    and _hash(path) == digest
                    and not stat_changed(before, os.lstat(path))
                ):
                    self._good[digest] = before
                    return True
            except FileNotFoundError:  # evicted meanwhile, by another transfer
                return False
            _evict(path)
        return False

    def confirm(self, digest: str) -> None:
        """Note that the entry of ``digest``, just written from verified bytes (or found
        good by :meth:`holds`), is good as it is now, for :meth:`settle`.

        Raises:
            StoreError: the entry cannot be read.
        """
        if digest not in self._good:
            with local_errors(str(self.root)):
                self._good[digest] = os.lstat(self.path(digest))

    def settle(self) -> None:
        """Record every entry found or made good in this transfer as it is now, after the
        transfer's own links and renames moved its ctime, so the next transfer trusts it
        without reading it; then close the hash cache.

        An entry whose size, mtime or inode changed since it was known good is not
        recorded (it will be hashed again). Never raises: a missing record costs a hash.
        """
        good, self._good = self._good, {}
        records = []
        for digest, then in good.items():
            path = self.path(digest)
            try:
                now = os.lstat(path)
            except OSError:
                continue
            same = (now.st_size, now.st_mtime_ns, now.st_ino, now.st_dev) == (
                then.st_size, then.st_mtime_ns, then.st_ino, then.st_dev
            )
            if same and stat.S_ISREG(now.st_mode):
                records.append((path, now, digest))
        self.hashes.store_many(records)
        self.hashes.close()

    def add(self, digest: str, content: bytes | memoryview) -> Path:
        """Cache ``content``, already verified to hash to ``digest``; return its path.

        Raises:
            StoreError: the cache folder cannot be written.
        """
        target = self.path(digest)
        with local_errors(str(self.root)):
            self.sweep(target.parent)
            write_whole(target, content, readonly=True)
        return target

    def sweep(self, folder: Path) -> None:
        """Remove stale temp files from ``folder``, once per folder and transfer."""
        with self._lock:
            if folder in self._swept:
                return
            self._swept.add(folder)
        remove_stale_temps(folder)


def check_received(digest: str, size: int, received: int, actual: str, where: str) -> None:
    """Check what was downloaded for ``digest`` (``received`` bytes hashing to ``actual``).

    Raises:
        ObjectCorruptError: the bytes do not hash to ``digest``.
        InvalidValueError: they do, but ``size`` (from a pointer) is not their size.
    """
    if actual != digest:
        raise ObjectCorruptError(digest, where, actual)
    if received != size:
        raise InvalidValueError(
            f"object sha256:{digest} has {received} bytes, not {size} as its pointer "
            "says; the pointer is wrong"
        )


def _evict(path: Path) -> None:
    """Remove a cache entry that is not what its name says, whatever it is."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _hash(path: Path) -> str | None:
    """The SHA-256 of a cache entry; None if it is not a regular file (a FIFO or a link
    swapped in after it was checked must not hang or redirect the read)."""
    hasher = hashlib.sha256()
    buffer = bytearray(CHUNK_SIZE)
    view = memoryview(buffer)
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        descriptor = os.open(path, flags | getattr(os, "O_BINARY", 0))
    except OSError as error:
        if isinstance(error, FileNotFoundError):
            raise
        return None  # ELOOP: a symbolic link
    with open(descriptor, "rb", buffering=0) as stream:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            return None
        while count := stream.readinto(buffer):
            hasher.update(view[:count])
    return hasher.hexdigest()


class HashCache:
    """SHA-256 of files keyed by (absolute path, size, mtime_ns, ctime_ns, inode, device).

    ctime is in the key as in git's index: an in-place edit that puts the size and mtime
    back (``touch -r``) still moves the ctime, which no user call can set.

    Backed by an SQLite database in WAL mode, so several processes can read and write it at
    once. The cache is only an optimisation: when the database cannot be opened or written,
    it logs why and behaves as empty; it never makes hashing fail.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._connection: sqlite3.Connection | None = None
        self._broken = False

    @classmethod
    def default(cls) -> HashCache:
        """The cache at ``default_cache_dir() / "hashes.sqlite"``."""
        return cls(default_cache_dir() / "hashes.sqlite")

    def lookup(self, path: Path, stat: os.stat_result) -> str | None:
        """The cached digest of ``path`` if it was hashed with exactly this ``stat``."""
        row = self._fetch(
            "SELECT size, mtime_ns, ctime_ns, inode, device, sha256 FROM files WHERE path = ?",
            (str(path),),
        )
        if row is None or tuple(row[:5]) != _key(stat):
            return None
        return str(row[5])

    def lookup_many(self, files: Sequence[tuple[Path, os.stat_result]]) -> list[str | None]:
        """:meth:`lookup` of each ``(path, stat)``, in a few queries."""
        names = [str(path) for path, _ in files]
        rows: dict[str, tuple[object, ...]] = {}
        for start in range(0, len(names), _QUERY_SIZE):
            chunk = names[start : start + _QUERY_SIZE]
            marks = ", ".join("?" * len(chunk))
            for row in self._fetch_all(
                "SELECT path, size, mtime_ns, ctime_ns, inode, device, sha256 FROM files "
                f"WHERE path IN ({marks})",  # only placeholders are formatted in
                tuple(chunk),
            ):
                rows[str(row[0])] = row
        out: list[str | None] = []
        for name, (_, now) in zip(names, files, strict=True):
            known = rows.get(name)
            out.append(str(known[6]) if known is not None and known[1:6] == _key(now) else None)
        return out

    def store(self, path: Path, stat: os.stat_result, sha256: str) -> None:
        """Remember that ``path`` with this ``stat`` hashes to ``sha256``."""
        self.store_many([(path, stat, sha256)])

    def store_many(self, entries: Sequence[tuple[Path, os.stat_result, str]]) -> None:
        """:meth:`store` for many files at once, in one transaction (a transaction per
        file cost more than reading a 64 KiB file)."""
        self._write(
            "INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(str(path), *_key(stat), sha256) for path, stat, sha256 in entries],
        )

    def pack_lookup(self, members: str) -> str | None:
        """The digest of the pack whose members' digests hash to ``members``, if known.

        A pack's bytes are a function of its members' contents alone (see
        :mod:`modelbox.objects.packs`), so knowing them spares reading the files again.
        """
        row = self._fetch("SELECT sha256 FROM packs WHERE members = ?", (members,))
        return None if row is None else str(row[0])

    def pack_store(self, members: str, sha256: str) -> None:
        """Remember the digest of the pack of these members (see :meth:`pack_lookup`)."""
        self._write("INSERT OR REPLACE INTO packs VALUES (?, ?)", [(members, sha256)])

    def _fetch(self, sql: str, parameters: tuple[object, ...]) -> tuple[object, ...] | None:
        with self._lock:
            connection = self._connect()
            if connection is None:
                return None
            try:
                row: tuple[object, ...] | None = connection.execute(sql, parameters).fetchone()
            except sqlite3.Error as error:
                logger.debug("hash cache %s unreadable: %s", self.path, error)
                return None
        return row

    def _fetch_all(self, sql: str, parameters: tuple[object, ...]) -> list[tuple[object, ...]]:
        with self._lock:
            connection = self._connect()
            if connection is None:
                return []
            try:
                rows: list[tuple[object, ...]] = connection.execute(sql, parameters).fetchall()
            except sqlite3.Error as error:
                logger.debug("hash cache %s unreadable: %s", self.path, error)
                return []
        return rows

    def _write(self, sql: str, rows: Sequence[tuple[object, ...]]) -> None:
        if not rows:
            return
        with self._lock:
            connection = self._connect()
            if connection is None:
                return
            try:
                connection.execute("BEGIN")
                try:
                    connection.executemany(sql, rows)
                except BaseException:
                    connection.execute("ROLLBACK")
                    raise
                connection.execute("COMMIT")
            except sqlite3.Error as error:
                # Another process may hold the write lock past busy_timeout: losing these
                # entries only costs a re-hash later.
                logger.debug("hash cache %s not updated: %s", self.path, error)

    def close(self) -> None:
        """Close the database; the cache reopens it if used again."""
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

    def __enter__(self) -> HashCache:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _connect(self) -> sqlite3.Connection | None:
        if self._connection is not None or self._broken:
            return self._connection
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(
                self.path, timeout=5.0, isolation_level=None, check_same_thread=False
            )
        except (OSError, sqlite3.Error) as error:
            logger.warning("hash cache %s disabled: %s", self.path, error)
            self._broken = True
            return None
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            connection.execute(_SCHEMA)
            connection.execute(_PACKS_SCHEMA)
        except sqlite3.Error as error:
            connection.close()
            logger.warning("hash cache %s disabled: %s", self.path, error)
            self._broken = True
            return None
        self._connection = connection
        return connection


def _key(stat: os.stat_result) -> tuple[int, int, int, int, int]:
    # SQLite integers are signed 64-bit; inode numbers may use the full unsigned range.
    return (stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, _signed(stat.st_ino),
            _signed(stat.st_dev))


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= (1 << 63) else value
