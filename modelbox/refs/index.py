"""The Git index (``.git/index``), read without parsing it and rewritten by splicing.

dulwich parses every entry into Python objects on read and serialises them all again on
write; at 100,000 versions that is most of a command's time. A modelbox command looks at
and changes a handful of entries, so this module keeps the file's bytes and the offset of
each entry, finds an entry by binary search, and writes by copying the unchanged runs of
bytes around the few entries it changed. The offsets are kept in
``.git/modelbox/index-offsets``, keyed by the index's own checksum (a hash of its whole
content), so they are used only for the exact bytes they were computed from: after a
``git status``, ``git checkout`` or a hand edit the checksum differs and the offsets are
computed again, once. The checksum itself is verified on every read, before any entry
is used (for a mapped file in a thread, begun when a write starts: ``Worktree.prefetch``).
A repository with git's ``index.skipHash`` (git 2.40+, and there part of
``feature.manyFiles``) has an index whose checksum is all zeros, as git writes it: read as
git reads it, and written so when the setting is on (the offsets are then keyed by a
SHA-1 computed when they are saved).

An index past 1 MiB is mapped rather than read, and a command's one write writes the new
file from the runs of old entries between its edits, as views of the mapping: at 100,000
versions no 12 MB copied into fresh memory on read nor again on write (~15 ms of a cold
write; docs/scale.md). A process that writes again (a script publishing one version per
call) copies the entries once into one buffer at its second write and splices its next
edits into it in place, and writes the new index into the file the previous write replaced
(``.git/modelbox/index-spare``) once no process has that file open or mapped: no 12 MB
allocated and freed per write (``_replace``; docs/design.md).

It understands index versions 2 and 3 (what git writes by default) and 4 (path prefix
compression: what ``feature.manyFiles`` or ``index.version=4`` makes git write; each name
is stored as what differs from the name before it, so an entry's name is known only from
the ones before it: the names of a version 4 index are kept beside the offsets, and a
write re-encodes the first unchanged entry after each change). A write keeps the file's
version. It drops the optional cache extensions (``TREE``, ``UNTR``, ...), which git
rebuilds itself; a sparse index is refused with a message saying how to turn it off.

A split index (``core.splitIndex``, git's "Split index" in gitformat-index) is read as git
reads it: the shared index ``sharedindex.<sha>`` holds most entries (it is then what
``_data`` and the offsets describe), and the small ``index`` file its ``link`` extension
and the entries that differ. Those differences are kept as an overlay (path -> shared
position and entry); a write in split mode writes only the overlay, and rewrites the shared
index when the overlay outgrows ``splitIndex.maxPercentChange`` of the entries.
"""

from __future__ import annotations

import bisect
import contextlib
import fcntl
import hashlib
import mmap
import os
import stat
import struct
import sys
import threading
import time
import weakref
from array import array
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

from modelbox.errors import GitError, IndexLockedError
from modelbox.faults import fault, interrupt
from modelbox.processes import process_alive

_HEADER = struct.Struct(">4sII")
_ENTRY = struct.Struct(">10I20sH")  # stat fields, sha, flags
_FLAGS_AT = 60  # the flags field inside an entry
_EXTENDED = 0x4000
_STAGE_MASK = 0x3000
_NAME_MASK = 0x0FFF
_LINK = b"link"
_SPARSE = b"sdir"
_NO_BASE = b"\0" * 20  # a link to no shared index
_CHECKSUM = 20
# The checksum of an index written with ``index.skipHash`` (git 2.40+; implied there by
# ``feature.manyFiles``): every git since 2.13 reads it, and only ``git fsck`` checks a
# checksum that is not all zeros.
_NO_HASH = b"\0" * _CHECKSUM
# The offsets file: magic, the index's checksum, entry count, end of the entries, the
# digest of what follows (a damaged file is recomputed, never trusted): the offsets, then
# for a version 4 index every entry's full name, each ended by NUL.
_CACHE_MAGIC = f"modelbox index offsets 2 {sys.byteorder}\n".encode()
_CACHE_HEAD = struct.Struct(">20sIQ20s")

Key = tuple[bytes, int]  # (path, stage): git's sort order
# A split index's entry relative to the shared one: its position there (-1: added) and its
# bytes with their name (None: deleted).
Overlaid = tuple[int, bytes | None]
_Bytes = bytes | bytearray | mmap.mmap
_Chunk = _Bytes | memoryview  # a piece of an index file being written
# An edit of the entries: the byte range [start, stop) of the old ones becomes ``new``.
_Edit = tuple[int, int, bytes]
# At most this many edits are spliced into the entries in place (each moves the bytes after
# it); more are copied once into a new buffer.
_IN_PLACE = 16
# An index file this big is mapped, not read (POSIX only: Windows cannot rename a file onto
# a mapped one): the SHA-1 that checks it reads the page cache in place, where a read()
# first copies 12 MB into fresh memory, which costs as much as the SHA-1 itself.
_MAP_FROM = 1 << 20
_MAPS = os.name == "posix"


_ITEM = 8  # bytes per kept offset


def _offset_array(values: list[int] | None = None) -> array[int]:
    """Entry offsets: 8-byte unsigned integers, stored as they are kept in memory."""
    return array("Q", values or [])


def _shifted(run: array[int], shift: int) -> array[int]:
    """``run`` with ``shift`` added to every offset, without a Python loop over them: the
    offsets, read as one big integer of 8-byte lanes, plus ``shift`` in every lane.
    No lane carries or borrows into the next: every offset after a change stays a valid
    file position, between 0 and 2**64."""
    if not shift or not run:
        return run
    raw, order = run.tobytes(), sys.byteorder
    lanes = int.from_bytes(abs(shift).to_bytes(_ITEM, order) * len(run), order)
    value = int.from_bytes(raw, order)
    value = value + lanes if shift > 0 else value - lanes
    out = _offset_array()
    out.frombytes(value.to_bytes(len(raw), order))
    return out


class _OffsetPlan:
    """The entry offsets of a write, computed when first asked for: runs of the old
    offsets shifted, and the offsets of new entries. A write asks while the file's SHA-1
    is computed in its thread (:class:`_Sealing`), so on two cores shifting 100,000
    offsets costs a publish nothing."""

    def __init__(self, old: array[int]) -> None:
        self._old = old  # never changed in place: a write replaces the array
        self._pieces: list[tuple[int, int, int] | int] = []
        self._done: array[int] | None = None
        self.count = 0

    def run(self, start: int, stop: int, shift: int) -> None:
        """Old entries ``start:stop``, moved by ``shift`` bytes."""
        self._pieces.append((start, stop, shift))
        self.count += stop - start

    def new(self, at: int) -> None:
        """A new entry at byte ``at``."""
        self._pieces.append(at)
        self.count += 1

    def offsets(self) -> array[int]:
        if self._done is None:
            out = _offset_array()
            for piece in self._pieces:
                if isinstance(piece, int):
                    out.append(piece)
                else:
                    start, stop, shift = piece
                    out += _shifted(self._old[start:stop], shift)
            self._done, self._old, self._pieces = out, _offset_array(), []
        return self._done


def _entry_key(data: _Bytes, offset: int) -> Key:
    flags = (data[offset + _FLAGS_AT] << 8) | data[offset + _FLAGS_AT + 1]
    name_at = offset + _ENTRY.size + (2 if flags & _EXTENDED else 0)
    length = flags & _NAME_MASK
    end = _nul(data, name_at) if length == _NAME_MASK else name_at + length
    return bytes(data[name_at:end]), (flags & _STAGE_MASK) >> 12


def _nul(data: _Bytes, at: int) -> int:
    """Where the first NUL at or after ``at`` is; ValueError if none (``bytes.index``, which
    a mapped file lacks)."""
    found = data.find(b"\0", at)
    if found < 0:
        raise ValueError("no NUL")
    return found


def _renamed(raw: bytes, name: bytes) -> bytes:
    """Entry ``raw`` under ``name`` (b"": the name-less form of a replaced entry in a split
    index), its stat data, sha and flag bits kept."""
    flags = (raw[_FLAGS_AT] << 8) | raw[_FLAGS_AT + 1]
    extended = raw[_ENTRY.size : _ENTRY.size + 2] if flags & _EXTENDED else b""
    flags = (flags & ~_NAME_MASK & 0xFFFF) | min(len(name), _NAME_MASK)
    body = raw[:_FLAGS_AT] + struct.pack(">H", flags) + extended + name
    return body + b"\0" * (8 - len(body) % 8)


# -- version 4: names compressed against the name before (git's varint.c) -------------------
def _varint(value: int) -> bytes:
    """git's offset varint: 7 bits a byte, most significant first, each continuation
    byte's value one less than it would be (so every number has one encoding)."""
    out = bytearray([value & 127])
    value >>= 7
    while value:
        value -= 1
        out.append(128 | (value & 127))
        value >>= 7
    out.reverse()
    return bytes(out)


def _read_varint(data: _Bytes | memoryview, at: int) -> tuple[int, int]:
    """The varint at ``at``, and where it ends; IndexError past the end of ``data``."""
    byte = data[at]
    at += 1
    value = byte & 127
    while byte & 128:
        byte = data[at]
        at += 1
        value = ((value + 1) << 7) | (byte & 127)
    return value, at


def _fixed_size(raw: _Bytes | memoryview, offset: int = 0) -> int:
    """The size of an entry's fields before its name (stat data, sha, flags)."""
    return _ENTRY.size + (2 if raw[offset + _FLAGS_AT] << 8 & _EXTENDED else 0)


def _compressed(fixed: _Bytes | memoryview, name: bytes, previous: bytes) -> bytes:
    """A version 4 entry: its fields, how many bytes to strip from the end of the name
    before it, the rest of its own name, NUL."""
    common = 0
    limit = min(len(name), len(previous))
    while common < limit and name[common] == previous[common]:
        common += 1
    return bytes(fixed) + _varint(len(previous) - common) + name[common:] + b"\0"


# -- EWAH bitmaps (git's ewah/): the positions in a split index's link extension ------------
# A bitmap is: bit count, word count, the 64-bit words, the position of the last marker word.
# A marker word holds a run (bit 0: of ones or zeros; bits 1-32: how many words) followed by
# bits 33-63: how many literal words come after the marker.
_EWAH_HEAD = struct.Struct(">II")
_RUN_MASK = 0xFFFFFFFF
_LITERALS_AT = 33


def _ewah_read(data: bytes, at: int) -> tuple[list[int], int]:
    """The set bits of the bitmap at ``at`` in ``data``, and where the bitmap ends."""
    _bits, words = _EWAH_HEAD.unpack_from(data, at)
    at += _EWAH_HEAD.size
    end = at + 8 * words + 4
    if end > len(data):
        raise ValueError("bitmap past the end")
    buffer = struct.unpack_from(f">{words}Q", data, at)
    positions: list[int] = []
    word = i = 0  # the bitmap word the next buffer word covers; the next buffer word
    while i < words:
        marker = buffer[i]
        run, literals = (marker >> 1) & _RUN_MASK, marker >> _LITERALS_AT
        if marker & 1:
            positions.extend(range(word * 64, (word + run) * 64))
        word += run
        if i + 1 + literals > words:
            raise ValueError("bitmap literals past the end")
        for literal in buffer[i + 1 : i + 1 + literals]:
            bits = literal
            while bits:
                low = bits & -bits
                positions.append(word * 64 + low.bit_length() - 1)
                bits ^= low
            word += 1
        i += 1 + literals
    return positions, end


def _ewah(positions: list[int]) -> bytes:
    """The bitmap of ``positions`` (ascending): a marker before each group of adjacent
    non-empty words, its run the empty words skipped before them."""
    words: dict[int, int] = {}
    for position in positions:
        words[position >> 6] = words.get(position >> 6, 0) | (1 << (position & 63))
    buffer: list[int] = []
    marker_at = 0
    after = 0  # the bitmap word after the last one written
    for index in sorted(words):
        if buffer and index == after:
            buffer[marker_at] += 1 << _LITERALS_AT
        else:
            marker_at = len(buffer)
            buffer.append(((index - after) << 1) | (1 << _LITERALS_AT))
        buffer.append(words[index])
        after = index + 1
    buffer = buffer or [0]
    return (_EWAH_HEAD.pack(positions[-1] + 1 if positions else 0, len(buffer))
            + struct.pack(f">{len(buffer)}Q", *buffer) + struct.pack(">I", marker_at))


def _link_parts(link: bytes) -> tuple[bytes, list[int], list[int]]:
    """A link extension's shared index checksum, deleted and replaced positions."""
    if len(link) < _CHECKSUM:
        raise ValueError("link extension too short")
    if len(link) == _CHECKSUM:
        return link, [], []
    deleted, at = _ewah_read(link, _CHECKSUM)
    replaced, at = _ewah_read(link, at)
    if at != len(link):
        raise ValueError("garbage after the bitmaps")
    return link[:_CHECKSUM], deleted, replaced


# -- git's split-index settings ------------------------------------------------------------
_UNITS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400, "week": 7 * 86400,
          "month": 30 * 86400, "year": 365 * 86400}


class SplitSettings(NamedTuple):
    """``core.splitIndex`` (None: unset, keep the file's form), ``splitIndex.
    maxPercentChange`` and ``splitIndex.sharedIndexExpire`` in seconds (None: never)."""

    enabled: bool | None = None
    max_percent: int = 20
    expire: float | None = 14 * 86400

    @classmethod
    def from_config(cls, get: Callable[[str, str], str | None]) -> SplitSettings:
        """Read as git does; a value git would reject keeps git's default, and an expiry
        this reader does not understand keeps every shared index (never deletes)."""
        enabled = git_bool(get("core", "splitIndex"))
        try:
            percent = int(get("splitIndex", "maxPercentChange") or "20")
        except ValueError:
            percent = 20
        percent = percent if 0 <= percent <= 100 else 20
        return cls(enabled, percent, _expiry(get("splitIndex", "sharedIndexExpire")))


def git_bool(value: str | None) -> bool | None:
    """A git boolean setting's value; None when unset or not a boolean git knows."""
    flag = (value or "").strip().lower()
    return (True if flag in ("true", "yes", "on", "1")
            else False if flag in ("false", "no", "off", "0") else None)


def _expiry(value: str | None) -> float | None:
    if value is None:
        return 14 * 86400
    value = value.strip().lower()
    if value == "now":
        return 0.0
    parts = value.split(".")
    if len(parts) == 3 and parts[2] == "ago" and parts[0].isdigit():
        unit = _UNITS.get(parts[1].removesuffix("s"))
        if unit is not None:
            return float(int(parts[0]) * unit)
    return None  # "never", or a date this reader does not parse: keep them all


class IndexEntry(NamedTuple):
    sha: str
    mode: int
    size: int
    mtime_ns: int
    ino: int


class GitIndex:
    """A mutable view of the index; :meth:`write` replaces the file atomically."""

    def __init__(self, path: Path, offsets: Path | None = None,
                 split: SplitSettings | None = None, skip_hash: bool = False) -> None:
        self.path = path
        self.offsets_path = offsets or path.parent / "modelbox" / "index-offsets"
        self.split_settings = split or SplitSettings()
        # ``index.skipHash``: a whole (not split) index is written with a checksum of
        # zeros instead of the SHA-1 of every byte, as git 2.40+ writes it.
        self.skip_hash = skip_hash
        self.version = 2
        # The flat entries: the index file's, or for a split index the shared index's (as
        # read: the whole file; once written by this view: the header and entries only).
        self._data: _Bytes = b""
        self._offsets = _offset_array()  # where each entry starts, in git's sort order
        self._names: list[bytes] | None = None  # a version 4 _data: each entry's full name
        self._end = _HEADER.size  # where the entries end (extensions or checksum follow)
        self._changes: dict[Key, bytes | None] = {}  # entry -> raw bytes (None: removed)
        self._stamp: tuple[int, int, int] | None = None
        self._base: bytes | None = None  # a split index: its shared index's checksum
        self._overlay: dict[Key, Overlaid] = {}  # a split index: what differs from _data
        self._offsets_kept = True  # a split index: the offsets file describes _data
        self._stripped: dict[bytes, bytes] = {}  # replacing entries without their names
        self._base_version = 2
        self._broken = False  # a write failed part-way: read the file again before use
        # A mapped file's checksum being computed: confirmed before its entries are read.
        self._checking: tuple[_Sealing, bytes, Path] | None = None
        # Written once: a writer that keeps publishing holds the entries in memory (one
        # copy, at its second write), where a single write writes around the old ones.
        self._wrote = False
        # The offsets of the last whole write wait here for the next process: saved at most
        # once a second while writing, and when this view is let go (flush, garbage
        # collection or exit), not after every write of a loop.
        self._kept = _Kept(self.offsets_path)
        weakref.finalize(self, self._kept.flush)
        self.reload()

    @property
    def is_split(self) -> bool:
        return self._base is not None

    def reload(self) -> None:
        """Read the index file again (an absent file is an empty index)."""
        self._changes, self._broken, self._checking = {}, False, None
        self._kept.value = None  # offsets of bytes someone else has replaced
        try:
            with open(self.path, "rb") as f:
                st = os.fstat(f.fileno())
                data = _mapped(f.fileno(), st.st_size) or f.read()
        except FileNotFoundError:
            self.version, self._data, self._end = 2, b"", _HEADER.size
            self._offsets, self._names = _offset_array(), None
            self._base, self._overlay, self._stamp = None, {}, None
            return
        self._load(data)
        self._stamp = (st.st_mtime_ns, st.st_size, st.st_ino)

    def is_stale(self) -> bool:
        """True when someone else rewrote the index file since we read or wrote it."""
        if self._broken:
            return True
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return self._stamp is not None
        return self._stamp != (st.st_mtime_ns, st.st_size, st.st_ino)

    def _load(self, data: _Bytes) -> None:
        version, offsets, end, link, _, names = self._parse(self.path, data)
        if names is not None and self.split_settings.enabled:  # refused before any change
            raise GitError(f"{self.path} is of index version 4, which modelbox cannot write "
                           "as a split index (core.splitIndex); run `git update-index "
                           "--index-version 2`, or turn core.splitIndex off")
        if link is None:
            self.version, self._data = version, data
            self._offsets, self._end, self._names = offsets, end, names
            self._base, self._overlay = None, {}
            return
        self._names = None
        self._load_split(version, data, offsets, end, link)

    def _parse(self, path: Path, data: _Bytes,
               ) -> tuple[int, array[int], int, bytes | None, bool, list[bytes] | None]:
        """Check one index file; its version, entry offsets, where they end, its link
        extension's content (None: not a split index), whether the offsets file had
        the offsets, and for version 4 every entry's name."""
        if len(data) < _HEADER.size + _CHECKSUM:
            raise GitError(f"{path} is truncated; run `git reset` to rebuild it")
        trailer = bytes(data[-_CHECKSUM:])
        checking = None
        if isinstance(data, mmap.mmap) and trailer != _NO_HASH:
            # A mapped file's SHA-1 goes on in a thread (hashlib lets go of the GIL) while
            # the command prepares its change; no entry is read before it is confirmed
            # (:meth:`_bytes`). Until then the offsets are looked up by the checksum the
            # file claims, which is its SHA-1 unless it is damaged.
            checking = _Sealing([memoryview(data)[:-_CHECKSUM]])
            digest = trailer
        else:
            # The SHA-1 is computed even for an index written without one (index.skipHash):
            # it is what the offsets file is keyed by.
            digest = hashlib.sha1(memoryview(data)[:-_CHECKSUM]).digest()
            if trailer not in (digest, _NO_HASH):
                raise _bad_checksum(path)
        signature, version, count = _HEADER.unpack_from(data)
        if signature != b"DIRC" or version not in (2, 3, 4):
            raise GitError(
                f"{path} uses index version {version}, which modelbox cannot update; "
                "run `git update-index --index-version 2`"
            )
        # Offsets are saved only by :meth:`write` (under the repository lock): a read or a
        # refused command leaves .git as it found it.
        cached = self._cached_offsets(data, digest, count, version == 4)
        if cached is None and checking is not None:  # the entries are read now
            _confirm(checking, trailer, path)
            checking = None
        offsets, end, names = cached or self._walk(path, data, count, version == 4)
        link = None
        offset = end
        while offset < len(data) - _CHECKSUM:
            signature = data[offset : offset + 4]
            (size,) = struct.unpack_from(">I", data, offset + 4)
            if offset + 8 + size > len(data) - _CHECKSUM:
                raise GitError(f"{path} is truncated; run `git reset` to rebuild it")
            if signature == _SPARSE:
                raise GitError(
                    f"{path} is a sparse index, which modelbox cannot update; turn it off "
                    "with `git sparse-checkout disable`"
                )
            if signature == _LINK:
                link = bytes(data[offset + 8 : offset + 8 + size])
            offset += 8 + size
        if link is not None and version == 4:
            raise GitError(f"{path} is a split index of version 4, which modelbox cannot "
                           "update; run `git update-index --index-version 2`")
        if checking is not None:  # (only the index file itself is mapped, never a shared one)
            self._checking = (checking, trailer, path)
        return version, offsets, end, link, cached is not None, names

    def _load_split(self, version: int, data: _Bytes, offsets: array[int], own_end: int,
                    link: bytes) -> None:
        """Take in a split index: its shared index becomes ``_data`` and the file's own
        entries the overlay, as git's "Split index" section says."""
        corrupt = GitError(f"{self.path} has a corrupt link extension; remove it and run "
                           "`git reset` to rebuild it")
        try:
            base, deleted, replaced = _link_parts(link)
        except (struct.error, ValueError):
            raise corrupt from None
        if len(replaced) > len(offsets):
            raise corrupt
        if base != self._base:  # a shared index is named by its checksum: same name, same
            self._load_shared(base)  # bytes, already read and checked by this process
        base_offsets, base_data = self._offsets, self._bytes()
        if max(deleted, default=-1) >= len(base_offsets) or max(
                replaced, default=-1) >= len(base_offsets):
            raise corrupt  # a position past the shared index's end
        overlay: dict[Key, Overlaid] = {}
        for position in deleted:
            overlay[_entry_key(base_data, base_offsets[position])] = (position, None)
        for i, position in enumerate(replaced):
            key = _entry_key(base_data, base_offsets[position])
            start = offsets[i]
            stop = offsets[i + 1] if i + 1 < len(offsets) else own_end
            raw = bytes(data[start:stop])
            if key in overlay or _entry_key(data, start)[0]:
                raise corrupt  # replaced and deleted, or a replacement with a name
            named = _renamed(raw, key[0])
            if _entry_key(named, 0) != key:
                raise corrupt  # a replacement at another stage
            overlay[key] = (position, named)
        # Added entries are not looked up in the shared index (that would be a binary search
        # each): one that has the path of a shared entry overrides it, as in git, and a
        # write looks the shared entry up when it removes such a path.
        for i in range(len(replaced), len(offsets)):
            start = offsets[i]
            stop = offsets[i + 1] if i + 1 < len(offsets) else own_end
            key = _entry_key(data, start)
            if not key[0]:
                raise corrupt
            if key not in overlay:
                overlay[key] = (-1, bytes(data[start:stop]))
            else:  # the path of a deleted shared entry: a replacement, for the write
                overlay[key] = (overlay[key][0], bytes(data[start:stop]))
        self.version = max(version, self._base_version)
        self._overlay = overlay

    def _load_shared(self, base: bytes) -> None:
        """Read and check the shared index named ``base`` into ``_data`` and the offsets."""
        self._base_version = 2
        if base == _NO_BASE:
            self._data, self._offsets, self._end = b"", _offset_array(), 12
            self._base, self._offsets_kept = base, True
            return
        path = self.path.with_name(f"sharedindex.{base.hex()}")
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise GitError(f"{self.path} names the shared index {path.name}, which is "
                           "missing; remove the index and run `git reset`") from None
        if data[-_CHECKSUM:] != base:
            raise GitError(f"{path} is not the shared index its name says; remove "
                           f"{self.path} and run `git reset`")
        version, offsets, end, link, cached, names = self._parse(path, data)
        if names is not None:
            raise GitError(f"{path} is a shared index of version 4, which modelbox cannot "
                           f"update; remove {self.path} and run `git update-index "
                           "--index-version 2` then `git reset`")
        if link is not None:
            raise GitError(f"{path} links to another shared index; remove {self.path} "
                           "and run `git reset`")
        self._data, self._offsets, self._end = data, offsets, end
        self._base, self._base_version, self._offsets_kept = base, version, cached

    def _walk(self, path: Path, data: _Bytes, count: int,
              v4: bool) -> tuple[array[int], int, list[bytes] | None]:
        """The offset of every entry, and where the entries end: one pass over the file
        (and a version 4 index's names)."""
        if count * _ENTRY.size > len(data):  # a count no file this size can hold
            raise GitError(f"{path} is truncated; run `git reset` to rebuild it")
        if v4:
            return self._walk_v4(path, data, count)
        offsets = [0] * count
        offset = _HEADER.size
        try:
            for i in range(count):
                offsets[i] = offset
                flags = (data[offset + _FLAGS_AT] << 8) | data[offset + _FLAGS_AT + 1]
                name_at = offset + _ENTRY.size + (2 if flags & _EXTENDED else 0)
                length = flags & _NAME_MASK
                end = _nul(data, name_at) if length == _NAME_MASK else name_at + length
                offset += ((end - offset) // 8 + 1) * 8
        except (IndexError, ValueError):
            raise GitError(f"{path} is truncated; run `git reset` to rebuild it") from None
        if offset > len(data) - _CHECKSUM:
            raise GitError(f"{path} is truncated; run `git reset` to rebuild it")
        return _offset_array(offsets), offset, None

    @staticmethod
    def _walk_v4(path: Path, data: _Bytes, count: int) -> tuple[array[int], int, list[bytes]]:
        """:meth:`_walk` of a version 4 index: each name rebuilt from the one before."""
        offsets = [0] * count
        names: list[bytes] = [b""] * count
        offset, previous = _HEADER.size, b""
        try:
            for i in range(count):
                offsets[i] = offset
                strip, name_at = _read_varint(data, offset + _fixed_size(data, offset))
                end = _nul(data, name_at)
                if strip > len(previous):
                    raise ValueError("strips more than the name before has")
                previous = names[i] = previous[: len(previous) - strip] + data[name_at:end]
                offset = end + 1
        except (IndexError, ValueError):
            raise GitError(f"{path} is truncated or damaged; run `git reset` to rebuild "
                           "it") from None
        if offset > len(data) - _CHECKSUM:
            raise GitError(f"{path} is truncated; run `git reset` to rebuild it")
        return _offset_array(offsets), offset, names

    def _cached_offsets(self, data: _Bytes, content_sha: bytes, count: int, v4: bool,
                        ) -> tuple[array[int], int, list[bytes] | None] | None:
        """The offsets (and version 4 names) kept for exactly these bytes (``content_sha``:
        the SHA-1 of all but their checksum), or None (absent, stale or damaged)."""
        try:
            raw = self.offsets_path.read_bytes()
        except OSError:
            return None
        head_at = len(_CACHE_MAGIC)
        body_at = head_at + _CACHE_HEAD.size
        names_at = body_at + _ITEM * count
        if not raw.startswith(_CACHE_MAGIC) or len(raw) < names_at or (
                (len(raw) > names_at) != (v4 and count > 0)):
            return None
        checksum, cached_count, end, digest = _CACHE_HEAD.unpack_from(raw, head_at)
        body = memoryview(raw)[body_at:]
        if (checksum != content_sha or cached_count != count
                or hashlib.sha1(body).digest() != digest
                or not _HEADER.size <= end <= len(data) - _CHECKSUM):
            return None
        offsets = _offset_array()
        offsets.frombytes(body[: _ITEM * count])
        if count and offsets[0] != _HEADER.size:
            return None
        if not v4:
            return offsets, end, None
        names = raw[names_at:-1].split(b"\0") if count else []
        if len(names) != count or raw[-1:] not in (b"\0", b""):
            return None
        return offsets, end, names

    def _save_offsets(self, checksum: bytes, offsets: array[int], end: int,
                      names: list[bytes] | None) -> None:
        self._kept.value = None
        _store_offsets(self.offsets_path, (checksum, offsets, end, names))

    # -- entries -------------------------------------------------------------------------
    def _key_at(self, offset: int) -> Key:
        return _entry_key(self._data, offset)

    def _key_of(self, i: int) -> Key:
        """The key of entry ``i`` of a version 4 index (its name is kept, not in place)."""
        assert self._names is not None
        offset = self._offsets[i]
        return self._names[i], (self._data[offset + _FLAGS_AT] & 0x30) >> 4

    def _position(self, key: Key, lo: int = 0) -> tuple[int, bool]:
        """Where ``key`` is (or would go) among the file's entries, and whether it is there."""
        self._bytes()
        offsets = self._offsets
        if self._names is not None:
            count = len(offsets)
            at = bisect.bisect_left(range(count), key, lo, key=self._key_of)
            return at, at < count and self._key_of(at) == key
        at = bisect.bisect_left(offsets, key, lo, key=self._key_at)
        return at, at < len(offsets) and self._key_at(offsets[at]) == key

    def _raw(self, key: Key) -> bytes | None:
        if key in self._changes:
            return self._changes[key]
        if self._overlay and key in self._overlay:
            return self._overlay[key][1]
        at, found = self._position(key)
        if not found:
            return None
        stop = self._offsets[at + 1] if at + 1 < len(self._offsets) else self._end
        return bytes(self._bytes()[self._offsets[at] : stop])

    def get(self, path: str) -> IndexEntry | None:
        """The stage-0 entry for ``path``, or None (also None when the path is conflicted)."""
        raw = self._raw((path.encode(), 0))
        if raw is None:
            return None
        fields = _ENTRY.unpack_from(raw)
        return IndexEntry(
            sha=fields[10].hex(),
            mode=fields[6],
            size=fields[9],
            mtime_ns=fields[2] * 1_000_000_000 + fields[3],
            ino=fields[5],
        )

    def is_conflicted(self, path: str) -> bool:
        name = path.encode()
        return any(self._raw((name, stage)) is not None for stage in (1, 2, 3))

    def set(self, path: str, sha: str, st: os.stat_result, mode: int = 0o100644) -> None:
        """Record ``path`` as ``sha`` with the stat data of the file just written."""
        name = path.encode()
        mask = 0xFFFFFFFF
        head = _ENTRY.pack(
            int(st.st_ctime) & mask,
            st.st_ctime_ns % 1_000_000_000,
            int(st.st_mtime) & mask,
            st.st_mtime_ns % 1_000_000_000,
            st.st_dev & mask,
            st.st_ino & mask,
            mode,
            st.st_uid & mask,
            st.st_gid & mask,
            st.st_size & mask,
            bytes.fromhex(sha),
            min(len(name), _NAME_MASK),
        )
        body = head + name
        self._changes[(name, 0)] = body + b"\0" * (8 - len(body) % 8)

    def remove(self, path: str) -> None:
        name = path.encode()
        for stage in (0, 1, 2, 3):
            self._changes[(name, stage)] = None

    def _spliced(self, changes: dict[Key, bytes | None],
                 ) -> tuple[list[_Edit], _OffsetPlan, int]:
        """What ``changes`` do to the file's entries, as edits of ``_data`` (byte ranges
        replaced, in ascending order, never overlapping); the new offsets (runs of
        unchanged entries shifted, without a Python loop over them, when asked for) and
        where the new entries end."""
        data, offsets, end = self._bytes(), self._offsets, self._end
        count = len(offsets)
        edits: list[_Edit] = []
        new_offsets = _OffsetPlan(offsets)
        at = _HEADER.size  # where the next entry lands in the new file
        copied = 0  # entries of the old file before this one are placed
        for key in sorted(changes):
            raw = changes[key]
            position, found = self._position(key, copied)
            here = offsets[position] if position < count else end
            if position > copied:
                start = offsets[copied]
                new_offsets.run(copied, position, at - start)
                at += here - start
            copied = position + 1 if found else position
            if found or raw is not None:
                stop = (offsets[copied] if copied < count else end) if found else here
                edits.append((here, stop, raw or b""))
            if raw is not None:
                new_offsets.new(at)
                at += len(raw)
        if copied < count:
            start = offsets[copied]
            new_offsets.run(copied, count, at - start)
            at += end - start
        del data  # no view of the bytes may outlive this (they may be resized in place)
        return edits, new_offsets, at

    def _spliced_v4(self, changes: dict[Key, bytes | None],
                    ) -> tuple[list[_Edit], _OffsetPlan, int, list[bytes]]:
        """:meth:`_spliced` of a version 4 index, and the new names. An entry's name is
        stored against the name before it, so besides the changed entries the first
        unchanged entry after each change is encoded again; the runs after it are kept
        as they are."""
        data, offsets, end = self._bytes(), self._offsets, self._end
        names = self._names
        assert names is not None
        count = len(offsets)
        edits: list[_Edit] = []
        new_offsets = _OffsetPlan(offsets)
        new_names: list[bytes] = []
        at = _HEADER.size
        copied = 0
        previous = b""  # the name of the last entry placed
        moved = False  # the entry placed last is not the one before ``copied`` in the file

        def start_of(i: int) -> int:
            return offsets[i] if i < count else end

        def copy_to(position: int) -> None:
            nonlocal at, copied, previous, moved
            if position <= copied:
                return
            if moved:  # its name was stored against another entry: encode it again
                start = offsets[copied]
                fixed = data[start : start + _fixed_size(data, start)]
                raw = _compressed(fixed, names[copied], previous)
                edits.append((start, start_of(copied + 1), raw))
                new_offsets.new(at)
                new_names.append(names[copied])
                at += len(raw)
                copied += 1
                moved = False
            if position > copied:
                start = offsets[copied]
                new_offsets.run(copied, position, at - start)
                new_names.extend(names[copied:position])
                at += start_of(position) - start
            previous = names[position - 1]
            copied = position

        for key in sorted(changes):
            raw = changes[key]
            position, found = self._position(key, copied)
            copy_to(position)
            here = start_of(position)
            copied = position + 1 if found else position
            moved = moved or found
            entry = b""
            if raw is not None:
                entry = _compressed(raw[: _fixed_size(raw)], key[0], previous)
                new_offsets.new(at)
                new_names.append(key[0])
                at += len(entry)
                previous, moved = key[0], True
            if found or entry:
                edits.append((here, start_of(copied) if found else here, entry))
        copy_to(count)
        return edits, new_offsets, at, new_names

    def _in_place(self, edits: list[_Edit]) -> bool:
        """Whether ``edits`` are spliced into the entries held in memory rather than
        written around as pieces of them (:meth:`_pieces`)."""
        data = self._data
        return isinstance(data, bytearray) and len(data) == self._end and len(
            edits) <= _IN_PLACE

    def _pieces(self, edits: list[_Edit], count: int) -> list[_Chunk]:
        """The new entries as a new header and the runs of old entries (views, not copies)
        between the edits: what a process that read (or mapped) the index writes, without
        copying 12 MB into fresh memory first. Nothing in memory changes."""
        view = memoryview(self._bytes())
        out: list[_Chunk] = [_HEADER.pack(b"DIRC", self.version, count)]
        kept = _HEADER.size
        for start, stop, new in edits:
            out += (view[kept:start], new)
            kept = stop
        out.append(view[kept : self._end])
        interrupt("index-edited")
        return [part for part in out if len(part)]

    def _applied(self, edits: list[_Edit], count: int) -> bytearray:
        """The new entries (header included, no extensions, no checksum) from ``edits``.

        A writer that keeps publishing holds the entries as one ``bytearray`` and splices a
        few edits into it where they are (a ``memmove`` of the bytes after each, in C);
        many edits, or bytes just read from the file, are copied once into a new buffer.
        On any error after this, :meth:`_forget` must be called: the bytes have changed."""
        data, end = self._data, self._end
        if isinstance(data, bytearray) and len(data) == end and len(edits) <= _IN_PLACE:
            for start, stop, new in reversed(edits):  # later edits first: starts stay valid
                data[start:stop] = new
            out = data
        else:
            out = bytearray(_HEADER.size)
            view = memoryview(data)
            kept = _HEADER.size
            for start, stop, new in edits:
                out += view[kept:start]
                out += new
                kept = stop
            out += view[kept:end]
            view.release()
        interrupt("index-edited")
        _HEADER.pack_into(out, 0, b"DIRC", self.version, count)
        return out

    def _forget(self) -> None:
        """Drop the entries in memory after a write failed part-way (they may be neither
        the old file's nor the new one's): the next use reads the file again, and keeps
        the changes not written yet."""
        self._data, self._offsets, self._names, self._end = b"", _offset_array(), None, 12
        self._broken, self._checking = True, None
        self._kept.value = None  # it may describe the bytes just changed in place

    def write(self) -> None:
        """Write the index through ``index.lock`` and rename, as git does.

        A lock held by another process (a ``git status`` loop, an IDE) is waited for, with
        backoff, up to ``MODELBOX_INDEX_LOCK_TIMEOUT`` seconds (default 3); then
        IndexLockedError. A lock left by a modelbox process that died holding it is removed
        first (see :func:`clear_stale_lock`).
        """
        self._bytes()  # read the file again if a write failed part-way
        split = self.split_settings.enabled
        names: list[bytes] | None = None
        if self._names is not None:
            edits, plan, end, names = self._spliced_v4(self._changes)
        elif split or (split is None and self.is_split):
            self._write_split()
            return
        else:
            changes = self._changes
            if self._overlay:  # a split index written whole: its differences, then ours
                changes = {key: raw for key, (_, raw) in self._overlay.items()} | changes
            edits, plan, end = self._spliced(changes)
        sealed: list[_Part] = []
        touched: list[bool] = []
        kept: list[_Bytes] = []  # the new file's entries, as this view keeps them

        def build() -> list[_Part]:  # the entries change in place: once called, a raise
            touched.append(True)  # drops them (a Ctrl-C between two edits, a busy lock)
            if self._wrote or self._in_place(edits):
                entries = self._applied(edits, plan.count)
                parts: list[_Chunk] = [entries]
                kept.append(entries)
            else:
                parts = self._pieces(edits, plan.count)
            sealed.extend((*parts, _NO_HASH if self.skip_hash else _Sealing(parts)))
            return sealed

        def written(fd: int) -> None:  # pieces of the old entries: map the new file
            if not kept:
                mapped = _mapped(fd, end + _CHECKSUM)
                kept.append(mapped if mapped is not None else
                            bytearray().join(_chunks(sealed[:-1])))

        try:
            self._replace(build, spare=self.path.parent / "modelbox" / "index-spare",
                          meanwhile=plan.offsets, written=written)
        except BaseException:
            if touched:
                if sealed and isinstance(sealed[-1], _Sealing):
                    sealed[-1].result()  # its thread reads the entries: let it end first
                self._forget()
            raise
        data, seal, offsets = kept[0], sealed[-1], plan.offsets()
        del sealed[:]  # views of the old entries: let them go (and a mapped old file)
        checksum = seal.result() if isinstance(seal, _Sealing) else bytes(seal)
        # Without a checksum in the file, the offsets are keyed by the entries' SHA-1 all
        # the same, computed only when they are saved (about once a second in a loop).
        # (A later write changes ``data`` in place only after replacing this, or drops it.)
        key: bytes | Callable[[], bytes] = checksum
        if checksum == _NO_HASH:
            key = lambda: _sha1(data, end)  # noqa: E731
        # The entries stay in memory (or mapped), as they are in the file: a script writing
        # in a loop splices its next change into them.
        self._base, self._overlay = None, {}
        self._data, self._names = data, names
        self._offsets, self._end, self._changes = offsets, end, {}
        self._kept.keep((key, offsets, end, names))
        self._wrote = True

    def flush(self) -> None:
        """Save the offsets of the last write now (also done at garbage collection and
        exit; a process killed before only leaves them to be computed again)."""
        self._kept.flush()

    def _replace(self, build: Callable[[], Sequence[_Part]], spare: Path | None = None,
                 meanwhile: Callable[[], object] | None = None,
                 written: Callable[[int], None] | None = None) -> None:
        """Write what ``build`` returns (called before the lock is taken) as the index
        file, through ``index.lock``; ``meanwhile`` is called once the entries are
        written, while their checksum may still be computed, and ``written`` with the new
        file's descriptor (open for reading too) once all of it is.

        With ``spare``: the file the index replaces is kept there (a second name of it),
        and the next write's ``index.lock`` is that file again when no process has it open
        or mapped any more (:func:`_unused`): its blocks and cached pages are written over
        instead of a new 12 MB file allocated and the old one freed, which at 100,000
        entries costs more than the write itself. The lock is still taken by creating
        ``index.lock`` exclusively (a hard link is created only where no name exists) and
        still replaces the index by a rename, so readers see the old file or the new one.
        """
        lock = self.path.with_name(self.path.name + ".lock")
        # Built first: its checksum is computed while the lock is taken (a raise from
        # _acquire reaches the caller, which drops the entries it changed).
        parts = build()
        checked = _unused(spare) if spare is not None else None
        fd = _acquire(lock, None if spare is None or checked is None else (spare, checked))
        try:
            fault("index-locked")

            def aside() -> None:  # work that needs no bytes of the new file
                if spare is not None:
                    _retire(self.path, spare)
                if meanwhile is not None:
                    meanwhile()

            _write_all(fd, parts, aside)
            if written is not None:
                written(fd)
            os.close(fd)
            fd = -1
            fault("index-written")
            os.replace(lock, self.path)
        except BaseException:
            if fd >= 0:
                os.close(fd)
            lock.unlink(missing_ok=True)
            raise
        finally:
            _owner_file(lock).unlink(missing_ok=True)
        st = self.path.stat()
        self._stamp = (st.st_mtime_ns, st.st_size, st.st_ino)

    def _write_split(self) -> None:
        """Write a split index: the overlay, and a new shared index first when there is
        none yet or the overlay holds more than ``max_percent`` of the entries (git's
        rule, counting replaced entries as well as added ones)."""
        try:
            self._write_overlay()
        except BaseException:
            self._stamp = None  # the shared index may have moved on: read the file again
            raise

    def _write_overlay(self) -> None:
        overlay = dict(self._overlay)
        for key, raw in self._changes.items():
            if key in overlay and overlay[key][0] >= 0:
                position = overlay[key][0]
            else:
                at, found = self._position(key)
                position = at if found else -1
            if position < 0 and raw is None:
                overlay.pop(key, None)
            else:
                overlay[key] = (position, raw)
        replaced, removed, entries, added = self._sorted_overlay(overlay)
        stored = len(entries) + len(added)
        total = len(self._offsets) - len(removed) + len(added)
        percent = self.split_settings.max_percent
        if (self._base in (None, _NO_BASE) or percent == 0
                or (percent < 100 and total * percent < stored * 100)):
            self._write_shared({key: raw for key, (_, raw) in overlay.items()})
            overlay, replaced, removed, entries, added = {}, [], [], [], []
        else:
            assert self._base is not None
            with contextlib.suppress(OSError):  # in use: keep it from expiring
                os.utime(self.path.with_name(f"sharedindex.{self._base.hex()}"))
        assert self._base is not None
        link = self._base + _ewah(removed) + _ewah(replaced)
        parts: list[_Bytes] = [
            _HEADER.pack(b"DIRC", self.version, len(entries) + len(added)),
            b"".join(entries) + b"".join(added), _LINK + struct.pack(">I", len(link)) + link]
        _seal(parts)
        self._replace(lambda: parts)
        self._overlay, self._changes = overlay, {}
        if not self._offsets_kept:
            self._save_offsets(self._base, self._offsets, self._end, None)
            self._offsets_kept = True

    def _sorted_overlay(self, overlay: dict[Key, Overlaid],
                        ) -> tuple[list[int], list[int], list[bytes], list[bytes]]:
        """The split file's parts, in git's order: the shared positions replaced and
        deleted, the replacing entries (without their names) and the added entries."""
        replaced: list[int] = []
        removed: list[int] = []
        entries: list[bytes] = []
        added: list[bytes] = []
        stripped = self._stripped
        for key in sorted(overlay):
            position, raw = overlay[key]
            if raw is None:
                if position >= 0:
                    removed.append(position)
            elif position < 0:
                added.append(raw)
            else:
                replaced.append(position)
                bare = stripped.get(raw)
                if bare is None:
                    bare = stripped[raw] = _renamed(raw, b"")
                entries.append(bare)
        if len(stripped) > 2 * len(entries) + 64:  # drop entries replaced again since
            kept = set(entries)
            self._stripped = {raw: bare for raw, bare in stripped.items() if bare in kept}
        return replaced, removed, entries, added

    def _write_shared(self, changes: dict[Key, bytes | None]) -> None:
        """Write ``sharedindex.<checksum>``: every entry, as a flat index; it becomes
        ``_data``. Shared indexes unused for ``splitIndex.sharedIndexExpire`` go."""
        edits, plan, end = self._spliced(changes)
        try:
            data = self._applied(edits, plan.count)
            offsets = plan.offsets()
        except BaseException:
            self._forget()
            raise
        parts: list[_Bytes] = [data]
        checksum = _seal(parts)
        path = self.path.with_name(f"sharedindex.{checksum.hex()}")
        tmp = self.path.with_name(f"sharedindex_modelbox.{os.getpid()}.tmp")
        try:
            with open(tmp, "wb") as f:
                f.writelines(parts)
            os.replace(tmp, path)
        except OSError:
            tmp.unlink(missing_ok=True)
            self._forget()
            raise
        self._data, self._offsets, self._end = data, offsets, end
        self._base, self._base_version = checksum, self.version
        self._save_offsets(checksum, offsets, end, None)
        self._offsets_kept = True
        expire = self.split_settings.expire
        if expire is None:
            return
        now = time.time()
        for old in self.path.parent.glob("sharedindex.*"):
            with contextlib.suppress(OSError):
                if old != path and now - old.stat().st_mtime > expire:
                    old.unlink()

    def _bytes(self) -> _Bytes:
        """The entries, once the file they came from is known to be whole."""
        if self._broken:
            changes = self._changes
            self.reload()
            self._changes = changes
        if self._checking is not None:  # (a damaged file stays refused: kept, re-raised)
            _confirm(*self._checking)
            self._checking = None
        return self._data


# The index's SHA-1 (or how to compute it from the entries just written), the offsets,
# where the entries end, and a version 4 index's names.
_Offsets = tuple["bytes | Callable[[], bytes]", "array[int]", int, "list[bytes] | None"]


def _store_offsets(path: Path, kept: _Offsets) -> None:
    """Keep the offsets (and version 4 names) for the next process (temp file + rename;
    best effort: a read-only ``.git`` only means they are computed again)."""
    key, offsets, end, names = kept
    checksum = key() if callable(key) else key
    body = offsets.tobytes()
    if names:
        body += b"\0".join(names) + b"\0"
    head = _CACHE_HEAD.pack(checksum, len(offsets), end, hashlib.sha1(body).digest())
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(_CACHE_MAGIC + head + body)
        os.replace(tmp, path)
    with contextlib.suppress(OSError):
        tmp.unlink(missing_ok=True)


class _Kept:
    """The offsets of an index's last write, not saved yet: a write saves them only if
    the last save is ``SAVE_EVERY`` seconds old, so a script publishing in a loop saves
    them about once a second instead of after every write, and a process that writes
    now and then (or a single command) saves them at once. Holds no reference to its
    :class:`GitIndex`, so that the index can be collected and this saved then."""

    SAVE_EVERY = 1.0

    def __init__(self, path: Path) -> None:
        self.path = path
        self.value: _Offsets | None = None
        self._saved = -self.SAVE_EVERY  # monotonic time of the last save

    def keep(self, value: _Offsets) -> None:
        self.value = value
        if time.monotonic() - self._saved >= self.SAVE_EVERY:
            self.flush()

    def flush(self) -> None:
        value, self.value = self.value, None
        if value is not None:
            _store_offsets(self.path, value)
            self._saved = time.monotonic()


class _Sealing:
    """The checksum of an index's entries, computed in a thread of its own while the same
    bytes are written to the file (hashlib lets go of the GIL over large buffers): on two
    cores the write (~3 ms for 12 MB) costs nothing beside the SHA-1 (~8 ms). Also the
    check of a mapped index read, while the command works (:meth:`GitIndex._bytes`).
    Inline below ``THREADED``, where starting a thread costs more than it saves."""

    THREADED = 1 << 20

    def __init__(self, parts: Sequence[_Chunk]) -> None:
        self._digest: bytes | None = None
        self._thread: threading.Thread | None = None
        if sum(len(part) for part in parts) < self.THREADED:
            self._run(parts)
        else:
            self._thread = threading.Thread(target=self._run, args=(parts,),
                                            name="modelbox-index-sha1", daemon=True)
            self._thread.start()

    def _run(self, parts: Sequence[_Chunk]) -> None:
        digest = hashlib.sha1()
        for part in parts:
            digest.update(part)
        self._digest = digest.digest()

    def result(self) -> bytes:
        if self._thread is not None:
            self._thread.join()
        assert self._digest is not None
        return self._digest


_Part = _Chunk | _Sealing  # what an index file is written from: bytes, or its checksum


def _bad_checksum(path: Path) -> GitError:
    return GitError(f"{path} has a bad checksum; run `git reset` to rebuild it")


def _confirm(checking: _Sealing, claimed: bytes, path: Path) -> None:
    if checking.result() != claimed:
        raise _bad_checksum(path)


def _chunks(parts: Sequence[_Part]) -> list[_Chunk]:
    return [part for part in parts if not isinstance(part, _Sealing)]


def _mapped(fd: int, size: int) -> mmap.mmap | None:
    """The file open at ``fd`` mapped read-only when it is big enough to gain from that
    (``_MAP_FROM``) and this system maps files; None: read it instead. A mapped index is
    never written over while mapped: git replaces the file by a rename, and modelbox
    reuses an old index file only when no process has it open or mapped (:func:`_unused`);
    a program that truncated it in place would break git's readers too."""
    if not _MAPS or size < _MAP_FROM:
        return None
    try:
        return mmap.mmap(fd, 0, access=mmap.ACCESS_READ)
    except (OSError, ValueError):
        return None


def _sha1(data: _Bytes, end: int) -> bytes:
    """The SHA-1 of the first ``end`` bytes of ``data``, without copying them."""
    with memoryview(data) as view:
        return hashlib.sha1(view[:end]).digest()


def _seal(parts: list[_Bytes]) -> bytes:
    """Append an index file's checksum (SHA-1 of everything before it) to ``parts``."""
    digest = hashlib.sha1()
    for part in parts:
        digest.update(part)
    checksum = digest.digest()
    parts.append(checksum)
    return checksum


# -- index.lock: waiting for it, and telling our own dead lock from a live git's ------------
_BACKOFF_START, _BACKOFF_MAX = 0.005, 0.1
_RACE_NS = 100_000_000  # an owner record without an inode names a lock made within 0.1 s


def _owner_file(lock: Path) -> Path:
    """``index.lock.modelbox-owner``: "PID [INODE]" of the modelbox process holding the lock.

    Written before the lock is created (PID only) and again once it exists (with the lock's
    inode), removed after the rename; git ignores the file.
    """
    return lock.with_name(lock.name + ".modelbox-owner")


def _write_all(fd: int, parts: Sequence[_Part], aside: Callable[[], None]) -> None:
    """Write ``parts`` from the start of ``fd``, then cut the file there (a reused file may
    be longer); a checksum still being computed is waited for when its turn comes, after
    ``aside`` (called once, in any case) has run."""
    size = 0
    for part in parts:
        if isinstance(part, _Sealing):
            aside()
            aside = _nothing
        view = memoryview(part.result() if isinstance(part, _Sealing) else part)
        size += len(view)
        while view:
            view = view[os.write(fd, view):]
    os.ftruncate(fd, size)
    aside()


def _nothing() -> None:
    pass


def _unused(path: Path) -> tuple[int, int] | None:
    """Whether ``path`` is a regular file with no other name that no process has open or
    mapped: Linux grants a write lease only then (fcntl(2), F_SETLEASE), and mappings hold
    the file open (git maps the index while it reads it). The lease is let go at once: a
    file only reachable through ``path`` cannot be opened by anyone else afterwards.
    Returns the file's (device, inode), or None: in use, or no leases here (another
    system or file system), and then the file is never reused."""
    if not hasattr(fcntl, "F_SETLEASE"):
        return None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
            return None  # a live index (a write was cut short), or linked elsewhere
        fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_WRLCK)
        fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_UNLCK)
        return st.st_dev, st.st_ino
    except OSError:  # EAGAIN: open or mapped by someone; EINVAL etc.: no leases here
        return None
    finally:
        os.close(fd)


def _retire(index: Path, spare: Path) -> None:
    """Give the index about to be replaced a second name, ``spare`` (best effort: without
    it the next write makes a new file, as git does). An older spare that could not be
    reused (someone still reads it) is let go."""
    with contextlib.suppress(OSError):
        spare.unlink(missing_ok=True)
        if not hasattr(fcntl, "F_SETLEASE"):
            return
        st = index.lstat()
        if stat.S_ISREG(st.st_mode) and st.st_nlink == 1:
            spare.parent.mkdir(exist_ok=True)
            os.link(index, spare)


def _acquire(lock: Path, reuse: tuple[Path, tuple[int, int]] | None = None) -> int:
    """Create ``lock`` exclusively and return it open for writing: the file ``reuse``
    names under that name, if it is still the file :func:`_unused` checked, else a new
    one."""
    timeout = float(os.environ.get("MODELBOX_INDEX_LOCK_TIMEOUT", "3"))
    owner = _owner_file(lock)
    deadline = time.monotonic() + timeout
    delay = _BACKOFF_START
    while True:
        clear_stale_lock(lock)
        _record_owner(owner, f"{os.getpid()}\n")
        try:
            fd = -1
            if reuse is not None:
                spare, checked = reuse
                reuse = None  # checked once: a retry (after a wait) makes a new file
                if _linked(spare, lock):  # fails if the lock exists, as O_EXCL does
                    fd = os.open(lock, os.O_RDWR | os.O_NOFOLLOW)
                    st = os.fstat(fd)
                    if (st.st_dev, st.st_ino) != checked:  # not the file checked unused
                        os.close(fd)
                        fd = -1
                        lock.unlink()
                        continue
                    with contextlib.suppress(OSError):
                        spare.unlink()
            if fd < 0:
                fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            owner.unlink(missing_ok=True)
            if time.monotonic() >= deadline:
                raise IndexLockedError(str(lock), timeout) from None
            time.sleep(delay)
            delay = min(delay * 2, _BACKOFF_MAX)
            continue
        _record_owner(owner, f"{os.getpid()} {os.fstat(fd).st_ino}\n")
        return fd


def _linked(source: Path, name: Path) -> bool:
    """Create ``name`` as a hard link to ``source``; False if ``source`` is gone or the
    file system has no hard links. FileExistsError if ``name`` exists."""
    try:
        os.link(source, name)
    except FileExistsError:
        raise
    except OSError:
        return False
    return True


def _record_owner(owner: Path, text: str) -> None:
    """Replace the owner record whole: a ``kill -9`` between truncating the file and
    writing it again would leave an empty record once the lock exists, and a lock whose
    owner cannot be read is never cleared (every later write would wait, then fail)."""
    temporary = owner.with_name(f"{owner.name}.{os.getpid()}")
    temporary.write_text(text)
    os.replace(temporary, owner)


def clear_stale_lock(lock: Path) -> bool:
    """Remove ``lock`` if a modelbox process that is gone (``kill -9``) left it; True if so.

    The lock is ours only if the owner record names a dead process and either the lock's
    inode (recorded once the lock existed) or, when the process died before recording it,
    a creation time within 0.1 s of the record. A lock of a live git is never touched.
    """
    owner = _owner_file(lock)
    for temporary in lock.parent.glob(f"{owner.name}.*"):  # a record a kill -9 cut short
        with contextlib.suppress(ValueError):
            if not process_alive(int(temporary.name.rpartition(".")[2])):
                temporary.unlink(missing_ok=True)
    try:
        fields = owner.read_text().split()
        recorded = owner.stat().st_mtime_ns
        pid = int(fields[0])
        ino = int(fields[1]) if len(fields) > 1 else None
    except (OSError, ValueError, IndexError):
        return False
    if process_alive(pid):
        return False
    try:
        st = lock.stat()
    except FileNotFoundError:
        st = None
    ours = st is not None and (
        st.st_ino == ino if ino is not None else abs(st.st_ctime_ns - recorded) < _RACE_NS
    )
    if ours:
        lock.unlink(missing_ok=True)
    owner.unlink(missing_ok=True)
    return ours
