"""``packed-refs`` read at the speed of a regular expression, not of a Python loop per ref.

dulwich re-reads the whole ``packed-refs`` file whenever a ref is not loose, and every
``set_if_equals`` (each write's branch update) reads it too. It checks each line's name
with a Python loop over its characters, ~12 µs a ref: 21 ms per command at the 100k
benchmark registry's 1,667 tag refs (measured; 10,000 tag refs would be ~0.12 s), paid by
``resolve`` and by every write. git itself reads the file with a binary search.

:class:`PackedRefsReader` gives the same answer as dulwich's own reader for every file
whose lines are all plainly well formed (a 40- or 64-hex id, then ``refs/`` and a name of
``[A-Za-z0-9_./+@=,-]``, with none of ``..``, ``.lock``, ``/.``, ``//``, ``@{`` or a
trailing ``/`` or ``.`` anywhere in the file); any other line (a strange name, a peeled
line without the header that allows it) sends the whole file to dulwich, which checks each
name with git's full rules and refuses what git refuses, and whose result is then kept
until the file changes.

A file whose header says ``sorted`` (git has written that trait since 2.15) is not parsed
until something needs all of it: looking up one name (each write's branch update asks
for the branch and its parent folders) or listing one prefix (a model's tag refs) is a
binary search over the file's lines, as git's own reader does, each line found being
checked as the whole-file path checks it. Listing everything, peeling or rewriting the
file parses it whole. 5 ms of a cold write at the 100k benchmark registry's 1,668 tag
refs, 0.05 ms now. Removing a packed ref (``untag``) cuts its lines out under the file's
lock, as git does, so the header and its ``sorted`` stay (dulwich's own removal writes a
header without it).
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import ItemsView, Iterator, KeysView, Mapping, ValuesView

from dulwich.file import GitFile
from dulwich.objects import ObjectID
from dulwich.refs import DiskRefsContainer, Ref

from modelbox.refs.refnames import CHARACTERS, FORBIDDEN, is_plain

__all__ = ["PackedRefsReader", "SortedPackedRefs", "parse", "use_fast_packed_refs"]

# A ref line, and the peeled line that may follow it ("^" and the id a tag points to).
_ENTRY = re.compile(
    rb"^([0-9a-f]{40}(?:[0-9a-f]{24})?) (refs/" + CHARACTERS + rb"+)\n"
    rb"(?:\^([0-9a-f]{40}(?:[0-9a-f]{24})?)\n)?",
    re.MULTILINE,
)
# What git's rules forbid of names made of those characters, a trailing "/" or "." too;
# checked over the whole file at once (a comment line may hold them too: the strict reader
# then decides).
_FORBIDDEN = (*FORBIDDEN, b"/\n", b".\n")
_Parsed = tuple[dict[Ref, ObjectID], dict[Ref, ObjectID]]


def parse(data: bytes) -> _Parsed | None:
    """(ref -> id, ref -> peeled id) of a ``packed-refs`` file's bytes, or None when a
    line is not plainly well formed (the caller's strict reader decides about those)."""
    if data and not data.endswith(b"\n"):
        data += b"\n"
    if any(bad in data for bad in _FORBIDDEN):
        return None
    entries = _ENTRY.findall(data)
    peeled_lines = sum(1 for _, _, peeled in entries if peeled)
    comments = data.count(b"\n#") + data.startswith(b"#")
    # Every line is a comment or was matched: a line the pattern skipped is not plain.
    if len(entries) + peeled_lines + comments != data.count(b"\n"):
        return None
    header = data[: data.find(b"\n")] if data.startswith(b"# pack-refs") else b""
    if peeled_lines and b" peeled" not in header:
        return None  # dulwich refuses peeled lines the header does not announce
    packed = {Ref(name): ObjectID(sha) for sha, name, _ in entries}
    if len(packed) != len(entries):
        return None  # a name twice
    peeled = {Ref(name): ObjectID(tag) for _, name, tag in entries if tag}
    return packed, peeled


def sorted_header(data: bytes) -> bool:
    """Whether ``data`` can be searched: whole lines under a header announcing ``peeled``
    and ``sorted`` ones. What :func:`parse` checks over the whole file is checked on each
    line the search finds (scanning 200 KB for each forbidden sequence took ~1.3 ms)."""
    header = data[: data.find(b"\n") + 1]
    return (header.startswith(b"# pack-refs with:") and b" peeled" in header
            and b" sorted" in header and data.endswith(b"\n"))


class SortedPackedRefs(Mapping[Ref, ObjectID]):
    """A sorted ``packed-refs`` file searched, not parsed: what dulwich's readers get from
    :meth:`PackedRefsReader.get_packed_refs` until one of them needs every ref (then
    :meth:`whole`, the file parsed, answers for good)."""

    def __init__(self, owner: PackedRefsReader, data: bytes) -> None:
        self._owner = owner
        self._data = data
        self._start = data.find(b"\n") + 1
        self._all: dict[Ref, ObjectID] | None = None

    def _record(self, at: int) -> tuple[bytes, int, int]:
        """The name of the record line at ``at``, where it ends, where the next one starts."""
        end = self._data.find(b"\n", at)
        after = end + 1
        if self._data.startswith(b"^", after):
            after = self._data.find(b"\n", after) + 1
        return self._data[self._data.find(b" ", at, end) + 1 : end], end, after

    def _line_start(self, lo: int, at: int) -> int:
        """The start of the record (a ref line, not its ``^`` line) at or before ``at``."""
        start = max(self._data.rfind(b"\n", lo, at) + 1, lo)
        if self._data.startswith(b"^", start):
            start = max(self._data.rfind(b"\n", lo, start - 1) + 1, lo)
        return start

    def _lower_bound(self, name: bytes) -> int:
        """Where the first record whose name is not below ``name`` starts."""
        lo, hi = self._start, len(self._data)
        while lo < hi:
            at = self._line_start(lo, (lo + hi) // 2)
            found, _, after = self._record(at)
            if found < name:
                lo = after
            else:
                hi = at
        return lo

    def _entry(self, at: int) -> tuple[bytes, bytes, bytes | None]:
        """(sha, name, peeled) of the record at ``at``, checked as :func:`parse` checks it."""
        match = _ENTRY.match(self._data, at)
        if match is None or not is_plain(match.group(2)):
            raise _NotPlainError
        return match.group(1), match.group(2), match.group(3)

    def lookup(self, name: bytes) -> tuple[bytes, bytes | None] | None:
        """(sha, peeled sha) of ``name``, or None if it is not packed."""
        found = self.span(name)
        if found is None:
            return None
        sha, _, peeled = self._entry(found[0])
        return sha, peeled

    def span(self, name: bytes) -> tuple[int, int] | None:
        """Where ``name``'s record (its line and any ``^`` line) starts and where the
        next one does, or None if it is not packed."""
        at = self._lower_bound(name)
        if at >= len(self._data):
            return None
        found, _, after = self._record(at)
        if found != name:
            return None
        self._entry(at)  # the line checked as parse() checks it: _NotPlainError if not
        return at, after

    def under(self, prefix: bytes) -> Iterator[bytes]:
        """The packed names that start with ``prefix``, in order."""
        at = self._lower_bound(prefix)
        while at < len(self._data):
            found, _, after = self._record(at)
            if not found.startswith(prefix):
                return
            yield self._entry(at)[1]
            at = after

    def whole(self) -> dict[Ref, ObjectID]:
        """Every packed ref: the file parsed (then every later answer is the parse's)."""
        if self._all is None:
            self._all = self._owner.parse_whole()
        return self._all

    def get(self, key: Ref, default: ObjectID | None = None) -> ObjectID | None:  # type: ignore[override]
        if self._all is None:
            try:
                found = self.lookup(key)
            except _NotPlainError:
                pass
            else:
                return default if found is None else ObjectID(found[0])
        return self.whole().get(key, default)

    def __getitem__(self, key: Ref) -> ObjectID:
        value = self.get(key)
        if value is None:
            raise KeyError(key)
        return value

    def __contains__(self, key: object) -> bool:
        return isinstance(key, bytes) and self.get(Ref(key)) is not None

    def __iter__(self) -> Iterator[Ref]:
        return iter(self.whole())

    def __len__(self) -> int:
        return len(self.whole())

    def copy(self) -> dict[Ref, ObjectID]:
        return self.whole().copy()

    def keys(self) -> KeysView[Ref]:
        return self.whole().keys()

    def items(self) -> ItemsView[Ref, ObjectID]:
        return self.whole().items()

    def values(self) -> ValuesView[ObjectID]:
        return self.whole().values()


class _NotPlainError(Exception):
    """A line found by the search that :func:`parse` would not take."""


class PackedRefsReader(DiskRefsContainer):
    """dulwich's refs on disk, with :func:`parse` reading ``packed-refs`` first, or a
    sorted file searched (:class:`SortedPackedRefs`)."""

    _fast_key: tuple[int, int, int, int, int] | None = None
    _sorted: SortedPackedRefs | None = None
    _sorted_key: tuple[int, int, int, int, int] | None = None

    def get_packed_refs(self) -> dict[Ref, ObjectID]:
        return self._packed(search=True)  # type: ignore[return-value]

    def parse_whole(self) -> dict[Ref, ObjectID]:
        """Every packed ref (the file parsed, and kept as dulwich keeps its own)."""
        return self._packed(search=False)  # type: ignore[return-value]

    def get_peeled(self, name: Ref) -> ObjectID | None:
        self.parse_whole()  # dulwich's answer reads its own caches, filled by the parse
        return super().get_peeled(name)

    def subkeys(self, base: Ref) -> set[Ref]:
        packed = self.get_packed_refs()
        if not isinstance(packed, SortedPackedRefs):
            return super().subkeys(base)
        out: set[Ref] = set()
        for key in self._iter_loose_refs(base):
            if key.startswith(base):
                out.add(Ref(key[len(base) :].strip(b"/")))
        try:
            names = list(packed.under(base))
        except _NotPlainError:
            return super().subkeys(base)
        out.update(Ref(key[len(base) :].strip(b"/")) for key in names)
        return out

    def _remove_packed_ref(self, name: Ref) -> None:
        """Cut ``name``'s record out of a sorted ``packed-refs``, under the file's lock, as
        git does: the header stays, and with it the search. dulwich's own removal writes
        its own header, without ``sorted``, so every later write would parse the whole
        file until git packs the refs again. Any other file: dulwich's removal."""
        path = os.path.join(self.path, b"packed-refs")
        if not os.path.exists(path):
            return
        handle = GitFile(path, "wb")
        found = None
        try:
            try:
                with open(path, "rb") as current:
                    data = current.read()
            except FileNotFoundError:
                return  # removed since (by hand): nothing is packed
            if sorted_header(data):
                with contextlib.suppress(_NotPlainError):
                    found = SortedPackedRefs(self, data).span(name)
                    if found is None:
                        return  # not packed: nothing to cut
            if found is not None:
                handle.write(data[: found[0]])
                handle.write(data[found[1] :])
                handle.close()
        finally:
            if not handle.closed:
                handle.abort()
            self._invalidate()
            self._fast_key = self._sorted = self._sorted_key = None
        if found is None:  # not sorted, or a line only dulwich's strict reader may judge
            super()._remove_packed_ref(name)

    def _packed(self, *, search: bool) -> Mapping[Ref, ObjectID]:
        path = os.path.join(self.path, b"packed-refs")
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return super().get_packed_refs()
        # The fields git compares before it trusts a cached file (a rewrite is a rename
        # onto it: a new inode, and new times).
        key = (st.st_ino, st.st_dev, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        if self._packed_refs is not None and self._fast_key == key:
            return self._packed_refs
        if search and self._sorted is not None and self._sorted_key == key:
            return self._sorted
        try:
            with open(path, "rb") as handle:
                data = handle.read()
        except OSError:
            return super().get_packed_refs()
        if search and sorted_header(data):
            self._sorted, self._sorted_key = SortedPackedRefs(self, data), key
            return self._sorted
        parsed = parse(data)
        if parsed is None:
            # dulwich's strict read, kept for this very file as its own cache would be: a
            # valid name the pattern does not take (non-ASCII, say) must not make every
            # later read (each ref a sync writes) read the whole file again.
            self._invalidate()
            try:
                strict = super().get_packed_refs()
            except Exception:
                self._invalidate()  # never serve what a refused file half filled
                self._fast_key = None
                raise
            self._fast_key = key
            return strict
        # dulwich's own cache, filled as its reader fills it, so that its writers
        # (add_packed_refs, a packed ref's removal) and get_peeled read the same state.
        self._packed_refs, self._peeled_refs = parsed
        if hasattr(self, "_packed_refs_key"):
            self._packed_refs_key = key
        self._fast_key = key
        return self._packed_refs

    def _invalidate(self) -> None:
        self._packed_refs = None
        self._peeled_refs = None
        if hasattr(self, "_packed_refs_key"):
            self._packed_refs_key = None


def use_fast_packed_refs(refs: object) -> None:
    """Make a dulwich ``DiskRefsContainer`` read ``packed-refs`` with :func:`parse`
    (any other refs container, a reftable one say, is left as it is)."""
    if type(refs) is DiskRefsContainer:
        refs.__class__ = PackedRefsReader
