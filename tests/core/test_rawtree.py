"""A tree kept raw (modelbox.refs.rawtree) answers as dulwich's parsed Tree does, and the
trees a batch splices one from another (their entry starts handed on) stay byte for byte
what dulwich builds from the same entries."""

from __future__ import annotations

import random

import pytest
from dulwich.objects import ObjectID, Tree

from modelbox.refs.rawtree import RawTree
from modelbox.refs.repo import _tree_splice
from modelbox.refs.trees import DIR_MODE

FILE = 0o100644
# Names that sort close together in git's order: "a" < "a-b" < "a.b" < "a/" (a folder "a")
# < "a0" < "ab", and names one a prefix of another.
NAMES = [b"a", b"a-b", b"a.b", b"a0", b"ab", b"b", b"ba", b"b-", b"m0003", b"m00030",
         b"_versions", b"_model.json", b"\xc3\xa9t\xc3\xa9", b"z", b"zz", b"v1", b"v10",
         b"v2"]


def sha(i: int) -> bytes:
    return b"%040x" % (i * 2654435761 % (1 << 160))


def dulwich_tree(entries: dict[bytes, tuple[int, bytes]]) -> Tree:
    tree = Tree()
    for name, (mode, hexsha) in entries.items():
        tree.add(name, mode, ObjectID(hexsha))
    return tree


def raw_tree(entries: dict[bytes, tuple[int, bytes]]) -> RawTree:
    tree = dulwich_tree(entries)
    return RawTree(tree.id.decode(), tree.as_raw_string())


@pytest.mark.parametrize("seed", range(40))
def test_lookups_and_listing_match_a_parsed_tree(seed: int) -> None:
    rng = random.Random(seed)
    entries = {name: (rng.choice([FILE, DIR_MODE, 0o100755]), sha(rng.randrange(1 << 30)))
               for name in rng.sample(NAMES, rng.randrange(0, len(NAMES)))}
    parsed, raw = dulwich_tree(entries), raw_tree(entries)
    for name in NAMES:
        assert (name in raw) == (name in parsed), name
        if name in parsed:
            assert raw[name] == parsed[name]
    assert list(raw.iteritems()) == list(parsed.iteritems())
    assert raw.id == parsed.id


def test_a_tree_out_of_git_s_order_is_searched_entry_by_entry() -> None:
    """No git writes one; a hand-made object could. A lookup still finds what a parse finds."""
    parts = [mode + b" " + name + b"\x00" + bytes.fromhex(sha(i).decode())
             for i, (mode, name) in enumerate([(b"100644", b"z"), (b"100644", b"b"),
                                               (b"040000", b"a.b"), (b"100644", b"a")])]
    raw = RawTree("0" * 40, b"".join(parts))
    parsed = Tree.from_raw_string(Tree.type_num, raw.raw)
    assert isinstance(parsed, Tree)
    for name in (b"z", b"b", b"a.b", b"a", b"c"):
        assert (name in raw) == (name in parsed)
    assert list(raw.iteritems()) == list(parsed.iteritems())


@pytest.mark.parametrize("seed", range(25))
def test_splices_handed_on_stay_what_dulwich_builds(seed: int) -> None:
    """Edit after edit, as a batch does: ids replaced in place (the starts handed on),
    entries added and removed (the starts found again), each result checked."""
    rng = random.Random(1000 + seed)
    entries = {name: (FILE, sha(i)) for i, name in enumerate(rng.sample(NAMES, 8))}
    current = raw_tree(entries)
    handed = 0
    for step in range(30):
        edits: dict[bytes, tuple[int, str] | None] = {}
        for name in rng.sample(NAMES, rng.randrange(1, 4)):
            roll = rng.random()
            if roll < 0.6 and name in entries:  # a new id under the same name and mode
                edits[name] = (entries[name][0], sha(step * 100 + len(edits)).decode())
            elif roll < 0.8:
                edits[name] = (rng.choice([FILE, DIR_MODE]), sha(step * 7).decode())
            else:
                edits[name] = None
        found = {n: e for n in edits if (e := current.find(n)) is not None}
        new_raw, in_place = _tree_splice(current, found, edits)
        for name, new in edits.items():
            if new is None:
                entries.pop(name, None)
            else:
                entries[name] = (new[0], new[1].encode())
        expected = dulwich_tree(entries)
        assert new_raw == expected.as_raw_string(), (step, edits)
        nxt = (current.handed_on(expected.id.decode(), new_raw) if in_place
               else RawTree(expected.id.decode(), new_raw))
        if in_place:
            assert nxt.starts is current.starts
            handed += 1
        for name in NAMES:
            assert (name in nxt) == (name in expected)
            if name in expected:
                assert nxt[name] == expected[name]
        current = nxt
    assert handed > 0  # the starts were handed on at least once
