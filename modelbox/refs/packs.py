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

from dulwich.pack import apply_delta, write_pack_index

#: Objects per pack before it is finished and a new one started: a 100,000-version batch
#: (~800,000 objects) leaves ~4 packs, its index entries stay ~40 MB at most in memory.
PACK_OBJECTS = 200_000
#: Bytes per pack before it is finished (a cap for batches of large documents).
PACK_BYTES = 512 * 1024 * 1024

_HEADER = struct.Struct(">4sLL")
_COMPRESSION = 1  # zlib's fastest: most of a batch's bytes are tree deltas and SHA-1s
_OFS_DELTA = 6
#: Longest delta chain (git's pack.depth default); a longer one is cut by a whole object.
MAX_DEPTH = 50
_MIN_DELTA_SOURCE = 512  # smaller objects are stored whole


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _ofs(distance: int) -> bytes:
    """An OFS_DELTA's distance back to its base, in git's offset encoding."""
    out = [distance & 0x7F]
    distance >>= 7
    while distance:
        distance -= 1
        out.insert(0, 0x80 | (distance & 0x7F))
        distance >>= 7
    return bytes(out)


def _common_prefix(a: bytes, b: bytes) -> int:
    lo, hi = 0, min(len(a), len(b))  # a[:lo] == b[:lo]; the answer is at most hi
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[lo:mid] == b[lo:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _common_suffix(a: bytes, b: bytes, limit: int) -> int:
    lo, hi = 0, limit
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[len(a) - mid : len(a) - lo] == b[len(b) - mid : len(b) - lo]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _copy(offset: int, size: int) -> bytes:
    out = bytearray()
    while size:
        chunk = min(size, 0xFFFFFF)
        command, args = 0x80, bytearray()
        for i in range(4):
            if (offset >> (8 * i)) & 0xFF:
                command |= 1 << i
                args.append((offset >> (8 * i)) & 0xFF)
        for i in range(3):
            if (chunk >> (8 * i)) & 0xFF:
                command |= 0x10 << i
                args.append((chunk >> (8 * i)) & 0xFF)
        out.append(command)
        out += args
        offset += chunk
        size -= chunk
    return bytes(out)


def make_delta(base: bytes, target: bytes) -> bytes:
    """A git delta from ``base`` to ``target``: their common start and end copied, the
    middle inserted. A commit changes one entry of a wide tree, so that is the whole
    difference (git's own search would find no better)."""
    head = _common_prefix(base, target)
    tail = _common_suffix(base, target, min(len(base), len(target)) - head)
    out = [_varint(len(base)), _varint(len(target)), _copy(0, head)]
    middle = target[head : len(target) - tail]
    for at in range(0, len(middle), 127):
        piece = middle[at : at + 127]
        out.append(bytes([len(piece)]) + piece)
    out.append(_copy(len(base) - tail, tail))
    return b"".join(out)


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
        # raw sha -> (offset, stored length, header length, type, crc32)
        self._entries: dict[bytes, tuple[int, int, int, int, int]] = {}
        # a delta's sha -> (its base's sha, chain depth)
        self._deltas: dict[bytes, tuple[bytes, int]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def size(self) -> int:
        return self._offset

    def __contains__(self, sha: bytes) -> bool:
        return sha in self._entries

    def add(self, sha: bytes, type_num: int, raw: bytes,
            base: tuple[bytes, bytes] | None = None) -> None:
        """Append one object (``sha``: its 20-byte id) unless it is already in the pack.

        ``base`` is ``(sha, raw)`` of an object of the same type it likely differs little
        from (the tree it replaces): if that one is in this pack, this one is stored as a
        delta against it (``OFS_DELTA``), as git would after a repack.
        """
        if sha in self._entries:
            return
        header = _object_header(type_num, len(raw))
        body = raw
        if base is not None and len(raw) >= _MIN_DELTA_SOURCE and base[0] in self._entries:
            depth = self._deltas.get(base[0], (b"", 0))[1] + 1
            delta = make_delta(base[1], raw) if depth <= MAX_DEPTH else b""
            if delta and len(delta) < len(raw) // 2:
                header = _object_header(_OFS_DELTA, len(delta)) + _ofs(
                    self._offset - self._entries[base[0]][0])
                body = delta
                self._deltas[sha] = (base[0], depth)
        data = header + zlib.compress(body, _COMPRESSION)
        self._file.write(data)
        self._entries[sha] = (self._offset, len(data), len(header), type_num,
                              binascii.crc32(data))
        self._offset += len(data)
        self._dirty = True

    def read(self, sha: bytes) -> tuple[int, bytes] | None:
        """``(type, raw content)`` of an object of this pack, or None."""
        entry = self._entries.get(sha)
        if entry is None:
            return None
        offset, length, header, type_num, _ = entry
        if self._dirty:
            self._file.flush()
            self._dirty = False
        body = zlib.decompress(os.pread(self._file.fileno(), length, offset)[header:])
        delta = self._deltas.get(sha)
        if delta is not None:
            found = self.read(delta[0])
            assert found is not None  # a delta's base is always in its pack
            body = b"".join(apply_delta(found[1], body))
        return type_num, body

    def finish(self) -> Path | None:
        """Complete the pack and move it in; returns its ``pack-<sha>`` base path (None for
        an empty pack, which is deleted). A failure (a full disk) deletes it."""
        if not self._entries:
            self.abort()
            return None
        try:
            return self._finish()
        except OSError:
            self.abort()
            self.path.with_name(self.path.name + ".idx").unlink(missing_ok=True)
            raise

    def _finish(self) -> Path:
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
        entries = sorted((sha, entry[0], entry[4]) for sha, entry in self._entries.items())
        self._entries, self._deltas = {}, {}
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
        self._entries, self._deltas = {}, {}
        self.path.unlink(missing_ok=True)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
