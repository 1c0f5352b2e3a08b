"""Directory artifacts: a folder stored as one listing object, its small files in packs.

The listing (:class:`~modelbox.manifests.DirectoryManifest`, an object in the store, named
by one pointer in Git) gives every file its path, SHA-256 and size. Files over 1 MiB are
objects of their own; smaller ones travel several to an object, in packs
(:mod:`modelbox.objects.packs`), so that a folder of 2,000 small files costs a few dozen
requests instead of 2,000. Each file is still checked against its own SHA-256 when it is
taken out of its pack, and the machine's object cache holds it by that digest.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from modelbox import pathcheck
from modelbox.errors import InvalidValueError
from modelbox.manifests import ENTRY_PATH_MAX, ENTRY_PATH_PATTERN, DirectoryManifest
from modelbox.objects import FileDigest, HashCache, ObjectStore
from modelbox.objects.packs import Layout, Packed, Slot, lay_out, measure

_ENTRY = re.compile(ENTRY_PATH_PATTERN)


@dataclass
class Folder:
    """A folder being added: its files, how they are stored, and its listing once known."""

    paths: list[Path]
    names: list[str]
    layout: Layout
    packed: list[Packed] | None
    """Each pack as stored; None until every pack's digest is known."""

    @classmethod
    def scan(cls, root: Path, paths: list[Path], cache: HashCache) -> Folder:
        """Plan the packs of ``paths`` (files below ``root``), reading only what the hash
        cache does not know of the large files.

        Raises:
            ArtifactError: a file is missing, unreadable or changed while it was hashed.
        """
        names = [path.relative_to(root).as_posix() for path in paths]
        for name in names:
            # The listing's rule, checked before anything is uploaded. (fullmatch: the
            # pattern's `$` would let a name end in a newline.)
            if not _ENTRY.fullmatch(name) or len(name) > ENTRY_PATH_MAX:
                raise InvalidValueError(
                    f"cannot store {str(root / name)!r}: a name inside a folder artifact may not "
                    "hold a backslash or a control character; rename the file"
                )
            # What `get` would refuse to place (a .git folder: a clone's own repository).
            reason = pathcheck.unsafe_path(name)
            if reason is not None:
                raise InvalidValueError(
                    f"cannot store {str(root / name)!r}: {reason}, which `get` would not "
                    "place; add a copy of the folder without it"
                )
        layout = lay_out(paths, names, cache)
        return cls(paths, names, layout, layout.recalled())

    @property
    def size(self) -> int:
        """The bytes of all its files."""
        return sum(d.size for _, d in self.layout.loose) + sum(
            job.size for _, job in self.layout.packs
        )

    def measure(self, cache: HashCache) -> None:
        """Read the files of the packs whose digests the hash cache did not know, so that
        :meth:`listing` is known without a store (one more read of those files).

        Raises:
            ArtifactError: a file is unreadable or changed while it was read.
        """
        self.packed = [job.recalled() or measure(job, cache) for _, job in self.layout.packs]

    def uploads(self) -> list[tuple[Path, FileDigest]]:
        """The files stored as objects of their own, with their digests."""
        return [(self.paths[index], digest) for index, digest in self.layout.loose]

    def store_packs(
        self, store: ObjectStore, cache: HashCache, *, progress: bool | None
    ) -> DirectoryManifest:
        """Store the packs the store lacks; return the listing, now known.

        Raises:
            ArtifactError: a file is unreadable or changed since it was hashed.
            StoreError: the store failed.
        """
        jobs = [job for _, job in self.layout.packs]
        self.packed = store.put_packs(jobs, hashes=cache, progress=progress)
        return self._listing(self.packed)

    def listing(self) -> DirectoryManifest | None:
        """The folder's listing, or None while a pack's digest is unknown."""
        return None if self.packed is None else self._listing(self.packed)

    def _listing(self, packed: list[Packed]) -> DirectoryManifest:
        files = sorted((self._entry(i, d) for i, d in self.layout.loose), key=_path)
        packs = [
            {"sha256": pack.sha256, "files": [
                self._entry(index, digest)
                for index, digest in zip(indices, pack.digests, strict=True)
            ]}
            for (indices, _), pack in zip(self.layout.packs, packed, strict=True)
        ]
        # One validation of the whole document: ~10x faster than a model per file. The
        # names were checked by scan() and the digests are ours: it cannot fail.
        return DirectoryManifest.model_validate({"files": files, "packs": packs})

    def _entry(self, index: int, digest: FileDigest) -> dict[str, object]:
        return {"path": self.names[index], "sha256": digest.sha256, "size": digest.size}


def _path(entry: dict[str, object]) -> str:
    return str(entry["path"])


def placements(
    listing: DirectoryManifest, destination: Callable[[str], Path]
) -> tuple[list[tuple[str, int, Path]], dict[str, Slot]]:
    """What :meth:`ObjectStore.get_files` needs to place a listing's files: each file's
    ``(digest, size, destination(path))``, and where each packed file sits in its pack.

    Raises:
        ArtifactError: ``destination`` refuses a path (one that would leave the folder).
    """
    items = [(e.sha256, e.size, destination(e.path)) for e in listing.files]
    slots: dict[str, Slot] = {}
    for pack in listing.packs:
        offset = 0
        for entry in pack.files:
            items.append((entry.sha256, entry.size, destination(entry.path)))
            slots.setdefault(entry.sha256, Slot(pack.sha256, offset, pack.size))
            offset += entry.size
    return items, slots
