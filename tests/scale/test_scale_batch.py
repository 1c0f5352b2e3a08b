"""Bulk creation: a batch streams its objects into packs, and stays all or nothing.

A batch writes its new objects into a temporary pack as it goes (finished every
``PACK_OBJECTS`` objects: these tests make that 40 so a small batch finishes several), edits
wide trees as raw bytes and stores them as deltas, and publishes from what its commits
changed. Each test checks the result against git's own view (``fsck``, ``verify-pack``,
``status``, ``write-tree``) and would fail without the mechanism it names.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from modelbox import ModelBoxClient
from modelbox.errors import VersionExistsError
from modelbox.refs import GitRepo
from modelbox.refs import repo as repo_module

MODELS = 24  # a namespace tree of 24 models is > 512 bytes: wide enough to be deltified


@pytest.fixture
def small_packs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(repo_module, "PACK_OBJECTS", 40)


def git_out(root: Path, *args: str) -> str:
    proc = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 0, f"git {' '.join(args)}: {proc.stderr}"
    return proc.stdout


def repo_state(root: Path) -> tuple[str, str, dict[str, bytes]]:
    """Every ref, ``git status`` and every work-tree file."""
    files = {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
             if p.is_file() and ".git" not in p.relative_to(root).parts}
    return (git_out(root, "for-each-ref", "--format=%(refname) %(objectname)"),
            git_out(root, "status", "--porcelain", "--untracked-files=all"), files)


def assert_clean(root: Path) -> None:
    assert git_out(root, "status", "--porcelain", "--untracked-files=all") == ""


def check(root: Path) -> int:
    """``modelbox check``'s exit code, run as a user runs it."""
    modelbox = Path(sys.executable).with_name("modelbox")
    return subprocess.run([str(modelbox), "check"], cwd=root, capture_output=True,
                          check=False).returncode


def packs(root: Path) -> set[str]:
    return {p.name for p in (root / ".git/objects/pack").glob("pack-*.pack")}


def temporary_packs(root: Path) -> list[str]:
    return [p.name for p in (root / ".git/objects/pack").glob("tmp_*")]


def fsck_and_verify(root: Path) -> str:
    """``git fsck --strict`` and ``verify-pack -v`` of every pack; the verify output."""
    git_out(root, "fsck", "--strict", "--no-dangling")
    return "".join(git_out(root, "verify-pack", "-v", str(idx))
                   for idx in (root / ".git/objects/pack").glob("*.idx"))


def test_a_streamed_batch_that_raises_publishes_nothing(
    registry_path: Path, small_packs: None
) -> None:
    with ModelBoxClient(registry_path) as client:
        models = [client.new_model(f"team/m{i:02d}") for i in range(MODELS)]
        before, packs_before = repo_state(registry_path), packs(registry_path)
        with pytest.raises(VersionExistsError), client.batch():
            for v in range(3):
                for model in models:
                    model.new_model_version(f"v{v}", unique_tags=["prod"] if v == 1 else None)
            # Streamed: packs were finished while the batch ran, one is being written.
            assert packs(registry_path) - packs_before
            assert temporary_packs(registry_path)
            models[0].new_model_version("v0")  # raises: nothing may be published
        assert repo_state(registry_path) == before
        assert temporary_packs(registry_path) == []  # the unfinished pack is deleted
        assert [v.version for v in models[0].versions()] == []
        assert models[0].tags() == {}
        fsck_and_verify(registry_path)
        # The next batch writes the same content again and publishes it whole.
        with client.batch():
            for model in models:
                model.new_model_version("v0")
        assert [v.version for v in models[-1].versions()] == ["v0"]
    assert_clean(registry_path)
    assert check(registry_path) == 0


def test_a_streamed_batch_lands_whole_and_readable(
    registry_path: Path, small_packs: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Nothing stays cached: every read inside the batch comes back from the pack being
    # written (deltas resolved) or from one the batch already finished.
    monkeypatch.setattr(repo_module, "_OBJECT_CACHE_BYTES", 1)
    with ModelBoxClient(registry_path) as client:
        models = [client.new_model(f"team/m{i:02d}") for i in range(MODELS)]
        with client.batch():
            for v in range(4):
                for i, model in enumerate(models):
                    tags = ["prod"] if v == 2 and i % 3 == 0 else None
                    model.new_model_version(f"v{v}", unique_tags=tags)
            models[0].version("v2").log_metrics({"acc": 0.5}, step=1)
            assert [v.version for v in models[5].versions()] == ["v0", "v1", "v2", "v3"]
    verify = fsck_and_verify(registry_path)
    assert "chain length = " in verify  # trees were stored as deltas
    assert_clean(registry_path)
    for i in range(0, MODELS, 3):
        ref = f"refs/modelbox/tags/team/m{i:02d}/prod"
        assert git_out(registry_path, "rev-parse", f"{ref}^{{tree}}") == git_out(
            registry_path, "rev-parse", f"HEAD:models/team/m{i:02d}/_versions/v2")
    assert len(git_out(registry_path, "rev-list", "HEAD").split()) == 1 + MODELS * 5 + 1
    with ModelBoxClient(registry_path) as fresh:
        assert fresh.model("team/m00").version("v2").metrics()["acc"][0]["value"] == 0.5


def test_a_batch_moves_the_ref_of_a_tagged_version_it_changes(registry_path: Path) -> None:
    """The batch syncs the tag refs only of models whose tags changed or whose changed
    version a tag names: a tagged version whose folder changes must still move its ref."""
    with ModelBoxClient(registry_path) as client:
        model = client.new_model("team/m")
        model.new_model_version("v1", unique_tags=["prod"])
        old = git_out(registry_path, "rev-parse", "refs/modelbox/tags/team/m/prod")
        with client.batch():
            model.version("v1").log_metrics({"acc": 0.9}, step=1)  # v1's folder changes
            model.new_model_version("v2")  # untagged: no ref to move
    assert git_out(registry_path, "rev-parse", "refs/modelbox/tags/team/m/prod") != old
    assert git_out(registry_path, "rev-parse", "refs/modelbox/tags/team/m/prod^{tree}") == (
        git_out(registry_path, "rev-parse", "HEAD:models/team/m/_versions/v1"))
    assert check(registry_path) == 0


TREE_CASES: list[tuple[dict[str, bytes], dict[str, bytes | None]]] = [
    # a file becomes a folder, a folder a file, in git's odd order ("a-b" < "a.b" < "a/")
    ({"a": b"1", "a-b": b"2", "a.b/x": b"3", "a0": b"4"}, {"a/y": b"5"}),
    ({"a/y": b"5", "a-b": b"2", "a0": b"4"}, {"a": b"6"}),
    ({"d/e/f": b"1", "d/g": b"2", "h": b"3"}, {"d/e": None, "d/e2/f": b"4", "c": b"0"}),
    ({"m/x": b"1"}, {"m/x": None}),  # the last file: the folder goes too
    ({"z": b"1", "y/q": b"2"}, {"z": b"1", "y/q": b"22", "b": b"3"}),  # z unchanged
]


@pytest.mark.parametrize(("files", "changes"), TREE_CASES)
def test_raw_tree_edits_match_git(
    tmp_path: Path, files: dict[str, bytes], changes: dict[str, bytes | None]
) -> None:
    """The trees a write edits as raw bytes equal those git writes from the same files,
    and the changed paths found while building equal a diff of the two trees."""
    repo = GitRepo.init(tmp_path / "r", "main")
    base = repo.build_tree(None, files)
    new, changed = repo.build_tree_changes(base, changes)
    expected = dict(files)
    for path, data in changes.items():
        for other in [p for p in expected if p == path or p.startswith(path + "/")]:
            del expected[other]
        for other in [p for p in expected if path.startswith(p + "/")]:
            del expected[other]
        if data is not None:
            expected[path] = data
    work = tmp_path / "w"
    work.mkdir()
    for path, data in expected.items():
        (work / path).parent.mkdir(parents=True, exist_ok=True)
        (work / path).write_bytes(data)
    env = {**os.environ, "GIT_INDEX_FILE": str(tmp_path / "index"),
           "GIT_DIR": str(tmp_path / "r/.git"), "GIT_WORK_TREE": str(work)}
    subprocess.run(["git", "add", "-A", "."], cwd=work, env=env, check=True)
    written = subprocess.run(["git", "write-tree"], cwd=work, env=env, check=True,
                             capture_output=True, text=True).stdout.strip()
    assert new == written
    assert sorted(changed, key=lambda c: c.path) == sorted(
        repo.changed_paths(base, new), key=lambda c: c.path)


CHILD = """
import os, signal, sys
from modelbox import ModelBoxClient
from modelbox.refs import repo
repo.PACK_OBJECTS = 40
client = ModelBoxClient(sys.argv[1])
with client.batch():
    for i in range(24):
        client.model(f"team/m{i:02d}").new_model_version("v9")
    os.kill(os.getpid(), signal.SIGKILL)  # mid-batch: packs finished, one half-written
"""


def test_a_batch_killed_while_streaming_leaves_the_registry_as_it_was(
    registry_path: Path,
) -> None:
    with ModelBoxClient(registry_path) as client:
        for i in range(MODELS):
            client.new_model(f"team/m{i:02d}")
    before, packs_before = repo_state(registry_path), packs(registry_path)
    proc = subprocess.run([sys.executable, "-c", CHILD, str(registry_path)],
                          capture_output=True, check=False)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert packs(registry_path) - packs_before  # it had streamed objects
    assert temporary_packs(registry_path)
    assert repo_state(registry_path) == before
    fsck_and_verify(registry_path)
    with ModelBoxClient(registry_path) as client:  # the next write goes through
        client.model("team/m00").new_model_version("v9")
    assert_clean(registry_path)
    # What the killed batch left is git's to clean: its gc removes stale tmp_* files.
    git_out(registry_path, "gc", "--quiet", "--prune=now")
    assert temporary_packs(registry_path) == []
