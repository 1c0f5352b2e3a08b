"""Hand edits in the work tree: a command that would overwrite one refuses and changes nothing."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from core_helpers import assert_clean, assert_error, git_out, repo_state

from modelbox.errors import WorktreeDirtyError
from modelbox.names import parse_model, parse_reference
from modelbox.registry import Registry

if TYPE_CHECKING:
    from conftest import Run

M = parse_model("m")
TAGS = "models/default/m/_tags.json"
MODEL = "models/default/m/_model.json"
V1 = "models/default/m/_versions/v1/_version.json"


@pytest.fixture
def registry(registry_path: Path) -> Iterator[Registry]:
    with closing(Registry.open(registry_path)) as reg:
        reg.create_model(M)
        reg.create_version(M, "v1", tags=["prod"])
        reg.create_version(M, "v2")
        yield reg


def test_an_unstaged_edit_to_a_file_the_command_writes_makes_it_refuse(
    registry: Registry, registry_path: Path, run: Run
) -> None:
    edited = (registry_path / TAGS).read_text().replace("v1", "v2")
    (registry_path / TAGS).write_text(edited)
    before = repo_state(registry_path)
    assert_error(run("--repo", registry_path, "tag", "m@v2", "staging"), TAGS, "uncommitted")
    assert repo_state(registry_path) == before
    assert (registry_path / TAGS).read_text() == edited
    with pytest.raises(WorktreeDirtyError) as info:
        registry.untag(M, "prod")
    assert info.value.path == TAGS
    assert repo_state(registry_path) == before


def test_a_staged_edit_to_a_file_the_command_writes_makes_it_refuse(
    registry: Registry, registry_path: Path, run: Run
) -> None:
    edited = (registry_path / MODEL).read_text().replace('"owner": ""', '"owner": "me"')
    (registry_path / MODEL).write_text(edited)
    git_out(registry_path, "add", MODEL)
    before = repo_state(registry_path)
    assert_error(run("--repo", registry_path, "meta", "set", "m", "team", '"cv"'), MODEL)
    assert repo_state(registry_path) == before
    assert git_out(registry_path, "diff", "--cached", "--name-only") == f"{MODEL}\n"


def test_a_staged_edit_reverted_in_the_work_tree_still_blocks(
    registry: Registry, registry_path: Path
) -> None:
    original = (registry_path / V1).read_text()
    (registry_path / V1).write_text(original.replace('"description": ""', '"description": "x"'))
    git_out(registry_path, "add", V1)
    (registry_path / V1).write_text(original)
    before = repo_state(registry_path)
    with pytest.raises(WorktreeDirtyError):
        registry.set_metadata(parse_reference("m@v1"), "k", 1)
    assert repo_state(registry_path) == before


def test_a_file_deleted_by_hand_blocks_the_command_that_writes_it(
    registry: Registry, registry_path: Path
) -> None:
    (registry_path / V1).unlink()
    before = repo_state(registry_path)
    with pytest.raises(WorktreeDirtyError):
        registry.set_metadata(parse_reference("m@v1"), "k", 1)
    assert repo_state(registry_path) == before


def test_an_untracked_file_where_the_command_would_write_blocks_it(
    registry: Registry, registry_path: Path
) -> None:
    target = registry_path / "models/default/m/_versions/v3/_version.json"
    target.parent.mkdir(parents=True)
    target.write_text("mine\n")
    before = repo_state(registry_path)
    with pytest.raises(WorktreeDirtyError):
        registry.create_version(M, "v3")
    assert repo_state(registry_path) == before
    assert target.read_text() == "mine\n"


def test_an_unrelated_untracked_file_does_not_block(
    registry: Registry, registry_path: Path, run: Run
) -> None:
    (registry_path / "notes.txt").write_text("todo\n")
    (registry_path / "models/default/m/scratch.txt").write_text("scratch\n")
    assert run("--repo", registry_path, "tag", "m@v2", "staging").code == 0
    assert registry.tags(M) == {"prod": "v1", "staging": "v2"}
    status = git_out(registry_path, "status", "--porcelain", "--untracked-files=all")
    assert sorted(status.splitlines()) == ["?? models/default/m/scratch.txt", "?? notes.txt"]
    assert (registry_path / "notes.txt").read_text() == "todo\n"


def test_an_edit_to_a_file_the_command_does_not_touch_is_preserved(
    registry: Registry, registry_path: Path
) -> None:
    edited = (registry_path / V1).read_text() + " "
    (registry_path / V1).write_text(edited)
    git_out(registry_path, "add", V1)
    (registry_path / MODEL).write_text((registry_path / MODEL).read_text() + "\n")
    registry.tag(M, "v2", "staging")
    registry.create_version(M, "v3")
    assert (registry_path / V1).read_text() == edited
    status = git_out(registry_path, "status", "--porcelain").splitlines()
    assert sorted(status) == [f" M {MODEL}", f"M  {V1}"]


def test_refusing_leaves_a_clean_retry_possible(registry: Registry, registry_path: Path) -> None:
    original = (registry_path / TAGS).read_text()
    (registry_path / TAGS).write_text("{}\n")
    with pytest.raises(WorktreeDirtyError):
        registry.tag(M, "v2", "staging")
    git_out(registry_path, "checkout", "--", TAGS)
    assert (registry_path / TAGS).read_text() == original
    registry.tag(M, "v2", "staging")
    assert registry.tags(M) == {"prod": "v1", "staging": "v2"}
    assert_clean(registry_path)


def test_a_file_touched_but_unchanged_does_not_block(
    registry: Registry, registry_path: Path
) -> None:
    # Same content, new mtime: git would call it clean, so must modelbox.
    (registry_path / TAGS).write_bytes((registry_path / TAGS).read_bytes())
    registry.tag(M, "v2", "staging")
    assert_clean(registry_path)
