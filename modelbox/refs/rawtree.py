"""A tree object kept as its raw bytes, with where each entry starts: one entry is found
by a binary search in git's tree order, not by parsing every entry.

A batch at 100,000 versions writes one namespace tree (500 models, 16 KB) per version, and
the next version of that namespace reads it back to find one model in it, then finds that
model's entry again to splice in the new one: parsing the tree cost ~0.19 ms and the walk to
the entry ~0.12 ms of a version's ~2.5 ms. The entry starts are found by one walk the first
time and handed on from tree to tree: a splice that replaces entries with entries of the
same length (a new id under the same name, what most writes do to every tree above the
folder they change) leaves every entry where it was.

Only trees this process wrote are kept so (:class:`modelbox.refs.repo.GitRepo`); the entries
of a tree whose names are not in git's order (no git writes one; a hand-made object could)
are searched one by one, so a lookup finds what a parse would.
"""

from __future__ import annotations

import bisect
from array import array
from collections.abc import Iterator

from dulwich.objects import ObjectID, TreeEntry

__all__ = ["RawTree", "tree_key"]

_DIR_MODE = b"40000"  # as git writes it; any leading zeros are read the same
_SHA_BYTES = 20


def tree_key(name: bytes, is_dir: bool) -> bytes:
    """How git orders tree entries: a directory's name as if it ended with ``/``."""
    return name + b"/" if is_dir else name


class RawTree:
    """The raw bytes of the tree ``sha`` and, once asked for, where each entry starts."""

    __slots__ = ("_sorted", "_starts", "raw", "sha")

    def __init__(self, sha: str, raw: bytes, starts: array[int] | None = None,
                 in_order: bool = True) -> None:
        """``starts`` (and ``in_order``, whether the names are in git's order) when handed
        on from the tree this one was spliced from; found by a walk when first asked for."""
        self.sha, self.raw = sha, raw
        self._starts = starts
        self._sorted = in_order

    def handed_on(self, sha: str, raw: bytes) -> RawTree:
        """The tree ``raw``, spliced from this one without moving any entry."""
        return RawTree(sha, raw, self._starts, self._sorted)

    @property
    def weight(self) -> int:
        """Its size in memory, about: the bytes and one offset per ~32 of them."""
        return len(self.raw) + len(self.raw) // 4

    @property
    def starts(self) -> array[int]:
        """Where each entry starts (shared with the trees it is handed on to: never changed
        in place)."""
        if self._starts is None:
            self._starts = self._walk()
        return self._starts

    def _walk(self) -> array[int]:
        self._sorted = True
        raw, out = self.raw, array("Q")
        pos, size, previous = 0, len(self.raw), b""
        while pos < size:
            out.append(pos)
            space = raw.index(b" ", pos)
            nul = raw.index(b"\x00", space)
            key = tree_key(raw[space + 1 : nul], raw[pos:space].lstrip(b"0") == _DIR_MODE)
            if key <= previous:
                self._sorted = False
            previous = key
            pos = nul + 1 + _SHA_BYTES
        return out

    def _entry(self, i: int) -> tuple[bytes, bytes, int, int]:
        """(name, mode digits, start, end) of entry ``i``."""
        raw, start = self.raw, self.starts[i]
        space = raw.index(b" ", start)
        nul = raw.index(b"\x00", space)
        return raw[space + 1 : nul], raw[start:space], start, nul + 1 + _SHA_BYTES

    def _key(self, i: int) -> bytes:
        name, mode, _, _ = self._entry(i)
        return tree_key(name, mode.lstrip(b"0") == _DIR_MODE)

    def find(self, name: bytes) -> tuple[int, str, int, int] | None:
        """``(mode, sha, start, end)`` of the entry ``name``, or None."""
        count = len(self.starts)
        # In git's order a name sorts as itself (a file) or as ``name/`` (a folder); every
        # entry between those two starts with ``name`` ("a" < "a-b" < "a.b" < "a/").
        i = bisect.bisect_left(range(count), name, key=self._key) if self._sorted else 0
        while i < count:
            found, mode, start, end = self._entry(i)
            if found == name:
                return int(mode, 8), self.raw[end - _SHA_BYTES : end].hex(), start, end
            if self._sorted and not found.startswith(name):
                break
            i += 1
        return None

    def insert_at(self, key: bytes) -> int:
        """Where an entry sorting as ``key`` goes: before the first larger one."""
        count = len(self.starts)
        if self._sorted:
            i = bisect.bisect_right(range(count), key, key=self._key)
        else:
            i = next((j for j in range(count) if self._key(j) > key), count)
        return self.starts[i] if i < count else len(self.raw)

    # -- what CommitFiles reads of a tree (as of a dulwich Tree) --------------------------
    @property
    def id(self) -> bytes:
        return self.sha.encode("ascii")

    def __contains__(self, name: bytes) -> bool:
        return self.find(name) is not None

    def __getitem__(self, name: bytes) -> tuple[int, bytes]:
        found = self.find(name)
        if found is None:
            raise KeyError(name)
        return found[0], found[1].encode("ascii")

    def iteritems(self) -> Iterator[TreeEntry]:
        """The entries in git's order (as dulwich's ``Tree.iteritems`` gives them)."""
        entries = [self._entry(i) for i in range(len(self.starts))]
        if not self._sorted:
            entries.sort(key=lambda e: tree_key(e[0], e[1].lstrip(b"0") == _DIR_MODE))
        for name, mode, _, end in entries:
            yield TreeEntry(name, int(mode, 8),
                            ObjectID(self.raw[end - _SHA_BYTES : end].hex().encode()))
