"""``packed-refs`` read by modelbox.refs.packedrefs: whatever the file holds, the refs (or the
refusal) are those dulwich's own strict reader gives, and a file git rewrites is read anew."""

from __future__ import annotations

import random
import shutil
import subprocess
from pathlib import Path

import pytest
from core_helpers import git_out
from dulwich.objects import ObjectID
from dulwich.refs import Ref
from dulwich.repo import Repo

from modelbox.refs.packedrefs import PackedRefsReader, SortedPackedRefs, parse
from modelbox.refs.repo import GitRepo

SHA = "1" * 40


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A repository with branches, lightweight and annotated tags, all packed by git."""
    root = tmp_path_factory.mktemp("packed")
    path = root / "r"
    git_out(root, "init", "-q", "-b", "main", str(path))
    git_out(path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q",
            "--allow-empty", "-m", "one")
    head = git_out(path, "rev-parse", "HEAD").strip()
    git_out(path, "-c", "user.name=t", "-c", "user.email=t@t", "tag", "-a", "-m", "tag",
            "refs-0/v1.0.0")
    tag_sha = git_out(path, "rev-parse", "refs/tags/refs-0/v1.0.0").strip()
    script = "".join(
        f"create refs/heads/team{i % 3}/b-{i}.x_{i} {head}\n"
        f"create refs/tags/light/{i} {head}\n"
        + (f"create refs/tags/refs-{i}/v1.0.{i} {tag_sha}\n" if i else "")
        for i in range(30)
    )
    subprocess.run(["git", "update-ref", "--stdin"], cwd=path, input=script, text=True,
                   check=True)
    git_out(path, "pack-refs", "--all")
    return path


@pytest.fixture
def repo(template: Path, tmp_path: Path) -> Path:
    shutil.copytree(template, tmp_path / "r", symlinks=True)
    return tmp_path / "r"


Read = tuple[dict[bytes, bytes], dict[bytes, bytes | None]] | str


def strict(path: Path) -> Read:
    """dulwich's own reader (a plain Repo's refs are never swapped): refs and peeled ids,
    or the name of what it raised."""
    refs = Repo(str(path)).refs
    try:
        packed = {bytes(k): bytes(v) for k, v in refs.get_packed_refs().items()}
    except Exception as exc:  # the refusal itself is what is compared
        return type(exc).__name__
    return packed, {name: refs.get_peeled(Ref(name)) for name in packed}


def ours(path: Path) -> Read:
    refs = GitRepo.open(path).raw.refs
    assert isinstance(refs, PackedRefsReader)
    try:
        packed = {bytes(k): bytes(v) for k, v in refs.get_packed_refs().items()}
    except Exception as exc:
        return type(exc).__name__
    return packed, {name: refs.get_peeled(Ref(name)) for name in packed}


def test_a_file_git_packed_is_read_by_the_fast_path_as_dulwich_reads_it(repo: Path) -> None:
    data = (repo / ".git" / "packed-refs").read_bytes()
    fast = parse(data)
    assert fast is not None, "git's own file must not need the strict reader"
    assert len(fast[0]) == 91 and len(fast[1]) == 30  # main, 30 + 30 + 30 tags; 30 peeled
    assert ours(repo) == strict(repo)
    peeled = git_out(repo, "rev-parse", "refs/tags/refs-7/v1.0.7^{commit}").strip()
    assert git_out(repo, "cat-file", "-t", "refs/tags/refs-7/v1.0.7").strip() == "tag"
    assert fast[1][Ref(b"refs/tags/refs-7/v1.0.7")].decode() == peeled


def test_refs_git_rewrites_are_read_again(repo: Path) -> None:
    grepo = GitRepo.open(repo)
    head = grepo.ref("refs/heads/main")
    assert grepo.ref("refs/heads/team1/b-1.x_1") == head
    git_out(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q",
            "--allow-empty", "-m", "two")
    moved = git_out(repo, "rev-parse", "HEAD").strip()
    git_out(repo, "update-ref", "refs/heads/team1/b-1.x_1", moved)
    git_out(repo, "update-ref", "-d", "refs/heads/team2/b-2.x_2")
    git_out(repo, "pack-refs", "--all")
    assert grepo.ref("refs/heads/team1/b-1.x_1") == moved
    assert grepo.ref("refs/heads/team2/b-2.x_2") is None


def test_a_packed_write_keeps_the_peeled_ids_git_reads(repo: Path) -> None:
    grepo = GitRepo.open(repo)
    grepo.raw.refs.add_packed_refs({Ref(b"refs/modelbox/x/y"): ObjectID(b"2" * 40)})
    shown = git_out(repo, "show-ref", "--dereference", "refs-3/v1.0.3")
    assert shown.count("\n") == 2  # the tag and its ^{} line
    assert ours(repo) == strict(repo)
    assert b"refs/modelbox/x/y" in strict(repo)[0]


HOSTILE = [
    "refs/heads/a..b",          # git: no ".."
    "refs/heads/x.lock",        # no component ending in .lock
    "refs/heads/.hidden",       # no component starting with a dot
    "refs/heads/end.",          # no trailing dot
    "refs/heads/dir/",          # no trailing slash
    "refs/heads//double",       # no empty component
    "refs/heads/sp ace",        # no space
    "refs/heads/co:lon",        # no colon
    "refs/heads/a@{1}",         # no @{
    "refs/heads/back\\slash",   # no backslash
    "refs/heads/tab\there",     # no control character
    "refs/heads/star*",         # no glob character
    "HEAD",                     # not under refs/ and no slash
]


@pytest.mark.parametrize("name", HOSTILE)
def test_a_name_git_refuses_is_never_taken_by_the_fast_path(repo: Path, name: str) -> None:
    packed = repo / ".git" / "packed-refs"
    packed.write_bytes(packed.read_bytes() + f"{SHA} {name}\n".encode())
    assert parse(packed.read_bytes()) is None
    assert ours(repo) == strict(repo)


@pytest.mark.parametrize("name", ["refs/heads/feat+x", "refs/heads/me@host",
                                  "refs/tags/a=b,c"])
def test_names_git_allows_with_plus_at_equals_comma_take_the_fast_path(
        repo: Path, name: str) -> None:
    packed = repo / ".git" / "packed-refs"
    packed.write_bytes(packed.read_bytes() + f"{SHA} {name}\n".encode())
    assert parse(packed.read_bytes()) is not None
    assert ours(repo) == strict(repo)


def test_a_file_only_the_strict_reader_takes_is_read_once_until_it_changes(
        repo: Path) -> None:
    """A valid name outside the pattern (non-ASCII) costs the strict read once, not at
    every read of a ref (a sync writing 1,667 refs read the whole file 1,667 times)."""
    packed = repo / ".git" / "packed-refs"
    packed.write_bytes(packed.read_bytes() + f"{SHA} refs/heads/caf\u00e9\n".encode())
    assert parse(packed.read_bytes()) is None
    refs = GitRepo.open(repo).raw.refs
    assert isinstance(refs, PackedRefsReader)
    first = refs.parse_whole()
    assert Ref("refs/heads/caf\u00e9".encode()) in first
    assert refs.parse_whole() is first  # the same file: dulwich's read, kept
    git_out(repo, "update-ref", "-d", "refs/heads/team0/b-0.x_0")  # git rewrites it
    again = refs.parse_whole()
    assert again is not first and Ref(b"refs/heads/team0/b-0.x_0") not in again
    assert Ref("refs/heads/caf\u00e9".encode()) in again


def test_a_refused_file_is_refused_at_every_read(repo: Path) -> None:
    packed = repo / ".git" / "packed-refs"
    packed.write_bytes(packed.read_bytes() + f"{SHA} refs/heads/a..b\n".encode())
    refs = GitRepo.open(repo).raw.refs
    assert isinstance(refs, PackedRefsReader)
    for _ in range(2):  # never the half-filled dict the first refusal left behind
        with pytest.raises(Exception, match="ref"):
            refs.parse_whole()
        with pytest.raises(Exception, match="ref"):
            list(refs.get_packed_refs())  # a listing reads it whole


@pytest.mark.parametrize("tail", [
    f"^{SHA}\n^{SHA}\n",           # two peeled lines for one ref
    f"{SHA[:39]} refs/heads/short\n",
    f"{'AB' * 20} refs/heads/upper\n",
    f"{SHA}  refs/heads/two-spaces\n",
    f"{SHA} refs/heads/dup\n{SHA} refs/heads/dup\n",
    "garbage\n",
])
def test_a_malformed_line_goes_to_the_strict_reader(repo: Path, tail: str) -> None:
    packed = repo / ".git" / "packed-refs"
    packed.write_bytes(packed.read_bytes() + tail.encode())
    assert parse(packed.read_bytes()) is None
    assert ours(repo) == strict(repo)


def test_peeled_lines_without_the_header_that_allows_them(repo: Path) -> None:
    packed = repo / ".git" / "packed-refs"
    lines = packed.read_bytes().split(b"\n", 1)[1]  # the header gone
    packed.write_bytes(lines)
    assert parse(lines) is None
    assert ours(repo) == strict(repo)


def test_random_files_read_as_the_strict_reader_reads_them(tmp_path: Path) -> None:
    """Files of well-formed lines, mixed with hostile names and odd lines: same refs, or
    the same refusal."""
    rng = random.Random(17)
    pieces = ["team", "a", "m0001", "v1.0", "x-y", "b_c", ".", "..", "lock", ".lock",
              "", "é", " ", "~", "^"]
    path = tmp_path / "r"
    git_out(tmp_path, "init", "-q", str(path))
    packed = path / ".git" / "packed-refs"
    fast_taken = 0
    for _ in range(300):
        lines = ["# pack-refs with: peeled fully-peeled sorted "] if rng.random() < .8 else []
        for _ in range(rng.randrange(1, 8)):
            parts = [rng.choice(pieces[:6]) if rng.random() < .9 else rng.choice(pieces)
                     for _ in range(rng.randrange(1, 4))]
            sha = "".join(rng.choice("0123456789abcdef") for _ in range(40))
            lines.append(f"{sha} refs/{'/'.join(parts)}")
            if rng.random() < .3:
                lines.append(f"^{sha[::-1]}")
        packed.write_bytes(("\n".join(lines) + "\n").encode())
        fast_taken += parse(packed.read_bytes()) is not None
        assert ours(path) == strict(path), packed.read_text()
    assert fast_taken > 100  # the fast path is what most of these files took


# -- a sorted file is searched, not parsed ---------------------------------------------------
def _names_around(names: list[bytes]) -> list[bytes]:
    """Every name, and names that are not there: before, between and after them, and
    each one's folders (what a branch update asks about)."""
    out = set(names) | {b"refs/", b"refs/a", b"refs/zzz", b"refs/heads/main0", b"\x00"}
    for name in names:
        out |= {name + b"0", name[:-1], name + b"/x"}
        parts = name.split(b"/")
        out |= {b"/".join(parts[:k]) for k in range(1, len(parts))}
    return sorted(out)


def test_a_sorted_file_is_searched_as_its_parse_reads_it(repo: Path) -> None:
    packed = repo / ".git" / "packed-refs"
    data = packed.read_bytes()
    assert b" sorted" in data.split(b"\n", 1)[0]
    full, peeled = parse(data) or ({}, {})
    refs = GitRepo.open(repo).raw.refs
    assert isinstance(refs, PackedRefsReader)
    searched = refs.get_packed_refs()
    assert isinstance(searched, SortedPackedRefs)
    for name in _names_around(list(full)):
        found = searched.lookup(name)
        assert found == ((full[Ref(name)], peeled.get(Ref(name)))
                         if name in full else None), name
        assert searched.get(Ref(name)) == full.get(Ref(name))
        assert (name in searched) == (name in full)
    for base in (b"refs", b"refs/heads", b"refs/heads/team1", b"refs/tags/refs-1",
                 b"refs/tags/light", b"refs/nothing", b"refs/tags/refs-2/v1.0.2"):
        assert refs.subkeys(Ref(base)) == Repo(str(repo)).refs.subkeys(Ref(base)), base
    assert refs._packed_refs is None  # none of it parsed the file
    assert dict(searched.items()) == full  # listing it does


def test_a_branch_update_and_a_prefix_listing_parse_nothing(repo: Path) -> None:
    grepo = GitRepo.open(repo)
    head = grepo.ref("refs/heads/main")
    assert head is not None
    git_out(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q",
            "--allow-empty", "-m", "two")
    moved = git_out(repo, "rev-parse", "HEAD").strip()
    git_out(repo, "update-ref", "refs/heads/main", head)
    git_out(repo, "pack-refs", "--all")  # main packed, at `head`
    grepo = GitRepo.open(repo)
    grepo.update_ref("refs/heads/team1/b-1.x_1", head, moved, "move a packed branch")
    assert set(grepo.refs_under("refs/heads/team2/")) == {
        f"refs/heads/team2/b-{i}.x_{i}" for i in range(2, 30, 3)}
    refs = grepo.raw.refs
    assert isinstance(refs, PackedRefsReader)
    assert refs._packed_refs is None
    assert git_out(repo, "rev-parse", "refs/heads/team1/b-1.x_1").strip() == moved
    assert ours(repo) == strict(repo)


def test_a_found_line_the_pattern_refuses_is_read_by_the_strict_reader(repo: Path) -> None:
    """git sorts a non-ASCII name into place: the search finds it, its line is not plain,
    and the whole file goes to dulwich, as a parse would send it."""
    head = git_out(repo, "rev-parse", "HEAD").strip()
    git_out(repo, "update-ref", "refs/heads/caf\u00e9", head)
    git_out(repo, "pack-refs", "--all")
    refs = GitRepo.open(repo).raw.refs
    assert isinstance(refs, PackedRefsReader)
    name = Ref("refs/heads/caf\u00e9".encode())
    assert refs.get_packed_refs().get(name) == head.encode()
    assert refs._packed_refs is not None  # read whole, by the strict reader
    assert ours(repo) == strict(repo)


@pytest.mark.parametrize("name", [n for n in HOSTILE if n.startswith("refs/") and " " not in n])
def test_a_found_name_git_refuses_is_refused_as_the_strict_reader_refuses_it(
        repo: Path, name: str) -> None:
    """A hostile name sorted into place: the search finds its line, which the pattern or
    git's name rules refuse, and the whole file goes to dulwich (whatever it says)."""
    packed = repo / ".git" / "packed-refs"
    header, _, body = packed.read_bytes().partition(b"\n")
    records = body.decode().replace("\n^", "\t^").splitlines()
    records.append(f"{SHA} {name}")
    text = "\n".join(sorted(records, key=lambda r: r.split("\t")[0].split(" ", 1)[1]))
    packed.write_bytes(header + b"\n" + text.replace("\t^", "\n^").encode() + b"\n")
    assert parse(packed.read_bytes()) is None
    refs = GitRepo.open(repo).raw.refs
    try:
        got: object = refs.get_packed_refs().get(Ref(name.encode()))
    except Exception as exc:
        got = type(exc).__name__
    want = strict(repo)
    assert got == (want if isinstance(want, str) else want[0].get(name.encode()))


def test_a_prefix_listing_stops_at_the_folder(repo: Path) -> None:
    """`refs_under(".../yolo/")` must not take the packed `.../yolo2/prod` (dulwich
    matches packed names by prefix): it came back as `.../yolo/2/prod`, a ref that does
    not exist, and a tag write on `yolo` ended in a KeyError traceback."""
    head = git_out(repo, "rev-parse", "HEAD").strip()
    for name in ("refs/modelbox/tags/ns/yolo/prod", "refs/modelbox/tags/ns/yolo2/prod"):
        git_out(repo, "update-ref", name, head)
    git_out(repo, "pack-refs", "--all")
    assert GitRepo.open(repo).refs_under("refs/modelbox/tags/ns/yolo/") == {
        "refs/modelbox/tags/ns/yolo/prod": head}


@pytest.mark.parametrize("name", ["refs/heads/main", "refs/heads/team1/b-1.x_1",
                                  "refs/tags/refs-3/v1.0.3", "refs/tags/light/9",
                                  "refs/tags/refs-29/v1.0.29"])
def test_removing_a_packed_ref_cuts_its_lines_as_git_does(repo: Path, tmp_path: Path,
                                                          name: str) -> None:
    """dulwich rewrote the file under its own header, without `sorted`: every later write
    then parsed the whole file (~5 ms at the 100k bench's tag refs) until git packed the
    refs again. The record (and its peeled line) is now cut out, byte for byte as git's
    own `update-ref -d` leaves the file."""
    theirs = tmp_path / "theirs"
    shutil.copytree(repo, theirs, symlinks=True)
    git_out(theirs, "update-ref", "-d", name)
    grepo = GitRepo.open(repo)
    assert grepo.ref(name) is not None
    grepo.delete_ref(name)
    packed = (repo / ".git" / "packed-refs").read_bytes()
    assert packed == (theirs / ".git" / "packed-refs").read_bytes()
    assert grepo.ref(name) is None
    refs = grepo.raw.refs
    assert isinstance(refs, PackedRefsReader)
    assert isinstance(refs.get_packed_refs(), SortedPackedRefs)
    assert ours(repo) == strict(repo)


def test_removing_a_ref_from_an_unsorted_file_is_dulwichs_removal(repo: Path) -> None:
    packed = repo / ".git" / "packed-refs"
    header, _, body = packed.read_bytes().partition(b"\n")
    packed.write_bytes(header.replace(b" sorted", b"") + b"\n" + body)
    grepo = GitRepo.open(repo)
    grepo.delete_ref("refs/tags/refs-3/v1.0.3")
    assert grepo.ref("refs/tags/refs-3/v1.0.3") is None
    result = strict(repo)
    assert not isinstance(result, str) and b"refs/tags/refs-3/v1.0.3" not in result[0]
    assert ours(repo) == result
    assert git_out(repo, "show-ref", "refs/tags/light/3").strip()
