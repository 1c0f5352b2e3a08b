"""git's split index (``core.splitIndex``): modelbox reads it as git does and, when it is on,
writes a small split index against the shared one, which git reads back unchanged.

Every check is git's own view: ``git status``, ``git ls-files --stage`` against the commit,
``git ls-files --debug`` for the stat data, ``git fsck``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from hostile import modelbox

from modelbox.names import parse_model, parse_reference
from modelbox.refs.index import GitIndex
from modelbox.registry import Registry

if TYPE_CHECKING:
    from conftest import Git, Run

# Each test with the index read and mapped (conftest.py).
pytestmark = pytest.mark.usefixtures("index_access")

M = parse_model("team/m")


def status(git: Git, root: Path) -> str:
    return git("status", "--porcelain", "--untracked-files=all", cwd=root)


def staged(git: Git, root: Path) -> list[str]:
    return git("ls-files", "--stage", cwd=root).splitlines()


def committed(git: Git, root: Path) -> list[str]:
    """``git ls-files --stage`` as a fresh checkout of HEAD would have it."""
    lines = []
    for line in git("ls-tree", "-r", "HEAD", cwd=root).splitlines():
        meta, path = line.split("\t", 1)
        mode, _, sha = meta.split()
        lines.append(f"{mode} {sha} 0\t{path}")
    return lines


def stat_view(git: Git, root: Path) -> dict[str, tuple[int, int, int]]:
    """Each path's (mtime_ns, size, ino) as git reads them from the index."""
    view: dict[str, tuple[int, int, int]] = {}
    path, fields = "", dict[str, str]()
    for line in [*git("ls-files", "--debug", cwd=root).splitlines(), ""]:
        if not line.startswith(" "):
            if path:
                sec, nsec = fields["mtime"].split(":")
                view[path] = (int(sec) * 10**9 + int(nsec), int(fields["size"]),
                              int(fields["ino"]))
            path, fields = line, dict[str, str]()
            continue
        for part in line.strip().split("\t"):
            key, _, value = part.partition(": ")
            fields[key] = value
    return view


def shared_indexes(root: Path) -> list[str]:
    return sorted(p.name for p in (root / ".git").glob("sharedindex.*"))


def index_of(root: Path) -> GitIndex:
    return GitIndex(root / ".git" / "index")


def assert_as_git_sees_it(git: Git, root: Path) -> None:
    assert status(git, root) == ""
    assert staged(git, root) == committed(git, root)
    git("diff", "--cached", "--quiet", cwd=root)
    assert git("fsck", "--no-dangling", cwd=root) == ""


@pytest.fixture
def registry(registry_path: Path, git: Git) -> Iterator[Registry]:
    """A registry with a model, two versions and 20 notes committed by plain git, split by
    git, its shared index kept (``maxPercentChange`` 100) so the split file holds every
    change."""
    with closing(Registry.open(registry_path)) as reg:
        reg.create_model(M)
        reg.create_version(M, "v1")
        reg.create_version(M, "v2")
    (registry_path / "notes").mkdir()
    for i in range(20):  # old files: never racily clean, so git keeps them shared
        note = registry_path / "notes" / f"n{i:02}.txt"
        note.write_text(f"{i}\n")
        os.utime(note, (note.stat().st_mtime - 100,) * 2)
    git("add", "notes", cwd=registry_path)
    git("commit", "-q", "-m", "notes", cwd=registry_path)
    git("config", "core.splitIndex", "true", cwd=registry_path)
    git("config", "splitIndex.maxPercentChange", "100", cwd=registry_path)
    git("update-index", "--split-index", cwd=registry_path)
    with closing(Registry.open(registry_path)) as reg:
        yield reg


def test_a_split_index_git_wrote_reads_as_git_reads_it(
    registry_path: Path, git: Git
) -> None:
    root = registry_path
    data = root / "data"
    data.mkdir()
    for i in range(150):  # enough entries for runs of whole bitmap words
        (data / f"f{i:03}.txt").write_text(f"{i}\n")
    git("add", "data", cwd=root)
    git("commit", "-q", "-m", "data", cwd=root)
    git("config", "core.splitIndex", "true", cwd=root)
    git("config", "splitIndex.maxPercentChange", "100", cwd=root)
    git("update-index", "--split-index", cwd=root)
    later = data.stat().st_mtime + 10
    for i in range(100):  # new stat data for 100 entries: git replaces them
        os.utime(data / f"f{i:03}.txt", (later, later))
    git("update-index", "--refresh", cwd=root)
    git("rm", "-q", "--cached", "data/f120.txt", cwd=root)  # deleted in the split file
    (data / "new.txt").write_text("new\n")
    git("add", "data/new.txt", cwd=root)  # added in the split file

    index = index_of(root)
    assert index.is_split
    stats = stat_view(git, root)
    for line in staged(git, root):
        meta, path = line.split("\t", 1)
        mode, sha, _ = meta.split()
        entry = index.get(path)
        assert entry is not None, path
        assert (entry.sha, entry.mode) == (sha, int(mode, 8)), path
        assert (entry.mtime_ns, entry.size, entry.ino & 0xFFFFFFFF) == stats[path], path
    assert index.get("data/f120.txt") is None
    assert "data/new.txt" in stats and "data/f120.txt" not in stats


def test_a_publish_writes_only_the_changes_against_the_shared_index(
    registry: Registry, registry_path: Path, git: Git
) -> None:
    root = registry_path
    shared = shared_indexes(root)
    assert len(shared) == 1
    registry.create_version(M, "v3")  # added entries
    registry.create_model(parse_model("a/first"))  # sorts before every shared entry
    registry.create_version(M, "v4")
    assert_as_git_sees_it(git, root)
    registry.delete_version(M, "v1", force=True)  # deleted entries
    assert_as_git_sees_it(git, root)
    assert shared_indexes(root) == shared  # not rewritten: the write was O(change)
    assert index_of(root).is_split
    # The split file holds the entries that differ (ours and git's refreshes of racily
    # clean ones), never the 20 untouched notes.
    count = int.from_bytes((root / ".git" / "index").read_bytes()[8:12], "big")
    assert 0 < count <= len(staged(git, root)) - 20
    with closing(Registry.open(root)) as again:  # a new process reads our split file
        again.create_version(M, "v5")
    assert_as_git_sees_it(git, root)
    assert shared_indexes(root) == shared


def test_git_and_modelbox_take_turns(registry: Registry, registry_path: Path, git: Git,
                                     run: Run) -> None:
    root = registry_path
    registry.create_version(M, "v3")
    git("update-index", "--no-split-index", cwd=root)  # git writes it whole
    assert_as_git_sees_it(git, root)
    registry.create_version(M, "v4")  # this process read the index before git rewrote it
    assert_as_git_sees_it(git, root)
    assert index_of(root).is_split  # core.splitIndex is true: split again
    git("update-index", "--split-index", cwd=root)  # git pushes our changes to a new shared
    registry.create_version(M, "v5")
    assert_as_git_sees_it(git, root)
    (root / "notes.txt").write_text("notes\n")  # a hand commit between two writes
    git("add", "notes.txt", cwd=root)
    git("commit", "-q", "-m", "notes", cwd=root)
    assert run("--repo", root, "version", "create", str(M), "v6").code == 0
    assert_as_git_sees_it(git, root)
    status(git, root)  # git's refresh rewrites the split index
    registry.create_version(M, "v7")
    assert_as_git_sees_it(git, root)
    assert index_of(root).get("notes.txt") is not None


@pytest.mark.parametrize("percent", ["0", "100"])
def test_the_shared_index_is_rewritten_past_max_percent_change(
    registry: Registry, registry_path: Path, git: Git, percent: str
) -> None:
    root = registry_path
    git("config", "splitIndex.maxPercentChange", percent, cwd=root)
    git("config", "splitIndex.sharedIndexExpire", "now", cwd=root)
    with closing(Registry.open(root)) as reg:  # settings are read when a registry opens
        before = shared_indexes(root)
        reg.create_version(M, "v3")
        assert_as_git_sees_it(git, root)
        after = shared_indexes(root)
        reg.create_version(M, "v4")
        assert_as_git_sees_it(git, root)
        last = shared_indexes(root)
    if percent == "0":  # every write makes a new shared index; the unused old one expires
        assert len(after) == len(last) == 1
        assert before != after != last
    else:
        assert before == after == last
    link = (root / ".git" / "index").read_bytes()
    assert bytes.fromhex(last[0].removeprefix("sharedindex.")) in link


def test_old_shared_indexes_are_kept_until_they_expire(
    registry: Registry, registry_path: Path, git: Git
) -> None:
    root = registry_path
    git("config", "splitIndex.maxPercentChange", "0", cwd=root)
    with closing(Registry.open(root)) as reg:  # default expiry: two weeks
        reg.create_version(M, "v3")
        reg.create_version(M, "v4")
    assert len(shared_indexes(root)) == 3
    assert_as_git_sees_it(git, root)


def test_core_split_index_false_writes_the_index_whole(
    registry: Registry, registry_path: Path, git: Git
) -> None:
    root = registry_path
    git("config", "core.splitIndex", "false", cwd=root)
    with closing(Registry.open(root)) as reg:
        reg.create_version(M, "v3")
    assert not index_of(root).is_split
    assert b"link" not in (root / ".git" / "index").read_bytes()[-200:]
    assert_as_git_sees_it(git, root)


def test_a_split_index_whose_shared_index_is_missing_is_refused(
    registry: Registry, registry_path: Path, git: Git, run: Run
) -> None:
    root = registry_path
    head = git("rev-parse", "HEAD", cwd=root)
    for name in shared_indexes(root):
        (root / ".git" / name).unlink()
    result = run("--repo", root, "version", "create", str(M), "v3")
    assert result.code == 1
    assert result.err.startswith("modelbox: error: ") and "sharedindex." in result.err
    assert len(result.err.strip().splitlines()) == 1
    assert git("rev-parse", "HEAD", cwd=root) == head


def test_a_version_4_index_with_split_index_on_is_refused_before_any_change(
    registry: Registry, registry_path: Path, git: Git, run: Run
) -> None:
    # modelbox writes version 4 (feature.manyFiles) flat only; asked to split it, it
    # refuses with one line before the branch moves (never half a write).
    root = registry_path
    git("update-index", "--index-version", "4", cwd=root)
    head, index = git("rev-parse", "HEAD", cwd=root), (root / ".git" / "index").read_bytes()
    result = run("--repo", root, "version", "create", str(M), "v3")
    assert result.code == 1, result
    assert result.err.startswith("modelbox: error: ") and "index version 4" in result.err
    assert len(result.err.strip().splitlines()) == 1
    assert git("rev-parse", "HEAD", cwd=root) == head
    assert (root / ".git" / "index").read_bytes() == index
    assert status(git, root) == ""


@pytest.mark.parametrize("percent", ["0", "100"])
def test_a_write_killed_holding_index_lock_is_finished_by_the_next(
    registry: Registry, registry_path: Path, git: Git, percent: str
) -> None:
    """Killed after it wrote a new shared index (``0``) or not (``100``), before the split
    file: the old index still names a whole shared index, and the next write finishes."""
    root = registry_path
    git("config", "splitIndex.maxPercentChange", percent, cwd=root)
    proc = modelbox("--repo", root, "version", "create", str(M), "killed",
                    env={"MODELBOX_FAULT": "index-locked"})
    assert proc.code == 137, proc.err
    assert status(git, root) != ""  # git still reads the old index: it lags the branch
    registry.set_metadata(parse_reference(f"{M}@v1"), "after", "kill")
    assert_as_git_sees_it(git, root)
    assert "models/team/m/_versions/killed/_version.json" in git("ls-files", cwd=root)
    assert index_of(root).is_split
