"""What the store needs from a place that holds objects: a local folder or an fsspec URL."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from modelbox.objects.hashing import FileDigest

if TYPE_CHECKING:
    from modelbox.objects._progress import Progress
    from modelbox.objects.cache import HashCache, ObjectCache
    from modelbox.objects.packs import Packed, PackJob, Wanted


class Reader(Protocol):
    def read(self, size: int, /) -> bytes: ...

    def close(self) -> None: ...


class Bulk(Protocol):
    """Transfers of many objects at once, for a backend that does them better than one
    object per thread (S3: coroutines on s3fs's event loop).

    Methods raise the dependency's own errors, like :class:`Backend`'s, and modelbox's
    errors about objects and files.
    """

    def upload(
        self, items: Sequence[tuple[Path, FileDigest]], progress: Progress, jobs: int
    ) -> None:
        """Store each file under its digest's key, ``jobs`` files at a time.

        Each file is verified to hash to its digest as it is read; nothing appears under a
        key unless the whole, verified content does.
        """
        ...

    def download(
        self,
        items: Sequence[tuple[str, int]],
        cache: ObjectCache,
        progress: Progress,
        jobs: int,
        placed: Callable[[str], None],
    ) -> None:
        """Download each object ``(digest, size)`` into ``cache``, ``jobs`` at a time.

        Each object is verified as it streams and enters the cache only whole and right;
        then ``placed(digest)`` is called (from a worker thread).
        """
        ...

    def upload_packs(
        self,
        jobs_: Sequence[PackJob],
        present: set[str],
        hashes: HashCache | None,
        progress: Progress,
        jobs: int,
    ) -> list[Packed]:
        """Build and store each pack the store lacks, ``jobs`` at a time (``present``: the
        digests it is known to hold); return what each job stored, in order."""
        ...

    def download_packs(
        self,
        groups: Sequence[Wanted],
        cache: ObjectCache,
        progress: Progress,
        jobs: int,
        placed: Callable[[str], None],
    ) -> None:
        """Fetch the wanted span of each pack, one request each, ``jobs`` at a time; cache
        each wanted member once its digest checks, then call ``placed(digest)``."""
        ...


class Backend(Protocol):
    """Keys are relative to the store's root and use ``/``.

    Methods raise the dependency's own errors; callers wrap them in :meth:`errors`. A
    missing key raises ``FileNotFoundError``.
    """

    url: str
    bulk: Bulk | None
    """Bulk transfers, if this backend has them; else objects move one per thread."""
    read_size: int
    """How many bytes to ask for per read of a stream from :meth:`open_read`."""

    def location(self, key: str) -> str:
        """The full, human-readable location of ``key`` (a path or a URL)."""
        ...

    def errors(self) -> AbstractContextManager[None]:
        """The context manager translating this backend's errors into modelbox.errors."""
        ...

    def existing(self, keys: Iterable[str]) -> set[str]:
        """Which of ``keys`` exist, asked in as few requests as is sensible."""
        ...

    def list_keys(self, prefix: str) -> Iterator[str]:
        """Every key under ``prefix``."""
        ...

    def list_ages(self, prefix: str) -> Iterator[tuple[str, float]]:
        """Every key under ``prefix`` with when it was last written (seconds since epoch)."""
        ...

    def upload(
        self, source: Path, expected: FileDigest, key: str, advance: Callable[[int], None]
    ) -> None:
        """Store ``source`` under ``key``, verified to hash to ``expected`` as it is read.

        ``advance`` is called with each chunk's size. Nothing appears under ``key`` unless
        the whole, verified content does.
        """
        ...

    def buffer(self, size: int) -> AbstractContextManager[None]:
        """Hold ``size`` bytes of the store's memory budget while a chunk is in memory."""
        ...

    def write_bytes(self, key: str, data: bytes | bytearray) -> None:
        """Store ``data`` under ``key`` at once."""
        ...

    def read_bytes(self, key: str) -> bytes:
        """The whole content of a small object."""
        ...

    def open_read(self, key: str, size: int | None = None) -> Reader:
        """A stream of the content of ``key`` (``size``, when known, saves a lookup)."""
        ...

    def delete(self, keys: Iterable[str]) -> None:
        """Delete ``keys``; those already gone are ignored."""
        ...
