"""The fixed cost of one write: the shortcuts that keep it O(change) stay correct.

The Git index is read through entry offsets kept in ``.git/modelbox/index-offsets``
(:mod:`modelbox.refs.index`); these tests change the index behind modelbox's back in every
way a user or git does and check that the next write leaves exactly git's view. Each runs
on git's default index (version 2) and on version 4 (``feature.manyFiles``: names stored
against the name before), which a write must keep.
"""

from __future__ import annotations

import array
import os
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from hostile import modelbox
from indexes import one_file_index

from modelbox.names import parse_model, parse_reference
from modelbox.refs.index import GitIndex
from modelbox.registry import Registry

if TYPE_CHECKING:
    from conftest import Git, Run

# Each test with the index read and mapped (conftest.py).
pytestmark = pytest.mark.usefixtures("index_access")

M = parse_model("team/m")


def offsets_file(root: Path) -> Path:
    return root / ".git" / "modelbox" / "index-offsets"


def status(git: Git, root: Path) -> str:
    return git("status", "--porcelain", "--untracked-files=all", cwd=root)


def tracked(git: Git, root: Path) -> list[str]:
    return git("ls-files", "--stage", cwd=root).splitlines()


def index_version(root: Path) -> int:
    return int.from_bytes((root / ".git" / "index").read_bytes()[4:8], "big")


@pytest.fixture(params=[2, 4], ids=["index-v2", "index-v4"])
def registry(registry_path: Path, git: Git, request: pytest.FixtureRequest,
             ) -> Iterator[Registry]:
    """A registry with a model, two versions and a file committed by plain git that sorts
    before every manifest (so renaming it moves every manifest's index entry); its index
    in git's version 2 or version 4, as every write must leave it."""
    (registry_path / "a.txt").write_text("notes\n")
    git("add", "a.txt", cwd=registry_path)
    git("commit", "-q", "-m", "notes", cwd=registry_path)
    with closing(Registry.open(registry_path)) as reg:
        reg.create_model(M)
        reg.create_version(M, "v1")
        if request.param == 4:
            git("update-index", "--index-version", "4", cwd=registry_path)
        reg.create_version(M, "v2")
        yield reg
    assert index_version(registry_path) == request.param


def test_offsets_are_kept_for_the_next_command(registry: Registry, registry_path: Path,
                                               run: Run) -> None:
    # Saved once a registry is let go (not after each write of a script's loop) ...
    registry.close()
    assert offsets_file(registry_path).is_file()
    index = (registry_path / ".git" / "index").read_bytes()
    assert index[-20:] in offsets_file(registry_path).read_bytes()  # keyed by the checksum
    # ... and by every write command, for the index it leaves.
    assert run("--repo", registry_path, "meta", "set", f"{M}@v1", "k", "1").code == 0
    index = (registry_path / ".git" / "index").read_bytes()
    assert index[-20:] in offsets_file(registry_path).read_bytes()


def test_a_process_killed_before_saving_offsets_leaves_them_to_be_computed_again(
    registry: Registry, registry_path: Path, git: Git
) -> None:
    # A loop of writes saves the offsets of its first write, then at most once a second
    # (here: never again); killed, it leaves the offsets of an older index, which the
    # next process finds stale and computes again.
    import subprocess
    import sys

    registry.close()
    script = (
        "import os, sys\n"
        "from pathlib import Path\n"
        "from modelbox.refs.index import _Kept\n"
        "from modelbox.registry import Registry\n"
        "from modelbox.names import parse_model\n"
        "_Kept.SAVE_EVERY = 3600.0\n"
        "reg = Registry.open(Path(sys.argv[1]))\n"
        "reg.create_version(parse_model('team/m'), 'loop1')\n"
        "print(open(sys.argv[2], 'rb').read()[-20:].hex(), flush=True)\n"
        "reg.create_version(parse_model('team/m'), 'loop2')\n"
        "os._exit(137)\n"
    )
    index = registry_path / ".git" / "index"
    proc = subprocess.run([sys.executable, "-c", script, str(registry_path), str(index)],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 137, proc.stderr
    first = bytes.fromhex(proc.stdout.strip())
    kept = offsets_file(registry_path).read_bytes()
    assert first in kept and index.read_bytes()[-20:] not in kept  # the first write's
    assert status(git, registry_path) == ""  # the index itself is whole
    with closing(Registry.open(registry_path)) as reg:  # walks the new index, once
        reg.create_version(M, "v3")
    assert status(git, registry_path) == ""
    assert git("fsck", "--no-dangling", cwd=registry_path) == ""
    assert index.read_bytes()[-20:] in offsets_file(registry_path).read_bytes()


def test_an_index_git_rewrote_with_the_same_entry_count_is_not_read_with_old_offsets(
    registry: Registry, registry_path: Path, git: Git, run: Run
) -> None:
    # Same number of entries, but every manifest's entry moves: offsets of the old index
    # would point into the middle of entries.
    git("mv", "a.txt", "a-file-renamed-with-a-much-longer-name.txt", cwd=registry_path)
    git("commit", "-q", "-m", "rename", cwd=registry_path)
    registry.create_version(M, "v3")  # this process read the index before git rewrote it
    assert status(git, registry_path) == ""
    assert run("--repo", registry_path, "tag", f"{M}@v3", "prod").code == 0  # a new process
    assert status(git, registry_path) == ""
    assert git("fsck", "--no-dangling", cwd=registry_path) == ""
    names = [line.split("\t")[1] for line in tracked(git, registry_path)]
    assert names == sorted(names)
    assert "a-file-renamed-with-a-much-longer-name.txt" in names
    assert "models/team/m/_versions/v3/_version.json" in names


@pytest.mark.parametrize("damage", ["shifted", "renamed", "truncated", "garbage", "deleted"])
def test_damaged_or_foreign_offsets_are_computed_again(
    registry: Registry, registry_path: Path, git: Git, run: Run, damage: str
) -> None:
    path = offsets_file(registry_path)
    raw = path.read_bytes()
    count = int.from_bytes((registry_path / ".git" / "index").read_bytes()[8:12], "big")
    body_at = raw.index(b"\n") + 1 + 52  # magic line, checksum, count, end, digest
    names_at = body_at + 8 * count  # then, for a version 4 index, every name
    if damage == "shifted":  # every offset but the first 8 bytes off, the header as it was
        offsets = array.array("Q")
        offsets.frombytes(raw[body_at:names_at])
        shifted = [offsets[0], *(o + 8 for o in offsets[1:])]
        path.write_bytes(raw[:body_at] + array.array("Q", shifted).tobytes() + raw[names_at:])
    elif damage == "renamed":  # a version 4 index's kept names, one of them changed
        path.write_bytes(raw[:names_at] + raw[names_at:].replace(b"v1", b"v0"))
    elif damage == "truncated":
        path.write_bytes(raw[: body_at + 4])
    elif damage == "garbage":
        path.write_bytes(os.urandom(len(raw)))
    else:
        path.unlink()
    result = run("--repo", registry_path, "version", "create", str(M), "v9", "--tag", "new")
    assert result.code == 0, result
    assert status(git, registry_path) == ""
    assert git("fsck", "--no-dangling", cwd=registry_path) == ""
    index = (registry_path / ".git" / "index").read_bytes()
    assert index[-20:] in path.read_bytes()  # recomputed for the index as it is now


def test_a_damaged_index_is_refused_even_when_its_offsets_are_known(
    registry: Registry, registry_path: Path, git: Git, run: Run
) -> None:
    index_path = registry_path / ".git" / "index"
    worktree = registry.worktree()
    assert worktree is not None
    worktree.close()  # the offsets of the index as it is are saved now
    data = bytearray(index_path.read_bytes())
    assert data[-20:] in offsets_file(registry_path).read_bytes()
    data[len(data) // 2] ^= 0xFF  # a flipped bit; the checksum at the end still names the old
    index_path.write_bytes(bytes(data))
    head = git("rev-parse", "HEAD", cwd=registry_path)
    result = run("--repo", registry_path, "version", "create", str(M), "v3")
    assert result.code == 1
    assert result.err.startswith("modelbox: error:") and "bad checksum" in result.err
    assert result.err.count("\n") == 1
    assert git("rev-parse", "HEAD", cwd=registry_path) == head
    assert bytes(data) == index_path.read_bytes()


def test_checkout_reset_and_hand_staging_between_writes(
    registry: Registry, registry_path: Path, git: Git, run: Run
) -> None:
    v2 = git("rev-parse", "HEAD", cwd=registry_path).strip()
    git("reset", "-q", "--hard", "HEAD~1", cwd=registry_path)  # v2 gone from the index
    assert run("--repo", registry_path, "version", "create", str(M), "v2b").code == 0
    assert status(git, registry_path) == ""
    git("checkout", "-q", "-b", "side", v2, cwd=registry_path)
    git("checkout", "-q", "main", cwd=registry_path)
    (registry_path / "b.txt").write_text("staged by hand\n")
    git("add", "b.txt", cwd=registry_path)  # an entry modelbox must keep, staged
    assert run("--repo", registry_path, "meta", "set", f"{M}@v1", "k", "1").code == 0
    assert run("--repo", registry_path, "metrics", "log", f"{M}@v1", "acc=0.5").code == 0
    assert status(git, registry_path) == "A  b.txt\n"
    names = [line.split("\t")[1] for line in tracked(git, registry_path)]
    assert "models/team/m/_versions/v2b/_version.json" in names
    assert "models/team/m/_versions/v2/_version.json" not in names


def test_a_write_killed_before_the_index_followed_is_finished_by_the_next(
    registry: Registry, registry_path: Path, git: Git
) -> None:
    for step in ("after-ref-move", "index-locked"):
        proc = modelbox("--repo", registry_path, "version", "create", str(M),
                        f"killed-{step}", env={"MODELBOX_FAULT": step})
        assert proc.code == 137, proc.err
        assert status(git, registry_path) != ""  # the index lags the branch
        registry.set_metadata(parse_reference(f"{M}@v1"), "after", step)
        assert status(git, registry_path) == ""
        assert f"models/team/m/_versions/killed-{step}/_version.json" in git(
            "ls-files", cwd=registry_path)


@pytest.mark.parametrize("version", [2, 4])
def test_a_write_interrupted_after_editing_the_entries_in_memory_is_not_built_on(
    tmp_path: Path, git: Git, monkeypatch: pytest.MonkeyPatch, version: int
) -> None:
    """A Ctrl-C once the entries held in memory are edited, before the file is written:
    the next write of the same index reads the file again instead of splicing into entries
    that are neither the old file's nor the new one's (and keeps the change not written)."""
    root = tmp_path / "repo"
    index, blob, st = one_file_index(git, root, version)
    index.set("b", blob, st)
    index.write()  # the entries are now held in memory, as written
    index.set("c", blob, st)
    monkeypatch.setenv("MODELBOX_INTERRUPT", "index-edited")
    with pytest.raises(KeyboardInterrupt):
        index.write()
    monkeypatch.delenv("MODELBOX_INTERRUPT")
    index.set("a", blob, st)
    index.write()
    listed = git("ls-files", "--stage", cwd=root).splitlines()
    assert listed == [f"100644 {blob} 0\t{p}" for p in ("a", "b", "c", "f")]
    assert git("fsck", "--no-dangling", cwd=root) == ""


def test_removing_entries_between_others_keeps_the_index_whole(
    registry: Registry, registry_path: Path, git: Git, run: Run
) -> None:
    for version in ("v3", "v4", "v5"):
        registry.create_version(M, version, tags=[f"t{version}"])
    (registry_path / "z.txt").write_text("after every manifest\n")
    git("add", "z.txt", cwd=registry_path)
    git("commit", "-q", "-m", "z", cwd=registry_path)
    registry.delete_version(M, "v3", force=True)  # entries removed with others on both sides
    assert run("--repo", registry_path, "untag", str(M), "tv4").code == 0
    registry.create_version(M, "v6")
    assert status(git, registry_path) == ""
    names = [line.split("\t")[1] for line in tracked(git, registry_path)]
    assert names == sorted(names) and names[-1] == "z.txt"
    assert "models/team/m/_versions/v3/_version.json" not in names
    assert "models/team/m/_versions/v6/_version.json" in names
    assert git("fsck", "--no-dangling", cwd=registry_path) == ""


def test_a_pull_between_writes_leaves_the_index_as_git_sees_it(
    registry: Registry, registry_path: Path, tmp_path: Path, git: Git, run: Run
) -> None:
    clone = tmp_path / "clone"
    assert run("clone", registry_path, clone).code == 0
    assert run("--repo", clone, "version", "create", str(M), "mine").code == 0
    registry.create_version(M, "theirs", tags=["prod"])  # upstream moves on
    result = run("--repo", clone, "pull")
    assert result.code == 0, result
    assert run("--repo", clone, "meta", "set", f"{M}@theirs", "k", "1").code == 0
    # Upstream renames a file by hand, and the clone takes it with a plain `git pull`: as
    # many entries as before, every manifest's entry moved.
    git("mv", "a.txt", "a-file-renamed-with-a-much-longer-name.txt", cwd=registry_path)
    git("commit", "-q", "-m", "rename", cwd=registry_path)
    git("pull", "-q", "--no-rebase", "--no-edit", "origin", "main", cwd=clone)
    assert run("--repo", clone, "tag", f"{M}@mine", "staging").code == 0
    assert status(git, clone) == ""
    names = [line.split("\t")[1] for line in tracked(git, clone)]
    assert names == sorted(names)
    for version in ("mine", "theirs"):
        assert f"models/team/m/_versions/{version}/_version.json" in names
    index = (clone / ".git" / "index").read_bytes()
    assert index[-20:] in offsets_file(clone).read_bytes()


def test_an_owner_record_a_kill_cut_short_is_cleared_and_the_lock_taken(
    registry: Registry, registry_path: Path, git: Git
) -> None:
    # A process killed while replacing its index.lock owner record leaves the temporary
    # record (`index.lock.modelbox-owner.PID`) beside the lock; a later write removes it
    # and still reads the lock's owner from the whole record.
    import subprocess
    import sys

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    dead = int(gone.stdout)
    lock = registry_path / ".git" / "index.lock"
    lock.write_bytes(b"")
    (registry_path / ".git" / "index.lock.modelbox-owner").write_text(
        f"{dead} {lock.stat().st_ino}\n")
    leftover = registry_path / ".git" / f"index.lock.modelbox-owner.{dead}"
    leftover.write_text(f"{dead}\n")
    registry.set_metadata(parse_reference(f"{M}@v1"), "k", "v")
    assert not lock.exists() and not leftover.exists()
    assert status(git, registry_path) == ""


# -- index.skipHash: git 2.40+ writes an index with a checksum of zeros --------------------
def _unsealed(index: Path) -> bytes:
    """The index as git 2.40+ writes it with ``index.skipHash`` (and ``feature.manyFiles``,
    which turns it on there): the same entries, a checksum of zeros. The git here (2.39)
    cannot write one, but reads it, as every git since 2.13 does."""
    data = index.read_bytes()
    index.write_bytes(data[:-20] + bytes(20))
    return data[:-20]


def test_an_index_git_wrote_without_a_checksum_is_updated_not_refused(
    registry: Registry, registry_path: Path, git: Git, run: Run
) -> None:
    registry.close()
    index = registry_path / ".git" / "index"
    _unsealed(index)
    # git reads it as it is (not `git status`: git 2.39's would write it again, sealed)
    assert git("diff", "--cached", "--name-only", cwd=registry_path) == ""
    assert index.read_bytes()[-20:] == bytes(20)
    result = run("--repo", registry_path, "version", "create", str(M), "v3", "--tag", "new")
    assert result.code == 0, result  # was: "has a bad checksum; run `git reset`"
    assert status(git, registry_path) == ""
    assert "models/team/m/_versions/v3/_version.json" in git("ls-files", cwd=registry_path)
    # index.skipHash is not set here: modelbox writes the checksum, and git 2.39's fsck,
    # which reports a checksum of zeros as corruption, is content.
    assert git("fsck", "--no-dangling", cwd=registry_path) == ""


def test_with_index_skiphash_a_write_leaves_zeros_and_keys_its_offsets_by_the_content(
    registry: Registry, registry_path: Path, git: Git, run: Run
) -> None:
    import hashlib

    registry.close()
    git("config", "index.skipHash", "true", cwd=registry_path)
    index = registry_path / ".git" / "index"
    with closing(Registry.open(registry_path)) as reg:
        for version in ("v3", "v4"):  # the second splices into the first's entries
            reg.create_version(M, version)
            assert index.read_bytes()[-20:] == bytes(20)
            assert git("diff", "--cached", "--name-only", cwd=registry_path) == ""
    data = index.read_bytes()
    assert hashlib.sha1(data[:-20]).digest() in offsets_file(registry_path).read_bytes()
    # The next process finds those offsets and writes with them; then a hand edit by git
    # (which keeps zeros) changes the entries under the same "checksum".
    assert run("--repo", registry_path, "meta", "set", f"{M}@v3", "k", "1").code == 0
    (registry_path / "b.txt").write_text("staged by hand\n")
    git("add", "b.txt", cwd=registry_path)
    _unsealed(index)
    assert run("--repo", registry_path, "tag", f"{M}@v4", "prod").code == 0
    assert index.read_bytes()[-20:] == bytes(20)  # (git 2.39's status seals it again)
    assert status(git, registry_path) == "A  b.txt\n"
    names = [line.split("\t")[1] for line in tracked(git, registry_path)]
    assert names == sorted(names) and "b.txt" in names
    assert "models/team/m/_versions/v4/_version.json" in names
    git("config", "index.skipHash", "false", cwd=registry_path)
    assert run("--repo", registry_path, "meta", "set", f"{M}@v4", "k", "2").code == 0
    assert git("fsck", "--no-dangling", cwd=registry_path) == ""  # sealed again


@pytest.mark.parametrize("skip_hash", ["false", "true"])
def test_the_next_process_reads_the_saved_offsets_instead_of_walking_the_entries(
    registry: Registry, registry_path: Path, git: Git, monkeypatch: pytest.MonkeyPatch,
    skip_hash: str,
) -> None:
    # What makes a cold command's index read O(1) in Python at 100,000 entries.

    registry.close()
    git("config", "index.skipHash", skip_hash, cwd=registry_path)
    with closing(Registry.open(registry_path)) as reg:
        reg.create_version(M, "v3")

    def walked(*args: object) -> None:
        raise AssertionError("the entries were walked: the saved offsets were not used")

    monkeypatch.setattr(GitIndex, "_walk", staticmethod(walked))
    index = GitIndex(registry_path / ".git" / "index")
    assert index.get("models/team/m/_versions/v3/_version.json") is not None
