"""A store in a local folder, with plain file operations (no fsspec)."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, closing
from pathlib import Path
from typing import TYPE_CHECKING

from modelbox.objects._backend import Bulk, Reader
from modelbox.objects._errors import local_errors
from modelbox.objects._files import AtomicFile, DirectWriter, atomic_write, remove_stale_temps
from modelbox.objects._layout import PREFIX, relative_key
from modelbox.objects.hashing import CHUNK_SIZE, FileDigest, copy_hashing, read_verified

if TYPE_CHECKING:
    from modelbox.objects.cache import HashCache


class LocalBackend:
    """Objects are read-only files; each is written to a temp file beside its final path,
    fsynced and renamed, so a reader never sees a partial object."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.url = str(root)
        self.read_size = CHUNK_SIZE
        self.bulk: Bulk | None = None  # plain threads: a local copy has no request overhead
        self._cleaned: set[Path] = set()
        self._lock = threading.Lock()

    def location(self, key: str) -> str:
        return str(self.root / key)

    def errors(self) -> AbstractContextManager[None]:
        return local_errors(self.url)

    def existing(self, keys: Iterable[str]) -> set[str]:
        # A stat is cheaper than listing a folder, so there is no bulk path here.
        return {key for key in keys if (self.root / key).is_file()}

    def list_keys(self, prefix: str) -> Iterator[str]:
        top = self.root / prefix
        for folder, _, files in os.walk(top):
            relative = Path(folder).relative_to(self.root).as_posix()
            for name in files:
                yield f"{relative}/{name}"

    def list_ages(self, prefix: str) -> Iterator[tuple[str, float]]:
        for key in self.list_keys(prefix):
            with contextlib.suppress(FileNotFoundError):  # deleted while we listed
                yield key, (self.root / key).stat().st_mtime

    def upload(
        self, source: Path, expected: FileDigest, key: str, advance: Callable[[int], None]
    ) -> None:
        final = self.root / key
        self._clean(final.parent)
        with (
            closing(read_verified(source, expected, CHUNK_SIZE)) as chunks,
            atomic_write(final, readonly=True) as stream,
        ):
            for chunk in chunks:
                stream.write(chunk)
                advance(len(chunk))

    def put_hashing(self, source: Path, cache: HashCache | None) -> FileDigest:
        """Copy ``source`` into the store while hashing it (one read, where hashing and then
        :meth:`upload` take two); the object appears under its digest's key only whole and
        durable. For a file the store most likely lacks: one it holds is copied for nothing.

        Raises:
            ArtifactError: ``source`` is unreadable or changed while it was read.
            OSError: the store cannot be written.
        """
        incoming = self.root / PREFIX / "incoming"  # the temp file's name, beside the keys
        self._clean(incoming.parent)
        file = AtomicFile(incoming, readonly=True)
        try:
            # Written past the page cache: nothing reads a new object again soon.
            digest = copy_hashing(source, DirectWriter(file.stream.fileno()), cache=cache)
            final = self.root / relative_key(digest.sha256)
            if not final.is_file():
                self._clean(final.parent)
                final.parent.mkdir(parents=True, exist_ok=True)
                file.publish(final)
        finally:
            file.discard()
        return digest

    def buffer(self, size: int) -> AbstractContextManager[None]:
        return contextlib.nullcontext()

    def write_bytes(self, key: str, data: bytes | bytearray) -> None:
        final = self.root / key
        self._clean(final.parent)
        with atomic_write(final, readonly=True) as stream:
            stream.write(data)

    def read_bytes(self, key: str) -> bytes:
        return (self.root / key).read_bytes()

    def open_read(self, key: str, size: int | None = None) -> Reader:
        return open(self.root / key, "rb")

    def delete(self, keys: Iterable[str]) -> None:
        for key in keys:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.root / key)

    def _clean(self, folder: Path) -> None:
        with self._lock:
            if folder in self._cleaned:
                return
            self._cleaned.add(folder)
        remove_stale_temps(folder)
