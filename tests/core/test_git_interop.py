"""Registries that plain git made or moved: clones, other branches, bare repositories."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from core_helpers import assert_clean, assert_error, git_code, git_out, repo_state

if TYPE_CHECKING:
    from conftest import Run


@pytest.fixture
def origin(registry_path: Path, run: Run) -> Path:
    repo = ("--repo", str(registry_path))
    for argv in (("model", "create", "ai/vision/yolo"),
                 ("version", "create", "ai/vision/yolo", "v1", "--tag", "prod"),
                 ("version", "create", "ai/vision/yolo", "v2", "--tag", "staging")):
        assert run(*repo, *argv).code == 0
    return registry_path


def test_a_plain_git_clone_reads_and_writes_and_refs_sync_rebuilds_its_refs(
    origin: Path, tmp_path: Path, run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    clone = tmp_path / "clone"
    git_out(tmp_path, "clone", "-q", str(origin), str(clone))
    monkeypatch.chdir(clone)
    assert git_out(clone, "for-each-ref", "refs/modelbox") == ""  # git clone skips them

    assert run("resolve", "ai/vision/yolo:prod").out == "v1\n"
    assert run("version", "show", "ai/vision/yolo:staging").code == 0
    result = run("check")
    assert result.code == 1
    assert "refs/modelbox/tags/ai/vision/yolo/prod: tag ref is missing" in result.err

    result = run("refs", "sync")
    assert result.code == 0
    assert "2 ref(s) changed" in result.out
    assert git_out(clone, "for-each-ref", "refs/modelbox") == git_out(
        origin, "for-each-ref", "refs/modelbox"
    )
    assert run("refs", "sync").out == "0 ref(s) changed\n"
    assert run("check").code == 0

    assert run("version", "create", "ai/vision/yolo", "v3", "--tag", "canary").code == 0
    assert run("tag", "ai/vision/yolo@v3", "prod").code == 0
    assert_clean(clone)
    assert run("resolve", "ai/vision/yolo:prod").out == "v3\n"
    assert git_out(clone, "log", "-1", "--format=%s") == "tag ai/vision/yolo:prod v1 -> v3\n"
    assert git_out(clone, "rev-list", "--count", "origin/main..main") == "2\n"
    assert git_code(clone, "fsck", "--strict", "--no-dangling") == 0
    assert run("check").code == 0
    events = [e for e in run("log", "ai/vision/yolo:prod").out.splitlines() if e]
    assert len(events) == 2  # history written in origin reads the same in the clone


def test_writes_go_to_the_registry_branch_when_head_is_on_another_branch(
    origin: Path, run: Run
) -> None:
    git_out(origin, "checkout", "-q", "-b", "feature")
    feature_head = git_out(origin, "rev-parse", "feature")
    before_files = repo_state(origin).files
    main_before = git_out(origin, "rev-parse", "main").strip()

    assert run("--repo", origin, "version", "create", "ai/vision/yolo", "v3").code == 0
    assert run("--repo", origin, "tag", "ai/vision/yolo@v3", "prod").code == 0

    assert git_out(origin, "rev-parse", "feature") == feature_head
    assert git_out(origin, "symbolic-ref", "HEAD") == "refs/heads/feature\n"
    assert git_out(origin, "rev-parse", "main~2").strip() == main_before
    assert_clean(origin)
    assert repo_state(origin).files == before_files
    assert not (origin / "models/ai/vision/yolo/_versions/v3").exists()
    shown = git_out(origin, "show", "main:models/ai/vision/yolo/_versions/v3/_version.json")
    assert '"version": "v3"' in shown
    assert run("--repo", origin, "resolve", "ai/vision/yolo:prod").out == "v3\n"
    assert run("--repo", origin, "check").code == 0

    git_out(origin, "checkout", "-q", "main")
    assert_clean(origin)
    assert (origin / "models/ai/vision/yolo/_versions/v3/_version.json").is_file()


def test_a_registry_beside_an_orphan_branch_leaves_that_work_tree_alone(
    origin: Path, run: Run
) -> None:
    git_out(origin, "switch", "-q", "--orphan", "pages")
    (origin / "index.html").write_text("<p>hi</p>\n")
    git_out(origin, "add", "index.html")
    git_out(origin, "commit", "-q", "-m", "pages")
    assert run("--repo", origin, "model", "create", "other").code == 0
    assert sorted(p.name for p in origin.iterdir()) == [".git", "index.html"]
    assert_clean(origin)
    assert git_out(origin, "log", "-1", "--format=%s", "main") == "model create default/other\n"


def test_a_registry_on_its_own_branch_beside_code_is_found(tmp_path: Path, run: Run) -> None:
    code = tmp_path / "code"
    code.mkdir()
    git_out(code, "init", "-q", "-b", "main")
    (code / "train.py").write_text("print('train')\n")
    git_out(code, "add", "train.py")
    git_out(code, "commit", "-q", "-m", "code")
    assert run("init", code, "--branch", "registry").code == 0
    assert git_out(code, "symbolic-ref", "HEAD") == "refs/heads/main\n"

    result = run("--repo", code, "model", "create", "m")
    assert result.code == 0, result
    assert git_out(code, "log", "-1", "--format=%s", "registry") == "model create default/m\n"
    assert git_out(code, "log", "--format=%s", "main") == "code\n"
    assert_clean(code)
    assert sorted(p.name for p in code.iterdir()) == [".git", "train.py"]


def test_a_bare_repository_is_a_registry_too(origin: Path, tmp_path: Path, run: Run) -> None:
    bare = tmp_path / "bare.git"
    git_out(tmp_path, "clone", "-q", "--bare", str(origin), str(bare))
    assert run("--repo", bare, "resolve", "ai/vision/yolo:prod").out == "v1\n"
    assert run("--repo", bare, "tag", "ai/vision/yolo@v2", "prod").code == 0
    assert run("--repo", bare, "resolve", "ai/vision/yolo:prod").out == "v2\n"
    assert git_code(bare, "fsck", "--strict", "--no-dangling") == 0
    assert git_out(bare, "log", "-1", "--format=%s") == "tag ai/vision/yolo:prod v1 -> v2\n"


def test_commands_run_from_a_subdirectory_find_the_registry(
    origin: Path, run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(origin / "models" / "ai")
    assert run("resolve", "ai/vision/yolo:staging").out == "v2\n"
    assert run("tag", "ai/vision/yolo@v2", "prod").code == 0
    assert_clean(origin)


def test_a_merge_conflict_on_the_tag_map_is_how_two_branches_disagree(
    origin: Path, run: Run
) -> None:
    # Unique tags live in one file per model, so two branches moving one tag conflict.
    git_out(origin, "branch", "other")
    assert run("--repo", origin, "tag", "ai/vision/yolo@v2", "prod").code == 0
    git_out(origin, "checkout", "-q", "other")
    (origin / "models/ai/vision/yolo/_tags.json").write_text(
        '{\n  "kind": "tags",\n  "tags": {\n    "prod": "v2",\n    "staging": "v1"\n  }\n}\n'
    )
    git_out(origin, "commit", "-q", "-am", "swap")
    git_out(origin, "checkout", "-q", "main")
    merge = git_code(origin, "merge", "-q", "--no-edit", "other")
    assert merge != 0
    assert "UU models/ai/vision/yolo/_tags.json" in git_out(origin, "status", "--porcelain")
    before = repo_state(origin)
    assert_error(run("--repo", origin, "tag", "ai/vision/yolo@v1", "staging"),
                 "models/ai/vision/yolo/_tags.json")
    assert repo_state(origin) == before


def test_a_merge_that_makes_a_tag_and_a_nested_model_collide_is_reported(
    registry_path: Path, tmp_path: Path, run: Run
) -> None:
    repo = ("--repo", str(registry_path))
    assert run(*repo, "model", "create", "a/b").code == 0
    assert run(*repo, "version", "create", "a/b", "v1").code == 0
    other = tmp_path / "other"
    git_out(tmp_path, "clone", "-q", str(registry_path), str(other))
    assert run("--repo", other, "model", "create", "a/b/x/y").code == 0
    assert run("--repo", other, "version", "create", "a/b/x/y", "v1", "--tag", "prod").code == 0
    assert run(*repo, "tag", "a/b@v1", "x").code == 0
    git_out(registry_path, "pull", "-q", "--no-rebase", "--no-edit", str(other), "main")

    result = run(*repo, "check")
    assert result.code == 1
    assert "collide" in result.err
    assert "run `modelbox refs sync`" not in result.err  # syncing cannot fix it
    assert_error(run(*repo, "refs", "sync"), "a/b:x", "a/b/x/y")
