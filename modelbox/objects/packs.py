"""Packs: the small files of a directory artifact, stored several to an object.

One request per 64 KiB file costs more than the bytes it moves (on SeaweedFS, ~2.5 ms of
client and ~2.4 ms of server CPU per PUT); a pack of ~4 MiB moves 64 of them in one. A
pack is an ordinary object, whose key is the SHA-256 of its bytes, so the store's layout,
``missing()``, ``gc`` and ``push`` treat it like any other; only the directory listing
knows what is inside: its files in order, their contents concatenated with nothing
between, each with its own SHA-256, checked when it is unpacked.

Which files share a pack depends on their paths and sizes only, never on their content
(:func:`plan`): editing a file changes its own pack and no other, so the next version of
a folder re-uploads only the packs of the files that changed.
"""

from __future__ import annotations

import hashlib
import io
import os
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from modelbox.errors import ObjectCorruptError
from modelbox.objects.hashing import FileDigest, cached_digest, hash_file, read_into, read_small

if TYPE_CHECKING:
    from modelbox.objects.cache import HashCache

PACKED_MAX = 1 << 20
"""Files up to this size are packed; larger ones are objects of their own."""
PACK_MIN = 4 << 20
"""A pack ends after a boundary file once it holds at least this many bytes..."""
PACK_MAX = 8 << 20
"""...and before a file that would take it past this size (one PUT on S3)."""
_BOUNDARY = 8
"""One path in this many (by its CRC-32) is a boundary."""


def packable(size: int) -> bool:
    """Whether a file of ``size`` bytes goes into a pack."""
    return size <= PACKED_MAX


def plan(files: Sequence[tuple[str, int]]) -> list[list[int]]:
    """Group small files ``(relative path, size)``, taken in the given order, into packs.

    Returns the indices of each pack's files. A pack ends after a file whose path is a
    boundary once it holds :data:`PACK_MIN` bytes, or before a file that would take it
    past :data:`PACK_MAX`: a content-independent cut, so a changed file moves no
    boundary, and an added or removed file moves at most the cuts of its neighbourhood.
    A group of one file is returned too; callers store such a file as a plain object.
    """
    groups: list[list[int]] = []
    current: list[int] = []
    size = 0
    for index, (path, length) in enumerate(files):
        if current and size + length > PACK_MAX:
            groups.append(current)
            current, size = [], 0
        current.append(index)
        size += length
        if size >= PACK_MIN and zlib.crc32(path.encode("utf-8")) % _BOUNDARY == 0:
            groups.append(current)
            current, size = [], 0
    if current:
        groups.append(current)
    return groups


def members_key(digests: Sequence[FileDigest]) -> str:
    """The name under which the hash cache remembers the pack of these member contents."""
    hasher = hashlib.sha256()
    for digest in digests:
        hasher.update(f"{digest.sha256} {digest.size}\n".encode())
    return hasher.hexdigest()


@dataclass
class PackJob:
    """One pack to store: its files in order, with what is known of them already."""

    paths: list[Path]
    sizes: list[int]
    digests: list[FileDigest | None]
    """Each file's digest when the hash cache knew it, else None (computed on reading)."""
    sha256: str | None = None
    """The pack's digest, when the hash cache knew it for exactly these member digests."""

    @property
    def size(self) -> int:
        return sum(self.sizes)

    def known(self) -> list[FileDigest] | None:
        """Every member's digest, if all are known without reading."""
        if any(digest is None for digest in self.digests):
            return None
        return [digest for digest in self.digests if digest is not None]

    def recalled(self) -> Packed | None:
        """The pack as it will be stored, if the hash cache knew everything about it."""
        digests = self.known()
        if self.sha256 is None or digests is None:
            return None
        return Packed(self.sha256, digests)


@dataclass
class Packed:
    """A pack as stored: its digest and its members' digests, in order."""

    sha256: str
    digests: list[FileDigest] = field(default_factory=list)


def recall(job: PackJob, cache: HashCache | None) -> None:
    """Fill in ``job.sha256`` from the hash cache when every member's digest is known."""
    digests = job.known()
    if digests is not None and cache is not None:
        job.sha256 = cache.pack_lookup(members_key(digests))


def settled(job: PackJob, present: set[str]) -> Packed | None:
    """The job's pack if the store is known to hold it already (nothing to read or send)."""
    packed = job.recalled()
    return packed if packed is not None and packed.sha256 in present else None


@dataclass
class Layout:
    """How the files of a folder are stored: as objects of their own, or in packs."""

    loose: list[tuple[int, FileDigest]]
    """``(index, digest)`` of each file stored as an object of its own."""
    packs: list[tuple[list[int], PackJob]]
    """The indices of each pack's files, and the job that stores it."""

    def recalled(self) -> list[Packed] | None:
        """Every pack as it will be stored, if the hash cache knew them all."""
        out = [job.recalled() for _, job in self.packs]
        return None if any(packed is None for packed in out) else [p for p in out if p]


def lay_out(paths: Sequence[Path], names: Sequence[str], cache: HashCache | None) -> Layout:
    """Decide which files (``names``: their paths inside the folder, in order) go into
    which pack, with what the hash cache knows of them; hash the others now.

    Raises:
        ArtifactError: a file is missing, unreadable or changed while it was hashed.
    """
    found = [cached_digest(path, cache) for path in paths]
    small = [index for index, (size, _) in enumerate(found) if packable(size)]
    alone = [index for index, (size, _) in enumerate(found) if not packable(size)]
    layout = Layout([], [])
    for group in plan([(names[index], found[index][0]) for index in small]):
        indices = [small[member] for member in group]
        if len(indices) == 1:
            alone.append(indices[0])
            continue
        job = PackJob([paths[i] for i in indices], [found[i][0] for i in indices],
                      [found[i][1] for i in indices])
        recall(job, cache)
        layout.packs.append((indices, job))
    for index in sorted(alone):
        digest = found[index][1] or hash_file(paths[index], cache=cache)
        layout.loose.append((index, digest))
    return layout


def measure(job: PackJob, cache: HashCache | None) -> Packed:
    """Learn the job's pack digest (and its members') by reading its files, without
    keeping them: for deciding whether anything changed before talking to a store.

    Raises:
        ArtifactError: a file is unreadable, or changed since it was hashed or while it
            was read.
    """
    packed, _ = build(job, cache)
    job.digests, job.sha256 = list(packed.digests), packed.sha256
    return packed


def build(job: PackJob, cache: HashCache | None) -> tuple[Packed, io.BytesIO]:
    """Read the job's files into the pack's bytes, checking each against its known digest
    (or hashing it, and remembering the digest, when it had none); remember the pack's.

    When the pack's digest is known already (from the hash cache, or :func:`measure`),
    the pack is hashed as a whole instead of file by file: the same bytes, so the same
    members, in one pass instead of two.

    The bytes come in a file object at its start, read straight into its buffer: an HTTP
    client sends it without another copy.

    Raises:
        ArtifactError: a file is unreadable, or changed since it was hashed or while it
            was read.
    """
    data = io.BytesIO()
    if job.size:
        data.seek(job.size - 1)
        data.write(b"\0")  # the buffer's final size, once
        data.seek(0)
    # Every view of the buffer is released before anything is raised: a traceback keeps
    # its frames' locals, and a live view there is an export of ``data`` that outlives it
    # (BufferError on 3.13 when the cycle is collected; CPython gh-111211 crashes 3.12).
    view = data.getbuffer()
    try:
        recalled = job.recalled()
        if recalled is not None:
            offset = 0
            for path, size in zip(job.paths, job.sizes, strict=True):
                with view[offset : offset + size] as part:
                    read_into(path, part)
                offset += size
            if hashlib.sha256(view).hexdigest() == recalled.sha256:
                return recalled, data
            # Something changed since it was hashed: find what, file by file (below).
        packed, learned = _read_members(job, view)
    finally:
        view.release()
    if cache is not None:
        cache.store_many(learned)
        cache.pack_store(members_key(packed.digests), packed.sha256)
    return packed, data


def _read_members(
    job: PackJob, view: memoryview
) -> tuple[Packed, list[tuple[Path, os.stat_result, str]]]:
    """Read and hash each file into its place in ``view``, then the pack as a whole."""
    digests: list[FileDigest] = []
    learned = []
    offset = 0
    for path, size, expected in zip(job.paths, job.sizes, job.digests, strict=True):
        with view[offset : offset + size] as part:  # released even when the read raises
            digest, stat = read_small(path, part, expected=expected)
        digests.append(digest)
        if stat is not None:
            learned.append((Path(os.path.abspath(path)), stat, digest.sha256))
        offset += size
    return Packed(hashlib.sha256(view).hexdigest(), digests), learned


@dataclass(frozen=True)
class Slot:
    """Where a small object sits inside a pack."""

    pack: str
    """The pack's digest."""
    offset: int
    pack_size: int


@dataclass(frozen=True)
class Wanted:
    """The members to take out of one pack: ``(digest, size, offset)`` in offset order."""

    pack: str
    pack_size: int
    members: list[tuple[str, int, int]]

    @property
    def start(self) -> int:
        return self.members[0][2]

    @property
    def end(self) -> int:
        _, size, offset = self.members[-1]
        return offset + size


def wanted(needed: Sequence[tuple[str, int]], slots: Mapping[str, Slot]) -> list[Wanted]:
    """Group the objects ``(digest, size)`` by the pack that holds each (see ``slots``)."""
    by_pack: dict[str, Wanted] = {}
    for digest, size in needed:
        slot = slots[digest]
        group = by_pack.setdefault(slot.pack, Wanted(slot.pack, slot.pack_size, []))
        group.members.append((digest, size, slot.offset))
    for group in by_pack.values():
        group.members.sort(key=lambda member: member[2])
    return list(by_pack.values())


def unpack(
    group: Wanted, data: bytes, where: str, keep: Callable[[str, memoryview], None]
) -> None:
    """Check each wanted member of ``data`` (the pack's bytes from ``group.start`` to
    ``group.end``) against its digest and hand it to ``keep(digest, content)``.

    Raises:
        ObjectCorruptError: a member's bytes do not hash to its digest; ``where`` names
            the pack. Members before it were kept, none after.
    """
    view = memoryview(data)
    for digest, size, offset in group.members:
        content = view[offset - group.start : offset - group.start + size]
        actual = hashlib.sha256(content).hexdigest()
        if actual != digest or len(content) != size:
            raise ObjectCorruptError(
                digest, f"{where} (bytes {offset}-{offset + size - 1} of the pack)", actual
            )
        keep(digest, content)
