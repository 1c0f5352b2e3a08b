"""Where modelbox caches things on this machine: verified objects, and the hashes of files."""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from modelbox.errors import InvalidValueError, ObjectCorruptError
from modelbox.objects._errors import local_errors
from modelbox.objects._files import remove_stale_temps, write_whole
from modelbox.objects._layout import relative_key
from modelbox.objects.hashing import CHUNK_SIZE

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

    Cached objects are read-only, so a file hardlinked from here cannot be edited in place
    by accident (except by root).
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self._swept: set[Path] = set()
        self._lock = threading.Lock()

    def path(self, digest: str) -> Path:
        return self.root / relative_key(digest)

    def holds(self, digest: str, size: int, *, verify: bool) -> bool:
        """Whether a good copy is cached: right size, and right hash when ``verify``.

        A bad copy is deleted.
        """
        path = self.path(digest)
        with local_errors(str(self.root)):
            try:
                if path.stat().st_size != size:
                    path.unlink()
                    return False
            except FileNotFoundError:
                return False
            if verify and _hash(path) != digest:
                path.unlink()
                return False
        return True

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


def _hash(path: Path) -> str:
    hasher = hashlib.sha256()
    buffer = bytearray(CHUNK_SIZE)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as stream:
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
