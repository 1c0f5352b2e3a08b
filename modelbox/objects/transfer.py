"""Moving objects between files, the store and the local object cache, several at a time."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from pathlib import Path
from typing import BinaryIO, TypeVar

from modelbox.errors import InvalidValueError, ObjectCorruptError, ObjectMissingError, StoreError
from modelbox.objects._backend import Backend, Reader
from modelbox.objects._errors import local_errors, names_missing_bucket
from modelbox.objects._files import atomic_write, place, remove_stale_temps
from modelbox.objects._layout import relative_key
from modelbox.objects._progress import Progress
from modelbox.objects.hashing import CHUNK_SIZE, FileDigest

T = TypeVar("T")


class TransferCancelled(Exception):  # noqa: N818 -- a signal between threads, not an error
    """Raised inside a worker once another worker failed or the user interrupted."""


class Transfer:
    """What the workers of one transfer share: its progress bar and its stop signal."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.stop = threading.Event()

    def advance(self, count: int) -> None:
        """Count ``count`` bytes; called between chunks, so also where workers stop early.

        Raises:
            TransferCancelled: the transfer is being abandoned.
        """
        if self.stop.is_set():
            raise TransferCancelled
        self.progress.advance(count)


def run_parallel(
    transfer: Transfer, function: Callable[[T], None], tasks: Sequence[T], jobs: int
) -> None:
    """Call ``function`` on every task, ``jobs`` at a time; re-raise the first error.

    After an error (or Ctrl-C) the other workers stop at their next chunk and clean up
    after themselves before this returns.
    """
    if jobs < 1:
        raise InvalidValueError(f"jobs must be at least 1, not {jobs}")
    if jobs == 1 or len(tasks) <= 1:
        for task in tasks:
            function(task)
        return
    with ThreadPoolExecutor(max_workers=min(jobs, len(tasks))) as pool:
        futures = [pool.submit(function, task) for task in tasks]
        try:
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            for future in done:
                if not isinstance(future.exception(), TransferCancelled):
                    future.result()
        finally:
            transfer.stop.set()
            for future in futures:
                future.cancel()


def upload(backend: Backend, transfer: Transfer, item: tuple[Path, FileDigest]) -> None:
    """Store one file under its digest's key.

    Raises:
        ArtifactError: the file is unreadable or changed since it was hashed.
        StoreError: the store failed.
    """
    path, digest = item
    with backend.errors():
        backend.upload(path, digest, relative_key(digest.sha256), transfer.advance)
    transfer.progress.file_done()


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

    def fill(self, backend: Backend, transfer: Transfer, digest: str, size: int) -> None:
        """Download ``digest`` into the cache, verified while streaming.

        Raises:
            ObjectMissingError: the store has no such object.
            ObjectCorruptError: the object's bytes do not hash to ``digest``; nothing is
                cached.
            InvalidValueError: the object is right but ``size`` is not its size.
            StoreError: the store or the cache folder failed.
        """
        key = relative_key(digest)
        target = self.path(digest)
        self.sweep(target.parent)
        with (
            local_errors(str(self.root)),
            atomic_write(target, readonly=True, durable_name=False) as stream,
        ):
            try:
                received, actual = _stream(backend, transfer, key, digest, size, stream)
            except StoreError:
                # The size hint skips a HEAD request, but a missing or truncated object
                # then fails as a bare range error: ask again the plain way for the
                # precise error (ObjectMissingError, ObjectCorruptError...).
                stream.seek(0)
                stream.truncate()
                received, actual = _stream(backend, transfer, key, digest, None, stream)
            if actual != digest:
                raise ObjectCorruptError(digest, backend.location(key), actual)
            if received != size:
                raise InvalidValueError(
                    f"object sha256:{digest} has {received} bytes, not {size} as its pointer "
                    "says; the pointer is wrong"
                )

    def sweep(self, folder: Path) -> None:
        """Remove stale temp files from ``folder``, once per folder and transfer."""
        with self._lock:
            if folder in self._swept:
                return
            self._swept.add(folder)
        remove_stale_temps(folder)


def download(
    backend: Backend,
    cache: ObjectCache,
    transfer: Transfer,
    item: tuple[str, int, Sequence[Path]],
    *,
    verify: bool,
) -> None:
    """Make sure one object is cached, then place it at each of its destinations.

    Raises:
        ObjectMissingError, ObjectCorruptError, StoreError: see :meth:`ObjectCache.fill`.
        ArtifactError: a destination cannot be written.
    """
    digest, size, destinations = item
    if cache.holds(digest, size, verify=verify):
        transfer.advance(size)
    else:
        cache.fill(backend, transfer, digest, size)
    source = cache.path(digest)
    for destination in destinations:
        cache.sweep(destination.parent)
        place(source, destination)
        transfer.progress.file_done()


def _stream(
    backend: Backend, transfer: Transfer, key: str, digest: str, size: int | None,
    stream: BinaryIO,
) -> tuple[int, str]:
    """Copy the object into ``stream``, hashing as it goes: ``(bytes, sha256)``."""
    hasher = hashlib.sha256()
    received = 0
    reader = _open(backend, key, digest, size)
    try:
        while True:
            with backend.buffer(backend.read_size):
                with backend.errors():
                    chunk = reader.read(backend.read_size)
                hasher.update(chunk)
                stream.write(chunk)
                count = len(chunk)
                del chunk  # free it before the next read
            if not count:
                break
            received += count
            transfer.advance(count)
    finally:
        with backend.errors():
            reader.close()
    return received, hasher.hexdigest()


def _open(backend: Backend, key: str, digest: str, size: int | None) -> Reader:
    with backend.errors():
        try:
            return backend.open_read(key, size)
        except FileNotFoundError as error:
            if names_missing_bucket(error):
                raise  # errors() says the bucket is missing, not the object
            raise ObjectMissingError(digest, backend.url) from error


def _hash(path: Path) -> str:
    hasher = hashlib.sha256()
    buffer = bytearray(CHUNK_SIZE)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as stream:
        while count := stream.readinto(buffer):
            hasher.update(view[:count])
    return hasher.hexdigest()
