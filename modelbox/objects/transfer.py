"""Moving objects between files, the store and the local object cache, several at a time.

A backend with a :class:`~modelbox.objects._backend.Bulk` (S3) moves many objects as
coroutines on its own event loop; any other backend (a local folder, other fsspec stores)
moves one object per worker thread, here.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from pathlib import Path
from typing import TypeVar

from modelbox.errors import InvalidValueError, ObjectMissingError, StoreError
from modelbox.objects import packs
from modelbox.objects._backend import Backend, Reader
from modelbox.objects._errors import local_errors, names_missing_bucket
from modelbox.objects._files import atomic_write, place
from modelbox.objects._layout import relative_key
from modelbox.objects._progress import Progress
from modelbox.objects.cache import HashCache, ObjectCache, check_received
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
        except BaseException:
            # Stop the others (the pool waits for them), but only on failure: the same
            # transfer may go on with another batch (packs, then plain objects).
            transfer.stop.set()
            for future in futures:
                future.cancel()
            raise


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


def upload_packs(
    backend: Backend,
    transfer: Transfer,
    jobs_: Sequence[packs.PackJob],
    present: set[str],
    hashes: HashCache | None,
    jobs: int,
) -> list[packs.Packed]:
    """Store each pack the store lacks (``present``: digests it is known to hold), ``jobs``
    at a time; return what each job stored, in order.

    Raises:
        ArtifactError: a file is unreadable or changed since it was hashed.
        StoreError: the store failed.
    """
    if jobs < 1:
        raise InvalidValueError(f"jobs must be at least 1, not {jobs}")
    if backend.bulk is not None and jobs_:
        with backend.errors():
            return backend.bulk.upload_packs(jobs_, present, hashes, transfer.progress, jobs)
    results: list[packs.Packed | None] = [None] * len(jobs_)

    def store(index: int) -> None:
        job = jobs_[index]
        results[index] = packs.settled(job, present)
        if results[index] is None:
            with backend.buffer(job.size):
                packed, data = packs.build(job, hashes)
                key = relative_key(packed.sha256)
                with backend.errors():
                    if packed.sha256 not in present and not backend.existing([key]):
                        backend.write_bytes(key, data.getvalue())
                del data
            results[index] = packed
        transfer.advance(job.size)
        transfer.progress.file_done(len(job.paths))

    run_parallel(transfer, store, range(len(jobs_)), jobs)
    return [packed for packed in results if packed is not None]


def download_all(
    backend: Backend,
    cache: ObjectCache,
    transfer: Transfer,
    items: Sequence[tuple[str, int, Sequence[Path]]],
    *,
    jobs: int,
    verify: bool,
    slots: Mapping[str, packs.Slot] | None = None,
) -> None:
    """Make sure each object ``(digest, size, destinations)`` is cached, then place it.

    Objects already cached (known as they are, or hashing right) are placed first; the
    others are downloaded, verified while they stream, and placed as each one lands. An
    object with a place in ``slots`` is taken out of its pack, fetched with the pack's
    other wanted members in one request.

    Raises:
        ObjectMissingError, ObjectCorruptError, InvalidValueError, StoreError: see
            :func:`fill`.
        ArtifactError: a destination cannot be written.
    """
    if jobs < 1:
        raise InvalidValueError(f"jobs must be at least 1, not {jobs}")
    destinations = {digest: dests for digest, _, dests in items}

    def place_all(digest: str) -> None:
        cache.confirm(digest)
        source = cache.path(digest)
        for destination in destinations[digest]:
            cache.sweep(destination.parent)
            place(source, destination)
            transfer.progress.file_done()

    needed: list[tuple[str, int]] = []
    unsure: list[tuple[str, int, Sequence[Path]]] = []
    # One stat each and one query: threads would cost more than they save.
    knowns = [None] * len(items) if verify else cache.known_all([i[:2] for i in items])
    for item, known in zip(items, knowns, strict=True):
        if known:
            transfer.advance(item[1])
            place_all(item[0])
        elif known is None:
            unsure.append(item)
        else:
            needed.append((item[0], item[1]))

    def use_cached(item: tuple[str, int, Sequence[Path]]) -> None:
        digest, size, _ = item
        if cache.holds(digest, size, verify=True):  # hashed: an entry not known as it is
            transfer.advance(size)
            place_all(digest)
        else:
            needed.append((digest, size))

    run_parallel(transfer, use_cached, unsure, jobs)
    if slots:
        in_packs = [item for item in needed if item[0] in slots]
        needed = [item for item in needed if item[0] not in slots]
        download_packs(backend, cache, transfer, packs.wanted(in_packs, slots), jobs, place_all)
    if backend.bulk is not None and needed:
        with backend.errors():
            backend.bulk.download(needed, cache, transfer.progress, jobs, place_all)
        return

    def fetch(item: tuple[str, int]) -> None:
        fill(backend, cache, transfer, *item)
        place_all(item[0])

    run_parallel(transfer, fetch, needed, jobs)


def download_packs(
    backend: Backend,
    cache: ObjectCache,
    transfer: Transfer,
    groups: Sequence[packs.Wanted],
    jobs: int,
    placed: Callable[[str], None],
) -> None:
    """Fetch the wanted part of each pack, ``jobs`` packs at a time, and cache each wanted
    member once its digest checks; then ``placed(digest)``.

    Raises:
        ObjectMissingError: the store has no such pack.
        ObjectCorruptError: a member's bytes do not hash to its digest, or the pack is
            shorter than its listing says and its bytes are not the pack's.
        InvalidValueError: the pack is right but the listing gives it another size.
        StoreError: the store or the cache folder failed.
    """
    if backend.bulk is not None and groups:
        with backend.errors():
            backend.bulk.download_packs(groups, cache, transfer.progress, jobs, placed)
        return

    def keep(digest: str, content: memoryview) -> None:
        cache.add(digest, content)
        placed(digest)

    def fetch(group: packs.Wanted) -> None:
        data = read_span(backend, transfer, group)
        packs.unpack(group, data, backend.location(relative_key(group.pack)), keep)

    run_parallel(transfer, fetch, groups, jobs)


def read_span(backend: Backend, transfer: Transfer, group: packs.Wanted) -> bytes:
    """The bytes ``[group.start, group.end)`` of the pack ``group.pack``.

    Raises:
        ObjectMissingError: the store has no such pack.
        ObjectCorruptError, InvalidValueError, StoreError: the pack is shorter than that
            (see :func:`diagnose`).
    """
    key = relative_key(group.pack)
    chunks: list[bytes] = []
    position = received = 0
    reader = _open(backend, key, group.pack, group.pack_size)
    try:
        while position < group.end:
            with backend.errors():
                chunk = reader.read(min(backend.read_size, group.end - position))
            if not chunk:
                break
            keep_from = max(group.start - position, 0)
            position += len(chunk)
            if keep_from < len(chunk):
                chunks.append(chunk[keep_from:])
                received += len(chunk) - keep_from
                transfer.advance(len(chunk) - keep_from)
    finally:
        with backend.errors():
            reader.close()
    if received != group.end - group.start:
        diagnose(backend, transfer, group.pack, group.pack_size)
    return b"".join(chunks)


def diagnose(backend: Backend, transfer: Transfer, digest: str, size: int) -> None:
    """Read the whole object ``digest`` to say precisely why it is not ``size`` bytes.

    Raises:
        ObjectCorruptError: its content does not hash to ``digest`` (truncated...).
        InvalidValueError: it does, but ``size`` is not its size (the listing is wrong).
        StoreError: neither: it changed while it was being read.
    """
    key = relative_key(digest)
    received, actual = _stream(backend, transfer, key, digest, None, lambda chunk: None)
    check_received(digest, size, received, actual, backend.location(key))
    raise StoreError(
        f"object sha256:{digest} changed in {backend.url} while it was downloaded; try again"
    )


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
            received, actual = _stream(backend, transfer, key, digest, size, stream.write)
        except StoreError:
            # The size hint skips a HEAD request, but a missing or truncated object
            # then fails as a bare range error: ask again the plain way for the
            # precise error (ObjectMissingError, ObjectCorruptError...).
            stream.seek(0)
            stream.truncate()
            received, actual = _stream(backend, transfer, key, digest, None, stream.write)
        check_received(digest, size, received, actual, backend.location(key))


def _stream(
    backend: Backend, transfer: Transfer, key: str, digest: str, size: int | None,
    write: Callable[[bytes], object],
) -> tuple[int, str]:
    """Pass the object's bytes to ``write``, hashing as it goes: ``(bytes, sha256)``."""
    hasher = hashlib.sha256()
    received = 0
    reader = _open(backend, key, digest, size)
    try:
        while True:
            with backend.buffer(backend.read_size):
                with backend.errors():
                    chunk = reader.read(backend.read_size)
                hasher.update(chunk)
                write(chunk)
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
