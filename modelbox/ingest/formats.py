"""Is this checkpoint file whole? One check per format, each reading a few bytes.

A trainer killed mid-write leaves a partial file whose size never changes again, so a
stable size proves nothing: each check asks the file whether it ends where it says it
ends. None of them reads a checkpoint into memory.
"""

from __future__ import annotations

import json
import struct
import zipfile
from pathlib import Path

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
#: A safetensors header larger than this is refused (the format's own reader caps it at
#: 100 MB; a real header is kilobytes).
MAX_SAFETENSORS_HEADER = 100_000_000


def zip_complete(path: Path, needed: tuple[str, ...] = ()) -> bool:
    """A zip (torch's ``.ckpt``/``.pt``, Keras' ``.keras``) whose central directory, written
    last, is there and lists an entry ending in each of ``needed``."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (OSError, zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError):
        return False
    return all(any(name == want or name.endswith("/" + want) for name in names)
               for want in needed)


def torch_complete(path: Path) -> bool:
    """A ``torch.save`` file (PyTorch Lightning's ``.ckpt``): a whole zip holding the
    pickle ``ARCHIVE/data.pkl`` that torch writes."""
    return zip_complete(path, ("data.pkl",))


def keras_complete(path: Path) -> bool:
    """A Keras 3 ``.keras`` file: a whole zip with ``config.json`` and ``metadata.json``."""
    return zip_complete(path, ("config.json", "metadata.json"))


def safetensors_complete(path: Path) -> bool:
    """A safetensors file: 8 bytes of header length, a JSON header, and a size that is
    exactly the header plus the end of the last tensor's data."""
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            head = f.read(8)
            if len(head) != 8:
                return False
            (length,) = struct.unpack("<Q", head)
            if length > min(MAX_SAFETENSORS_HEADER, size - 8):
                return False
            header = json.loads(f.read(length))
    except (OSError, ValueError):
        return False
    if not isinstance(header, dict):
        return False
    end = 0
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        offsets = entry.get("data_offsets") if isinstance(entry, dict) else None
        if (not isinstance(offsets, list) or len(offsets) != 2
                or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
                or not 0 <= offsets[0] <= offsets[1]):
            return False
        end = max(end, offsets[1])
    return bool(size == 8 + length + end)


def hdf5_complete(path: Path) -> bool:
    """An HDF5 file (Keras ``.weights.h5``/``.h5``): the signature at offset 0 and a
    superblock whose end-of-file address, which the library writes when it closes the
    file, equals the file's size. h5py is no dependency: the superblock layouts (versions
    0-3) are read here. A version 2-3 superblock also says whether a writer still has
    the file open; version 0-1 (h5py's default) cannot, so a file its writer flushed and
    keeps open looks whole: Keras writes a weights file and closes it in one call."""
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            block = f.read(128)
    except OSError:
        return False
    if not block.startswith(HDF5_SIGNATURE) or len(block) < 12:
        return False
    version = block[8]
    try:
        if version in (0, 1):
            offsets = block[13]
            start = 24 + (4 if version == 1 else 0)  # base address
            fields = 4  # base, free-space, end-of-file, driver
            eof_at = start + 2 * offsets
        elif version in (2, 3):
            if block[11] & 0b101:  # opened for writing (or SWMR writing) and not closed
                return False
            offsets = block[9]
            start = 12
            fields = 4  # base, extension, end-of-file, root object header
            eof_at = start + 2 * offsets
        else:
            return False
        if offsets not in (2, 4, 8) or len(block) < start + fields * offsets:
            return False
        base = int.from_bytes(block[start : start + offsets], "little")
        eof = int.from_bytes(block[eof_at : eof_at + offsets], "little")
    except IndexError:
        return False
    return base + eof == size
