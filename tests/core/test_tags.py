"""Unique tags: one tag -> version map per model, mirrored as refs/modelbox/tags/*."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from core_helpers import assert_clean, assert_error, git_out, repo_state

from modelbox.check import check
from modelbox.errors import InvalidNameError, TagConflictError, TagNotFoundError
from modelbox.names import Reference, parse_model, parse_reference
from modelbox.registry import Registry

if TYPE_CHECKING:
    from conftest import Run

M = parse_model("ai/vision/yolo")
REF_BASE = "refs/modelbox/tags/ai/vision/yolo"


@pytest.fixture
def registry(registry_path: Path) -> Iterator[Registry]:
    """A registry with ai/vision/yolo@v1, @v2 and @v3 and no tags."""
    with closing(Registry.open(registry_path)) as reg:
        reg.create_model(M)
        for version in ("v1", "v2", "v3"):
            reg.create_version(M, version)
        yield reg


def tag_ref_target(root: Path, tag: str) -> str:
    """The version folder the tag ref's tag object points to, as its tree id."""
    return git_out(root, "rev-parse", f"{REF_BASE}/{tag}^{{tree}}").strip()


def version_tree(root: Path, version: str) -> str:
    path = f"main:models/ai/vision/yolo/_versions/{version}"
    return git_out(root, "rev-parse", path).strip()


def test_moving_a_tag_removes_it_from_the_old_version(registry: Registry) -> None:
    registry.tag(M, "v1", "staging")
    assert registry.tag(M, "v2", "staging") == "v1"
    assert registry.tags(M) == {"staging": "v2"}
    assert registry.resolve(Reference(M, tag="staging")) == "v2"


def test_a_model_keeps_its_tags_in_one_map(registry: Registry, registry_path: Path) -> None:
    registry.tag(M, "v1", "staging")
    registry.tag(M, "v2", "candidate")
    data = (registry_path / "models/ai/vision/yolo/_tags.json").read_text()
    assert json.loads(data) == {"kind": "tags", "tags": {"candidate": "v2", "staging": "v1"}}
    assert data == json.dumps(json.loads(data), indent=2, sort_keys=True) + "\n"


def test_tagging_with_the_tag_it_already_carries_changes_nothing(
    registry: Registry, registry_path: Path
) -> None:
    registry.tag(M, "v1", "staging")
    head = registry.head()
    assert registry.tag(M, "v1", "staging") == "v1"
    assert registry.head() == head
    assert_clean(registry_path)


def test_a_version_can_carry_several_tags(registry: Registry) -> None:
    registry.tag(M, "v1", "staging")
    registry.tag(M, "v1", "candidate")
    assert registry.tags(M) == {"staging": "v1", "candidate": "v1"}


def test_creating_a_version_with_a_taken_tag_fails_and_changes_nothing(
    registry: Registry, registry_path: Path, run: Run
) -> None:
    registry.tag(M, "v1", "staging")
    before = repo_state(registry_path)
    result = run("--repo", registry_path, "version", "create", str(M), "v4", "--tag", "staging")
    assert_error(result, "ai/vision/yolo:staging already points to v1")
    assert repo_state(registry_path) == before
    with pytest.raises(TagConflictError):
        registry.create_version(M, "v4", tags=["fresh", "staging"])
    assert repo_state(registry_path) == before
    assert [v.version for v in registry.list_versions(M)] == ["v1", "v2", "v3"]


def test_creating_a_version_with_tags_assigns_them_in_the_same_commit(
    registry: Registry, registry_path: Path
) -> None:
    head = registry.head()
    registry.create_version(M, "v4", tags=["staging", "canary"])
    assert registry.tags(M) == {"staging": "v4", "canary": "v4"}
    assert git_out(registry_path, "rev-parse", "HEAD~1").strip() == head
    assert tag_ref_target(registry_path, "canary") == version_tree(registry_path, "v4")


def test_untag_removes_the_tag_and_its_ref(registry: Registry, registry_path: Path) -> None:
    registry.tag(M, "v1", "staging")
    assert registry.untag(M, "staging") == "v1"
    assert registry.tags(M) == {}
    assert not (registry_path / "models/ai/vision/yolo/_tags.json").exists()
    assert git_out(registry_path, "for-each-ref", "refs/modelbox") == ""
    with pytest.raises(TagNotFoundError):
        registry.resolve(Reference(M, tag="staging"))
    with pytest.raises(TagNotFoundError):
        registry.untag(M, "staging")
    assert_clean(registry_path)


def test_untag_through_the_cli(registry: Registry, registry_path: Path, run: Run) -> None:
    registry.tag(M, "v2", "staging")
    result = run("--repo", registry_path, "untag", str(M), "staging")
    assert result.code == 0
    assert "was on v2" in result.out
    assert registry.tags(M) == {}
    assert_error(run("--repo", registry_path, "untag", str(M), "staging"), "ai/vision/yolo:staging")


def test_latest_is_the_newest_version(registry: Registry, run: Run, registry_path: Path) -> None:
    assert registry.resolve(Reference(M, tag="latest")) == "v3"
    registry.create_version(M, "a0")  # newest by creation, whatever its name sorts like
    assert run("--repo", registry_path, "resolve", f"{M}:latest").out == "a0\n"


def test_latest_cannot_be_assigned(registry: Registry, registry_path: Path, run: Run) -> None:
    before = repo_state(registry_path)
    with pytest.raises(InvalidNameError, match="computed"):
        registry.tag(M, "v1", "latest")
    with pytest.raises(InvalidNameError, match="computed"):
        registry.create_version(M, "v9", tags=["latest"])
    assert_error(run("--repo", registry_path, "tag", f"{M}@v1", "latest"), "'latest'")
    assert repo_state(registry_path) == before


def test_latest_of_a_model_without_versions_is_not_found(registry_path: Path) -> None:
    with closing(Registry.open(registry_path)) as registry:
        registry.create_model(parse_model("empty"))
        with pytest.raises(TagNotFoundError):
            registry.resolve(parse_reference("empty:latest"))


def test_tag_refs_point_to_the_tagged_version_for_plain_git(
    registry: Registry, registry_path: Path
) -> None:
    registry.tag(M, "v1", "staging")
    registry.tag(M, "v3", "candidate")
    listed = git_out(registry_path, "for-each-ref", "--format=%(refname) %(objecttype)",
                     "refs/modelbox")
    assert listed.splitlines() == [f"{REF_BASE}/candidate tag", f"{REF_BASE}/staging tag"]
    shown = git_out(registry_path, "cat-file", "-p", f"{REF_BASE}/staging")
    assert "type tree" in shown
    assert shown.rstrip().endswith("ai/vision/yolo@v1")
    assert tag_ref_target(registry_path, "staging") == version_tree(registry_path, "v1")
    manifest = git_out(
        registry_path, "cat-file", "-p", f"{REF_BASE}/candidate^{{tree}}:_version.json"
    )
    assert json.loads(manifest)["version"] == "v3"

    registry.tag(M, "v2", "staging")
    assert tag_ref_target(registry_path, "staging") == version_tree(registry_path, "v2")
    remote = git_out(registry_path, "ls-remote", ".", "refs/modelbox/*")
    assert f"{REF_BASE}/staging" in remote


def test_refs_sync_is_idempotent(registry: Registry, registry_path: Path, run: Run) -> None:
    registry.tag(M, "v1", "staging")
    assert registry.sync_refs() == {}
    result = run("--repo", registry_path, "refs", "sync")
    assert (result.code, result.out) == (0, "0 ref(s) changed\n")
    assert registry.sync_refs() == {}


def test_a_ref_deleted_by_hand_is_drift_that_check_fix_repairs(
    registry: Registry, registry_path: Path, run: Run
) -> None:
    registry.tag(M, "v1", "staging")
    registry.tag(M, "v2", "candidate")
    expected = git_out(registry_path, "for-each-ref", "refs/modelbox")
    git_out(registry_path, "update-ref", "-d", f"{REF_BASE}/staging")

    result = run("--repo", registry_path, "check")
    assert result.code == 1
    assert f"{REF_BASE}/staging: tag ref is missing" in result.err
    assert "modelbox refs sync" in result.err
    [problem] = check(registry)
    assert problem.fixable

    result = run("--repo", registry_path, "check", "--fix")
    assert result.code == 0, result
    assert git_out(registry_path, "for-each-ref", "refs/modelbox") == expected
    assert check(registry) == []


def test_refs_sync_removes_stray_refs_and_repairs_moved_ones(
    registry: Registry, registry_path: Path, run: Run
) -> None:
    registry.tag(M, "v1", "staging")
    expected = git_out(registry_path, "for-each-ref", "refs/modelbox")
    head = git_out(registry_path, "rev-parse", "HEAD").strip()
    git_out(registry_path, "update-ref", f"{REF_BASE}/bogus", head)
    git_out(registry_path, "update-ref", f"{REF_BASE}/staging", head)
    problems = {p.path: p.message for p in check(registry)}
    assert "names no tag" in problems[f"{REF_BASE}/bogus"]
    assert "out of date" in problems[f"{REF_BASE}/staging"]

    result = run("--repo", registry_path, "refs", "sync", "--json")
    assert result.code == 0
    changed = json.loads(result.out)
    assert changed[f"{REF_BASE}/bogus"]["after"] is None
    assert changed[f"{REF_BASE}/staging"]["before"] == head
    assert git_out(registry_path, "for-each-ref", "refs/modelbox") == expected
    assert run("--repo", registry_path, "check").code == 0


def test_packed_tag_refs_are_moved_and_deleted(registry: Registry, registry_path: Path) -> None:
    registry.tag(M, "v1", "staging")
    registry.tag(M, "v1", "candidate")
    git_out(registry_path, "pack-refs", "--all")
    registry.tag(M, "v2", "staging")
    registry.untag(M, "candidate")
    listed = git_out(registry_path, "for-each-ref", "--format=%(refname)", "refs/modelbox")
    assert listed.split() == [f"{REF_BASE}/staging"]
    assert tag_ref_target(registry_path, "staging") == version_tree(registry_path, "v2")
    assert check(registry) == []


def test_a_tag_and_a_nested_model_cannot_share_a_ref_path(registry: Registry) -> None:
    registry.tag(M, "v1", "edge")
    with pytest.raises(InvalidNameError, match="collide"):
        registry.create_model(parse_model("ai/vision/yolo/edge"))
    registry.create_model(parse_model("ai/vision/yolo/tiny"))
    with pytest.raises(InvalidNameError, match="collide"):
        registry.tag(M, "v2", "tiny")


def test_a_tag_and_a_deeper_nested_model_cannot_share_a_ref_path(
    registry: Registry, registry_path: Path
) -> None:
    # refs/modelbox/tags/ai/vision/yolo/edge cannot be both a ref and a folder of refs.
    registry.tag(M, "v1", "edge")
    before = repo_state(registry_path)
    with pytest.raises(InvalidNameError, match="collide"):
        registry.create_model(parse_model("ai/vision/yolo/edge/nano"))
    assert repo_state(registry_path) == before

    deep = parse_model("ai/vision/yolo/mobile/nano")
    registry.create_model(deep)
    registry.create_version(deep, "v1", tags=["prod"])
    before = repo_state(registry_path)
    with pytest.raises(InvalidNameError, match="collide"):
        registry.tag(M, "v2", "mobile")
    assert repo_state(registry_path) == before
    assert check(registry) == []
