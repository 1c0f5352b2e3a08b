"""One publish per call in a process that keeps the registry open (issue 15).

Such a writer keeps the index's entries in memory and splices each publish's few entries
into them in place (:mod:`modelbox.refs.index`). These tests run the shortcut against git's
own view after every step: ``git status``, ``git diff-index --cached HEAD``, ``git
ls-files --stage`` against the commit, ``git fsck`` (which checks the index's checksum), on
index versions 2 and 4, with and without the cache-tree extension git adds, and with git
rewriting the index between two publishes.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from modelbox.names import parse_model, parse_reference
from modelbox.registry import Registry

if TYPE_CHECKING:
    from conftest import Git

# Each test with the index read and mapped (conftest.py).
pytestmark = pytest.mark.usefixtures("index_access")

M = parse_model("team/m")
N = parse_model("team/n")


def committed(git: Git, root: Path) -> list[str]:
    """``git ls-files --stage`` as a fresh checkout of HEAD would have it."""
    lines = []
    for line in git("ls-tree", "-r", "HEAD", cwd=root).splitlines():
        meta, path = line.split("\t", 1)
        mode, _, sha = meta.split()
        lines.append(f"{mode} {sha} 0\t{path}")
    return lines


def assert_as_git_sees_it(git: Git, root: Path) -> None:
    assert git("status", "--porcelain", "--untracked-files=all", cwd=root) == ""
    assert git("diff-index", "--cached", "HEAD", cwd=root) == ""
    assert git("ls-files", "--stage", cwd=root).splitlines() == committed(git, root)
    assert git("fsck", "--no-dangling", cwd=root) == ""


def has_cache_tree(root: Path) -> bool:
    return b"TREE" in (root / ".git" / "index").read_bytes()[-4096:]


@pytest.fixture(params=[2, 4], ids=["index-v2", "index-v4"])
def registry(registry_path: Path, git: Git, request: pytest.FixtureRequest,
             ) -> Iterator[Registry]:
    """An open registry with two models and files committed by plain git before and after
    every manifest (an edit at either end of the entries), its index of version 2 or 4."""
    (registry_path / "+a.txt").write_text("first\n")
    (registry_path / "z.txt").write_text("last\n")
    git("add", "+a.txt", "z.txt", cwd=registry_path)
    git("commit", "-q", "-m", "notes", cwd=registry_path)
    git("update-index", "--index-version", str(request.param), cwd=registry_path)
    with closing(Registry.open(registry_path)) as reg:
        reg.create_model(M)
        reg.create_model(N)
        yield reg
    assert int.from_bytes((registry_path / ".git" / "index").read_bytes()[4:8],
                          "big") == request.param


@pytest.mark.parametrize("cache_tree", [False, True], ids=["no-cache-tree", "cache-tree"])
def test_publishing_in_a_loop_leaves_the_index_as_git_sees_it(
    registry: Registry, registry_path: Path, git: Git, cache_tree: bool
) -> None:
    for i in range(12):
        if cache_tree and i % 4 == 0:
            # git's own commands add the cache-tree extension (and rewrite the index):
            # the writer reads the file again, and its next write drops the extension, as
            # git allows (it is a cache; git rebuilds it).
            git("write-tree", cwd=registry_path)
            assert has_cache_tree(registry_path)
        registry.create_version(M if i % 2 else N, f"v{i}", tags=[f"t{i}"] if i % 3 else None)
        assert_as_git_sees_it(git, registry_path)
        assert not has_cache_tree(registry_path)
    # Edits that keep the entry count (a manifest rewritten), and removals.
    registry.set_metadata(parse_reference(f"{M}@v1"), "k", "1")
    assert_as_git_sees_it(git, registry_path)
    registry.delete_version(N, "v0", force=True)
    registry.delete_version(M, "v11", force=True)
    assert_as_git_sees_it(git, registry_path)
    names = git("ls-files", cwd=registry_path).splitlines()
    assert names[0] == "+a.txt" and names[-1] == "z.txt"
    assert "models/team/n/_versions/v0/_version.json" not in names
    assert "models/team/m/_versions/v9/_version.json" in names


def test_many_changes_in_one_write_after_single_ones(
    registry: Registry, registry_path: Path, git: Git
) -> None:
    # A batch (many entries: copied into a new buffer) between single publishes (spliced
    # in place), in one process.
    registry.create_version(M, "one")
    with registry.batch():
        for i in range(40):
            registry.create_version(N, f"b{i}")
    registry.create_version(M, "two")
    assert_as_git_sees_it(git, registry_path)
    assert len(git("ls-files", cwd=registry_path).splitlines()) == len(
        committed(git, registry_path))


_FAILING_WRITE = """
import os, resource, signal, sys
from pathlib import Path
from modelbox.refs.index import GitIndex

root = Path(sys.argv[1])
index = GitIndex(root / ".git" / "index")
def add(name):
    index.set(name, sys.argv[2 if name == "one.txt" else 3], (root / name).lstat())
add("one.txt")
index.write()  # the entries are now held in memory, and the next change spliced into them
add("two.txt")
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
size = (root / ".git" / "index").stat().st_size
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
resource.setrlimit(resource.RLIMIT_FSIZE, (size, hard))  # the new file cannot be written
try:
    index.write()
except OSError as exc:
    print("failed:", exc.errno)
resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
index.write()  # the same change again, from the file as it is
"""


def test_a_write_that_failed_part_way_is_not_spliced_into_again(
    registry: Registry, registry_path: Path, git: Git
) -> None:
    # A writer changed its entries in memory, then could not write the file (here: a
    # file size limit; a full disk does the same). Its next write must start from the
    # file, not from bytes the file never got.
    import errno
    import subprocess
    import sys

    registry.create_version(M, "v1")
    for name in ("one.txt", "two.txt"):
        (registry_path / name).write_text(f"{name}\n")
    shas = git("hash-object", "-w", "one.txt", "two.txt", cwd=registry_path).split()
    ends = [git("rev-parse", f"HEAD:{name}", cwd=registry_path).strip()
            for name in ("+a.txt", "z.txt")]
    proc = subprocess.run([sys.executable, "-c", _FAILING_WRITE, str(registry_path), *shas],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"failed: {errno.EFBIG}"
    assert not (registry_path / ".git" / "index.lock").exists()
    staged = git("ls-files", "--stage", cwd=registry_path).splitlines()
    assert [line for line in staged if line.endswith(".txt")] == [
        f"100644 {ends[0]} 0\t+a.txt", f"100644 {shas[0]} 0\tone.txt",
        f"100644 {shas[1]} 0\ttwo.txt", f"100644 {ends[1]} 0\tz.txt"]
    assert git("diff-files", cwd=registry_path) == ""  # stat data as the files have it
    assert git("fsck", "--no-dangling", cwd=registry_path) == ""


def spare(root: Path) -> Path:
    return root / ".git" / "modelbox" / "index-spare"


def inode(path: Path) -> int:
    return path.stat().st_ino


@pytest.mark.parametrize("reader", ["mapped", "open"])
def test_a_replaced_index_is_written_over_only_when_no_one_reads_it(
    registry: Registry, registry_path: Path, git: Git, reader: str
) -> None:
    # The index a write replaces is kept as the next write's index.lock (no new file to
    # allocate, no old one to free) - but a reader that opened it before it was replaced
    # (git maps the index while it reads it) must go on reading the bytes it opened.
    import mmap

    index = registry_path / ".git" / "index"
    registry.create_version(M, "v1")
    kept = inode(spare(registry_path))
    registry.create_version(M, "v2")
    assert inode(index) == kept  # no one read it: written over, as the new index
    assert_as_git_sees_it(git, registry_path)

    with open(index, "rb") as f:
        if reader == "mapped":  # as git reads it: mapped, the descriptor closed
            held: mmap.mmap | None = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
            fd = -1
        else:
            held, fd = None, os.dup(f.fileno())
    read = inode(index)
    opened = index.read_bytes()
    registry.create_version(M, "v3")  # the index being read is now the spare ...
    assert inode(spare(registry_path)) == read
    registry.create_version(M, "v4")  # ... and still read: a new file instead
    assert inode(index) != read
    assert (bytes(held) if held is not None else os.pread(fd, len(opened) + 1, 0)) == opened
    assert_as_git_sees_it(git, registry_path)
    if held is not None:
        held.close()
    else:
        os.close(fd)
    again = inode(spare(registry_path))
    registry.create_version(M, "v5")  # no one reads the spare: reused again
    assert inode(index) == again
    assert_as_git_sees_it(git, registry_path)


def test_a_first_write_lets_go_of_the_index_it_read_for_the_next_to_reuse(
    registry: Registry, registry_path: Path, git: Git
) -> None:
    # A view's first write writes around the entries of the file it read (mapped, past
    # 1 MiB) instead of copying them; it must let go of that file afterwards, or the next
    # write could not reuse it (a mapping holds it open) and would make a new one.
    registry.create_version(M, "v1")
    registry.create_version(M, "v2")  # the fixture's view: its entries in memory, no file
    index = registry_path / ".git" / "index"
    with closing(Registry.open(registry_path)) as fresh:
        fresh.create_version(M, "v3")  # this view's first write
        kept = inode(spare(registry_path))
        fresh.create_version(M, "v4")
        assert inode(index) == kept
    assert_as_git_sees_it(git, registry_path)


def test_a_spare_with_another_name_is_never_written_over(
    registry: Registry, registry_path: Path, git: Git, tmp_path: Path
) -> None:
    # A copy of the repository made with hard links (`cp -al`) shares the spare's file:
    # writing over it would change the other copy.
    registry.create_version(M, "v1")
    other = tmp_path / "other-copy-of-the-spare"
    os.link(spare(registry_path), other)
    before = other.read_bytes()
    registry.create_version(M, "v2")
    registry.create_version(M, "v3")
    assert other.read_bytes() == before
    assert_as_git_sees_it(git, registry_path)


def test_a_write_killed_after_keeping_the_spare_is_finished_by_the_next(
    registry: Registry, registry_path: Path, git: Git
) -> None:
    # Killed between naming the live index as the spare and the rename: the spare is the
    # index itself (two names). The next write finishes the killed one's index, and never
    # writes over the live index in place.
    from hostile import modelbox

    registry.create_version(M, "v1")
    registry.close()
    proc = modelbox("--repo", registry_path, "version", "create", str(M), "killed",
                    env={"MODELBOX_FAULT": "index-written"})
    assert proc.code == 137, proc.err
    index = registry_path / ".git" / "index"
    live = inode(index)
    assert inode(spare(registry_path)) == live and index.stat().st_nlink == 2
    assert (registry_path / ".git" / "index.lock").exists()
    fixed = modelbox("--repo", registry_path, "check", "--fix")  # one index write
    assert fixed.code == 0, fixed.err
    assert inode(index) != live  # a new file: the live one was not written over
    assert_as_git_sees_it(git, registry_path)
    with closing(Registry.open(registry_path)) as reg:
        reg.create_version(M, "next")
    assert_as_git_sees_it(git, registry_path)
    names = git("ls-files", cwd=registry_path)
    for version in ("v1", "killed", "next"):
        assert f"models/team/m/_versions/{version}/_version.json" in names


@pytest.mark.parametrize("version", [2, 4])
def test_random_edits_spliced_in_place_match_git_s_reading(
    tmp_path: Path, git: Git, version: int
) -> None:
    # Inserts before the first entry, after the last, beside each other and between
    # removals, one to three at a time in one long-lived view (spliced in place), with a
    # batch now and then (copied): after each write git reads exactly the entries meant.
    import hashlib
    import random

    from indexes import one_file_index

    from modelbox.refs.index import GitIndex

    root = tmp_path / "repo"
    index, blob, st = one_file_index(git, root, version)
    rng = random.Random(15)
    expected = {"f"}
    for step in range(40):
        for _ in range(24 if step % 10 == 9 else rng.randint(1, 3)):
            if expected and rng.random() < 0.35:
                path = rng.choice(sorted(expected))
                index.remove(path)
                expected.discard(path)
            else:
                depth = rng.randint(1, 3)
                path = "/".join(rng.choice(["a", "b", "m", "z", "0", "~"]) * rng.randint(1, 4)
                                for _ in range(depth))
                if any(p.startswith(path + "/") or path.startswith(p + "/")
                       for p in expected):
                    continue  # a file and a folder of one name: not a valid index
                index.set(path, blob, st)
                expected.add(path)
        index.write()
        data = (root / ".git" / "index").read_bytes()
        assert hashlib.sha1(data[:-20]).digest() == data[-20:]
        assert int.from_bytes(data[4:8], "big") == version
        listed = git("ls-files", "--stage", cwd=root).splitlines()
        assert listed == [f"100644 {blob} 0\t{p}" for p in sorted(expected,
                                                                   key=str.encode)]
        fresh = GitIndex(root / ".git" / "index")  # from the kept offsets (and names)
        assert all(fresh.get(p) is not None for p in expected)
    assert git("fsck", "--no-dangling", cwd=root) == ""
