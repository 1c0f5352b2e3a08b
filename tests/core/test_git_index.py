"""The Git index modelbox rewrites stays valid for git, whatever git did to it in between."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from core_helpers import assert_clean, assert_error, git_code, git_out

from modelbox.names import parse_model, parse_reference
from modelbox.registry import Registry

if TYPE_CHECKING:
    from conftest import Run

M = parse_model("ai/vision/yolo")


@pytest.fixture
def registry(registry_path: Path) -> Iterator[Registry]:
    with closing(Registry.open(registry_path)) as reg:
        reg.create_model(M)
        yield reg


def test_the_index_stays_valid_after_many_writes(registry: Registry, registry_path: Path) -> None:
    for i in range(200):
        registry.create_version(M, f"v{i}", tags=[f"t{i}"] if i % 50 == 0 else None)
    assert_clean(registry_path)
    assert git_code(registry_path, "diff", "--cached", "--quiet") == 0
    assert git_code(registry_path, "diff", "--quiet") == 0
    files = git_out(registry_path, "ls-files").splitlines()
    assert len(files) == 2 + 1 + 200  # settings, model, tags, one manifest per version
    assert files == sorted(files)
    assert git_out(registry_path, "ls-files", "--stage", "--", "models/ai/vision/yolo/_tags.json")
    assert git_code(registry_path, "fsck", "--strict", "--no-dangling") == 0


@pytest.mark.smoke
def test_an_index_rewritten_by_git_status_and_git_add_still_works(
    registry: Registry, registry_path: Path
) -> None:
    registry.create_version(M, "v1")
    git_out(registry_path, "status")  # refreshes and rewrites the index
    git_out(registry_path, "update-index", "--refresh")
    (registry_path / "notes.txt").write_text("staged, not committed\n")
    git_out(registry_path, "add", "notes.txt")
    git_out(registry_path, "write-tree")  # leaves a cache-tree extension in the index
    registry.create_version(M, "v2", tags=["prod"])
    registry.set_metadata(parse_reference(f"{M}@v1"), "k", 1)
    assert git_out(registry_path, "status", "--porcelain") == "A  notes.txt\n"
    assert git_out(registry_path, "diff", "--cached", "--name-only") == "notes.txt\n"
    assert git_code(registry_path, "diff", "--quiet") == 0
    git_out(registry_path, "rm", "-q", "--cached", "notes.txt")
    (registry_path / "notes.txt").unlink()
    assert_clean(registry_path)


def test_an_intent_to_add_entry_in_a_version_3_index_survives(
    registry: Registry, registry_path: Path
) -> None:
    (registry_path / "later.txt").write_text("later\n")
    git_out(registry_path, "add", "-N", "later.txt")  # extended flags: index version 3
    registry.create_version(M, "v1")
    assert git_out(registry_path, "status", "--porcelain") == " A later.txt\n"
    registry.create_version(M, "v2")
    assert git_out(registry_path, "status", "--porcelain") == " A later.txt\n"


@pytest.mark.smoke
def test_a_commit_by_git_between_modelbox_writes_is_kept(
    registry: Registry, registry_path: Path
) -> None:
    registry.create_version(M, "v1")
    (registry_path / "README.md").write_text("registry\n")
    git_out(registry_path, "add", "README.md")
    git_out(registry_path, "commit", "-q", "-m", "docs")
    registry.create_version(M, "v2")
    assert_clean(registry_path)
    assert git_out(registry_path, "log", "-2", "--format=%s").splitlines() == [
        f"version create {M}@v2", "docs"
    ]
    assert "README.md" in git_out(registry_path, "ls-tree", "--name-only", "HEAD")


def test_a_version_4_index_is_updated_in_version_4(
    registry: Registry, registry_path: Path, run: Run
) -> None:
    # feature.manyFiles (git's advice for big work trees) makes git write version 4: names
    # stored against the name before. modelbox keeps the version and every name whole.
    git_out(registry_path, "update-index", "--index-version", "4")
    for i in range(30):
        registry.create_version(M, f"v{i}", tags=[f"t{i}"] if i % 7 == 0 else None)
    registry.set_metadata(parse_reference(f"{M}@v3"), "k", 1)
    registry.delete_version(M, "v12", force=True)  # an entry between two others goes
    assert run("--repo", registry_path, "version", "create", str(M), "v12b").code == 0
    index = registry_path / ".git" / "index"
    assert index.read_bytes()[4:8] == (4).to_bytes(4, "big")
    assert_clean(registry_path)
    assert git_code(registry_path, "diff", "--quiet") == 0
    assert git_code(registry_path, "diff", "--cached", "--quiet") == 0
    files = git_out(registry_path, "ls-files").splitlines()
    assert "models/ai/vision/yolo/_versions/v12b/_version.json" in files
    assert "models/ai/vision/yolo/_versions/v12/_version.json" not in files
    from dulwich.index import Index

    assert sorted(p.decode() for p in Index(str(index)).paths()) == files  # dulwich too
    assert git_code(registry_path, "fsck", "--strict", "--no-dangling") == 0


def test_an_index_version_modelbox_cannot_update_is_refused_cleanly(
    registry: Registry, registry_path: Path, run: Run
) -> None:
    import hashlib

    index = registry_path / ".git" / "index"
    git_out(registry_path, "update-index", "--index-version", "2")
    original = index.read_bytes()
    body = original[:4] + (5).to_bytes(4, "big") + original[8:-20]  # a version from the future
    index.write_bytes(body + hashlib.sha1(body).digest())
    head = git_out(registry_path, "rev-parse", "HEAD")
    result = run("--repo", registry_path, "version", "create", str(M), "v1")
    assert_error(result, "index version 5", "git update-index --index-version 2")
    assert git_out(registry_path, "rev-parse", "HEAD") == head  # (git status refuses it too)
    assert index.read_bytes() == body + hashlib.sha1(body).digest()
    assert not (registry_path / "models/ai/vision/yolo/_versions/v1").exists()
    index.write_bytes(original)
    assert run("--repo", registry_path, "version", "create", str(M), "v1").code == 0
    assert_clean(registry_path)
