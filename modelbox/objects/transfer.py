"""Moving objects between files, the store and the local object cache, several at a time.

A backend with a :class:`~modelbox.objects._backend.Bulk` (S3) moves many objects as
coroutines on its own event loop; any other backend (a local folder, other fsspec stores)
moves one object per worker thread, here.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from pathlib import Path
from typing import BinaryIO, TypeVar

from modelbox.errors import InvalidValueError, ObjectMissingError, StoreError
from modelbox.objects._backend import Backend, Reader
from modelbox.objects._errors import local_errors, names_missing_bucket
from modelbox.objects._files import atomic_write, place
from modelbox.objects._layout import relative_key
from modelbox.objects._progress import Progress
from modelbox.objects.cache import ObjectCache, check_received
from modelbox.objects.hashing import FileDigest

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


def upload_all(
    backend: Backend, transfer: Transfer, items: Sequence[tuple[Path, FileDigest]], jobs: int
) -> None:
    """Store each file under its digest's key, ``jobs`` files at a time.

    Raises:
        ArtifactError: a file is unreadable or changed since it was hashed.
        StoreError: the store failed.
    """
    if jobs < 1:
        raise InvalidValueError(f"jobs must be at least 1, not {jobs}")
    if backend.bulk is not None and items:
        with backend.errors():
            backend.bulk.upload(items, transfer.progress, jobs)
        return
    run_parallel(transfer, lambda item: upload(backend, transfer, item), items, jobs)


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


def download_all(
    backend: Backend,
    cache: ObjectCache,
    transfer: Transfer,
    items: Sequence[tuple[str, int, Sequence[Path]]],
    *,
    jobs: int,
    verify: bool,
) -> None:
    """Make sure each object ``(digest, size, destinations)`` is cached, then place it.

    Objects already cached (and, with ``verify``, hashing right) are placed first; the
    others are downloaded, verified while they stream, and placed as each one lands.

    Raises:
        ObjectMissingError, ObjectCorruptError, InvalidValueError, StoreError: see
            :func:`fill`.
        ArtifactError: a destination cannot be written.
    """
    if jobs < 1:
        raise InvalidValueError(f"jobs must be at least 1, not {jobs}")
    destinations = {digest: dests for digest, _, dests in items}

    def place_all(digest: str) -> None:
        source = cache.path(digest)
        for destination in destinations[digest]:
            cache.sweep(destination.parent)
            place(source, destination)
            transfer.progress.file_done()

    needed: list[tuple[str, int]] = []

    def use_cached(item: tuple[str, int, Sequence[Path]]) -> None:
        digest, size, _ = item
        if cache.holds(digest, size, verify=verify):
            transfer.advance(size)
            place_all(digest)
        else:
            needed.append((digest, size))

    # Without verify a cache check is one stat: threads would cost more than they save.
    run_parallel(transfer, use_cached, items, jobs if verify else 1)
    if backend.bulk is not None and needed:
        with backend.errors():
            backend.bulk.download(needed, cache, transfer.progress, jobs, place_all)
        return

    def fetch(item: tuple[str, int]) -> None:
        fill(backend, cache, transfer, *item)
        place_all(item[0])

    run_parallel(transfer, fetch, needed, jobs)


def fill(backend: Backend, cache: ObjectCache, transfer: Transfer, digest: str, size: int) -> None:
    """Download ``digest`` into the cache, verified while streaming.

    Raises:
        ObjectMissingError: the store has no such object.
        ObjectCorruptError: the object's bytes do not hash to ``digest``; nothing is cached.
        InvalidValueError: the object is right but ``size`` is not its size.
        StoreError: the store or the cache folder failed.
    """
    key = relative_key(digest)
    target = cache.path(digest)
    cache.sweep(target.parent)
    with (
        local_errors(str(cache.root)),
        atomic_write(target, readonly=True, durable=False) as stream,
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
        check_received(digest, size, received, actual, backend.location(key))


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
