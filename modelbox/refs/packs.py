"""Writing a batch's new objects into pack files as they are made (streamed, not held).

A batch of 100,000 versions makes ~800,000 objects. Holding them in memory until the batch
publishes cost gigabytes; writing them loose costs a file each. Instead they are appended
to a temporary pack (``objects/pack/tmp_pack_modelbox_*``) one by one; only a small
``sha -> (offset, length, type)`` entry stays in memory, so an object can still be read
back before the pack is finished. A pack is finished (header count, trailer, ``.idx``,
renamed into place, ``.idx`` last so no reader sees half a pack) when it holds
:data:`PACK_OBJECTS` objects or :data:`PACK_BYTES` bytes, and when the batch publishes.

Objects in the object database that no ref reaches are harmless (git's gc prunes them), so
a batch that raises keeps the packs it finished and deletes the one it was writing: what
makes a batch all or nothing is the branch move at the end, never where objects are. A
temporary pack left by a process killed mid-write is a ``tmp_*`` file that ``git gc``
(``git prune``) removes.
"""

from __future__ import annotations

import binascii
import hashlib
import os
import struct
import uuid
import zlib
from pathlib import Path

from dulwich.pack import write_pack_index

#: Objects per pack before it is finished and a new one started: a 100,000-version batch
#: (~800,000 objects) leaves ~4 packs, its index entries stay ~40 MB at most in memory.
PACK_OBJECTS = 200_000
#: Bytes per pack before it is finished (a cap for batches of large documents).
PACK_BYTES = 512 * 1024 * 1024

_HEADER = struct.Struct(">4sLL")
_COMPRESSION = -1  # zlib default, as git (core.compression)


def _object_header(type_num: int, size: int) -> bytes:
    """A pack entry's header: type and uncompressed size, little-endian base-128."""
    out = bytearray()
    byte = (type_num << 4) | (size & 0x0F)
    size >>= 4
    while size:
        out.append(byte | 0x80)
        byte = size & 0x7F
        size >>= 7
    out.append(byte)
    return bytes(out)


class PackWriter:
    """One pack being written; :meth:`finish` moves it into ``pack_dir``."""

    def __init__(self, pack_dir: Path, *, fsync: bool = True) -> None:
        self.pack_dir = pack_dir
        self.fsync = fsync
        pack_dir.mkdir(parents=True, exist_ok=True)
        self.path = pack_dir / f"tmp_pack_modelbox_{os.getpid()}_{uuid.uuid4().hex[:12]}"
        self._file = open(self.path, "w+b")  # noqa: SIM115 - closed by finish()/abort()
        self._file.write(_HEADER.pack(b"PACK", 2, 0))  # the count is filled in by finish()
        self._offset = _HEADER.size
        self._dirty = False
        # raw sha -> (offset, stored length, type, crc32)
        self._entries: dict[bytes, tuple[int, int, int, int]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def size(self) -> int:
        return self._offset

    def __contains__(self, sha: bytes) -> bool:
        return sha in self._entries

    def add(self, sha: bytes, type_num: int, raw: bytes) -> None:
        """Append one object (``sha``: its 20-byte id) unless it is already in the pack."""
        if sha in self._entries:
            return
        data = _object_header(type_num, len(raw)) + zlib.compress(raw, _COMPRESSION)
        self._file.write(data)
        self._entries[sha] = (self._offset, len(data), type_num, binascii.crc32(data))
        self._offset += len(data)
        self._dirty = True

    def read(self, sha: bytes) -> tuple[int, bytes] | None:
        """``(type, raw content)`` of an object of this pack, or None."""
        entry = self._entries.get(sha)
        if entry is None:
            return None
        offset, length, type_num, _ = entry
        if self._dirty:
            self._file.flush()
            self._dirty = False
        data = os.pread(self._file.fileno(), length, offset)
        at = 0
        while data[at] & 0x80:  # skip the header's continuation bytes
            at += 1
        return type_num, zlib.decompress(data[at + 1 :])

    def finish(self) -> Path | None:
        """Complete the pack and move it in; returns its ``pack-<sha>`` base path (None for
        an empty pack, which is deleted)."""
        if not self._entries:
            self.abort()
            return None
        f = self._file
        f.seek(0)
        f.write(_HEADER.pack(b"PACK", 2, len(self._entries)))
        f.flush()
        f.seek(0)
        digest = hashlib.sha1()  # git's pack checksum
        while chunk := f.read(1 << 20):
            digest.update(chunk)
        pack_sha = digest.digest()
        f.write(pack_sha)
        f.flush()
        if self.fsync:
            os.fsync(f.fileno())
        f.close()
        entries = sorted((sha, offset, crc) for sha, (offset, _, _, crc) in self._entries.items())
        self._entries = {}
        names = hashlib.sha1()  # how git and dulwich name a pack
        for sha, _, _ in entries:
            names.update(sha)
        base = self.pack_dir / f"pack-{names.hexdigest()}"
        pack, index = base.with_suffix(".pack"), base.with_suffix(".idx")
        if index.exists():  # the same objects are packed already
            self.path.unlink(missing_ok=True)
            return base
        tmp_index = self.path.with_name(self.path.name + ".idx")
        with open(tmp_index, "wb") as idx:
            write_pack_index(idx, entries, pack_sha, version=2)
            idx.flush()
            if self.fsync:
                os.fsync(idx.fileno())
        os.chmod(self.path, 0o444)
        os.chmod(tmp_index, 0o444)
        os.replace(self.path, pack)
        os.replace(tmp_index, index)  # last: a pack counts once its index is there
        if self.fsync:
            _fsync_dir(self.pack_dir)
        return base

    def abort(self) -> None:
        """Delete the unfinished pack (its objects were never referenced)."""
        if not self._file.closed:
            self._file.close()
        self._entries = {}
        self.path.unlink(missing_ok=True)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
