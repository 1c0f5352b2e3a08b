"""The checksum-addressed object store: open one by URL, put and get files by SHA-256."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from urllib.parse import unquote, urlsplit

from modelbox.errors import (
    InvalidValueError,
    ObjectCorruptError,
    ObjectMissingError,
    ObjectTooLargeError,
)
from modelbox.limits import CAPS
from modelbox.objects import transfer
from modelbox.objects._backend import Backend
from modelbox.objects._errors import names_missing_bucket
from modelbox.objects._layout import digest_of, is_note, note_key, relative_key
from modelbox.objects._local import LocalBackend
from modelbox.objects._progress import Progress, wanted
from modelbox.objects.cache import HashCache, ObjectCache, default_cache_dir
from modelbox.objects.hashing import FileDigest, check_digest
from modelbox.objects.packs import Packed, PackJob, Slot
from modelbox.objects.staging import Staging


def open_store(url: str, *, cache_dir: Path | None = None) -> ObjectStore:
    """Open the object store at ``url``: a local path, a ``file://`` URL or any fsspec URL.

    Nothing is contacted yet. Credentials and options come from the environment only (see
    docs/store.md). ``cache_dir`` overrides :func:`default_cache_dir` for the local object
    cache.

    Raises:
        InvalidValueError: the URL is empty, or its protocol is unknown or not installed.
    """
    if not url:
        raise InvalidValueError("the store URL is empty; give a folder or a URL such as s3://b/p")
    backend: Backend
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme in ("", "file", "local"):
        backend = LocalBackend(_local_root(url))
    else:
        from modelbox.objects._remote import open_remote

        backend = open_remote(url)
    return ObjectStore(backend, cache_dir=cache_dir)


def _local_root(url: str) -> Path:
    if "://" in url:
        parts = urlsplit(url)
        if parts.netloc not in ("", "localhost"):
            raise InvalidValueError(f"{url}: a file:// URL cannot name another host")
        url = unquote(parts.path)
    return Path(os.path.abspath(Path(url).expanduser()))


class ObjectStore:
    """Objects addressed by SHA-256, under ``<root>/sha256/<2 hex>/<62 hex>`` (format 1)."""

    def __init__(self, backend: Backend, *, cache_dir: Path | None = None) -> None:
        self._backend = backend
        self._cache_dir = cache_dir
        self.url: str = backend.url

    def __repr__(self) -> str:
        return f"ObjectStore({self.url!r})"

    def key(self, digest: str) -> str:
        """Where the object ``digest`` lives: ``<root>/sha256/<first 2 hex>/<other 62>``.

        Raises:
            InvalidValueError: ``digest`` is not 64 lowercase hex digits.
        """
        return self._backend.location(relative_key(digest))

    def missing(self, digests: Iterable[str]) -> set[str]:
        """The digests among ``digests`` that the store does not hold.

        Asks about each object when there are few, and lists the store once when there are
        many.

        Raises:
            InvalidValueError: a digest is malformed.
            StoreError: the store cannot be listed (see the subclasses for why).
        """
        keys = {relative_key(digest): digest for digest in digests}
        with self._backend.errors():
            present = self._backend.existing(keys)
        return {digest for key, digest in keys.items() if key not in present}

    def put_files(
        self,
        items: Sequence[tuple[Path, FileDigest]],
        *,
        jobs: int = 8,
        progress: bool | None = None,
    ) -> int:
        """Upload the files the store does not hold yet, ``jobs`` at a time.

        Each file is hashed again while it is sent; an object appears under its key only
        whole and verified. Returns how many objects were uploaded.

        Raises:
            ArtifactError: a file is unreadable or changed since it was hashed.
            StoreError: the store failed (StoreAccessError, StoreUnreachableError...).
        """
        unique = {digest.sha256: (Path(path), digest) for path, digest in reversed(items)}
        absent = self.missing(unique)
        todo = [unique[digest] for digest in sorted(absent)]
        total = sum(digest.size for _, digest in todo)
        with Progress("upload", total, len(todo), enabled=wanted(progress)) as bar:
            transfer.upload_all(self._backend, transfer.Transfer(bar), todo, jobs)
        return len(todo)

    def put_hashing(self, path: Path, cache: HashCache | None = None) -> FileDigest | None:
        """Hash a file and store it in the same read, for a file the store most likely
        lacks (a checkpoint a trainer just wrote): one read of it instead of two. None
        where the store cannot (a remote one: a key is named before its upload starts);
        hash first, then :meth:`put_files`.

        Raises:
            ArtifactError: the file is unreadable or changed while it was read.
            StoreError: the store failed.
        """
        if not isinstance(self._backend, LocalBackend):
            return None
        with self._backend.errors():
            return self._backend.put_hashing(path, cache)

    def put_packs(
        self,
        jobs_: Sequence[PackJob],
        *,
        hashes: HashCache | None = None,
        jobs: int = 8,
        progress: bool | None = None,
    ) -> list[Packed]:
        """Store the packs the store does not hold yet, ``jobs`` at a time (see
        :mod:`modelbox.objects.packs`); return each job's pack, in order.

        A pack whose digest the hash cache ``hashes`` knows, and which the store holds,
        costs no read; any other is read into memory (each file checked against its known
        digest, or hashed and remembered), then sent unless the store has it.

        Raises:
            ArtifactError: a file is unreadable or changed since it was hashed.
            StoreError: the store failed (StoreAccessError, StoreUnreachableError...).
        """
        recalled = {p.sha256 for p in (job.recalled() for job in jobs_) if p is not None}
        present = recalled - self.missing(recalled) if recalled else set()
        total = sum(job.size for job in jobs_)
        files = sum(len(job.paths) for job in jobs_)
        with Progress("upload", total, files, enabled=wanted(progress)) as bar:
            return transfer.upload_packs(
                self._backend, transfer.Transfer(bar), jobs_, present, hashes, jobs
            )

    def put_bytes(self, data: bytes) -> str:
        """Store a small object held in memory (a directory manifest...); return its digest.

        Raises:
            StoreError: the store failed.
        """
        digest = hashlib.sha256(data).hexdigest()
        key = relative_key(digest)
        with self._backend.errors():
            if not self._backend.existing([key]):
                self._backend.write_bytes(key, data)
        return digest

    def get_files(
        self,
        items: Sequence[tuple[str, int, Path]],
        *,
        jobs: int = 8,
        progress: bool | None = None,
        verify: bool = False,
        slots: Mapping[str, Slot] | None = None,
        stage: Staging | None = None,
    ) -> None:
        """Place each object ``(digest, size, dest)`` at ``dest``, through the local cache.

        An object missing from the cache is downloaded into it, its SHA-256 checked while it
        streams; one with a place in ``slots`` is taken out of that pack, with the pack's
        other wanted members, in one request. A cached copy is trusted without reading it
        only if it is exactly as modelbox last left it (size, mtime, ctime, inode), and
        never with ``verify``; any other is hashed first, and a bad copy fetched again.
        ``dest`` is then a hardlink to the cached copy where possible (read-only, like the
        cache), else a reflink or a copy; it appears only whole, and its parent folders
        are created. With a ``stage``, every file is placed at ``stage.path(dest)``
        instead, for the caller to publish all together.

        Raises:
            InvalidValueError: a digest is malformed.
            ObjectMissingError: the store has no such object.
            ObjectCorruptError: the stored object does not match its digest; nothing was
                cached or placed for it.
            ArtifactError: a destination cannot be written.
            StoreError: the store or the local cache failed.
        """
        grouped: dict[str, tuple[int, list[Path]]] = {}
        for digest, size, dest in items:
            check_digest(digest)
            grouped.setdefault(digest, (size, []))[1].append(Path(dest))
        todo = [(digest, size, dests) for digest, (size, dests) in grouped.items()]
        if stage is not None:
            todo = [(digest, size, [stage.path(d) for d in dests]) for digest, size, dests in todo]
        cache = ObjectCache(self._objects_dir())
        total = sum(size for _, size, _ in todo)
        try:
            with Progress("download", total, len(items), enabled=wanted(progress)) as bar:
                transfer.download_all(
                    self._backend, cache, transfer.Transfer(bar), todo, jobs=jobs,
                    verify=verify, slots=slots,
                )
        finally:
            # Record the entries as they are once this transfer's links are all made: a
            # staged file is renamed (and its staging folder deleted) later, and both move
            # the entry's ctime.
            if stage is None:
                cache.settle()
            else:
                stage.on_close(cache.settle)

    def open_bytes(
        self, digest: str, *, limit: int = CAPS["directory"], what: str = "directory listing"
    ) -> bytes:
        """The content of a small object (a ``what``: so far always a directory listing),
        verified.

        At most ``limit + 1`` bytes are read: a pointer may name any object, and a large
        one must be refused before it fills memory (docs/store.md).

        Raises:
            InvalidValueError: ``digest`` is malformed.
            ObjectMissingError: the store has no such object.
            ObjectTooLargeError: it is larger than ``limit`` bytes.
            ObjectCorruptError: its content does not hash to ``digest``.
            StoreError: the store failed.
        """
        key = relative_key(digest)
        chunks: list[bytes] = []
        size = 0
        with self._backend.errors():
            try:
                reader = self._backend.open_read(key)
            except FileNotFoundError as error:
                if names_missing_bucket(error):
                    raise
                raise ObjectMissingError(digest, self.url) from error
            try:
                while size <= limit:
                    chunk = reader.read(min(self._backend.read_size, limit + 1 - size))
                    if not chunk:
                        break
                    chunks.append(chunk)
                    size += len(chunk)
            finally:
                reader.close()
        if size > limit:
            raise ObjectTooLargeError(digest, self.key(digest), what, limit)
        data = b"".join(chunks)
        actual = hashlib.sha256(data).hexdigest()
        if actual != digest:
            raise ObjectCorruptError(digest, self.key(digest), actual)
        return data

    def iter_digests(self) -> Iterator[str]:
        """Every digest the store holds, in no particular order.

        Raises:
            StoreError: the store cannot be listed.
        """
        with self._backend.errors():
            for key in self._backend.list_keys("sha256"):
                digest = digest_of(key)
                if digest is not None:
                    yield digest

    def iter_ages(self) -> Iterator[tuple[str, float]]:
        """Every digest the store holds with when it was written (seconds since the epoch).

        Raises:
            StoreError: the store cannot be listed.
        """
        with self._backend.errors():
            for key, modified in self._backend.list_ages("sha256"):
                digest = digest_of(key)
                if digest is not None:
                    yield digest, modified

    def delete(self, digests: Iterable[str]) -> None:
        """Delete objects; digests the store does not hold are ignored.

        Raises:
            InvalidValueError: a digest is malformed.
            StoreError: the store failed.
        """
        keys = [relative_key(digest) for digest in digests]
        with self._backend.errors():
            self._backend.delete(keys)

    # -- notes: small documents gc reads beside the objects ------------------------------
    def put_note(self, folder: str, name: str, data: bytes) -> None:
        """Write (or rewrite, which refreshes its time) the note ``folder/name``.

        Raises:
            InvalidValueError: not a note's name.
            StoreError: the store failed.
        """
        key = note_key(folder, name)
        with self._backend.errors():
            self._backend.write_bytes(key, data)

    def notes(self, folder: str) -> dict[str, float]:
        """Every note in ``folder`` -> when it was last written (seconds since the epoch).

        Raises:
            StoreError: the store cannot be listed.
        """
        note_key(folder, "x")
        out = {}
        with self._backend.errors():
            for key, modified in self._backend.list_ages(folder):
                name = key[len(folder) + 1 :]
                if is_note(name):  # not a local writer's temp file (.mbtmp-...)
                    out[name] = modified
        return out

    def read_note(self, folder: str, name: str) -> bytes | None:
        """The note ``folder/name``, or None if it is gone.

        Raises:
            StoreError: the store failed.
        """
        key = note_key(folder, name)
        with self._backend.errors():
            try:
                return self._backend.read_bytes(key)
            except FileNotFoundError as error:
                if names_missing_bucket(error):
                    raise
                return None

    def delete_notes(self, folder: str, names: Iterable[str]) -> None:
        """Delete notes; those already gone are ignored.

        Raises:
            StoreError: the store failed.
        """
        keys = [note_key(folder, name) for name in names]
        with self._backend.errors():
            self._backend.delete(keys)

    def _objects_dir(self) -> Path:
        return (self._cache_dir or default_cache_dir()) / "objects"
