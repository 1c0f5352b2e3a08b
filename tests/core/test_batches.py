"""Batches: many writes published at once, still one audited commit each, all or nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from core_helpers import assert_clean, git_out, repo_state

from modelbox import ModelBoxClient
from modelbox.errors import VersionExistsError, WorktreeDirtyError


@pytest.fixture
def client(registry_path: Path) -> Iterator[ModelBoxClient]:
    with ModelBoxClient(registry_path) as c:
        c.new_model("m")
        yield c


def test_a_batch_keeps_one_commit_per_change(client: ModelBoxClient, registry_path: Path) -> None:
    head = git_out(registry_path, "rev-parse", "HEAD").strip()
    model = client.model("m")
    with client.batch():
        model.new_model_version("v1", unique_tags=["prod"])
        model.new_model_version("v2")
        client.model_version("m@v2").tag("prod")
        assert model.tags() == {"prod": "v2"}  # reads inside see the staged commits
    assert git_out(registry_path, "log", "--format=%s", f"{head}..HEAD").splitlines() == [
        "tag default/m:prod v1 -> v2", "version create default/m@v2",
        "version create default/m@v1",
    ]
    assert_clean(registry_path)
    assert git_out(registry_path, "rev-parse", "refs/modelbox/tags/default/m/prod^{tree}") == (
        git_out(registry_path, "rev-parse", "HEAD:models/default/m/_versions/v2")
    )
    assert [e.operation for e in client.log("m:prod")] == ["tag.move", "tag.assign"]


def test_a_batch_that_raises_publishes_nothing(client: ModelBoxClient, registry_path: Path) -> None:
    model = client.model("m")
    model.new_model_version("v1")
    before = repo_state(registry_path)
    with pytest.raises(VersionExistsError), client.batch():
        model.new_model_version("v2", unique_tags=["prod"])
        model.new_model_version("v1")
    assert repo_state(registry_path) == before
    assert [v.version for v in model.versions()] == ["v1"]
    assert model.tags() == {}


def test_a_batch_refuses_to_overwrite_a_hand_edit(
    client: ModelBoxClient, registry_path: Path
) -> None:
    model = client.model("m")
    model.new_model_version("v1")
    manifest = registry_path / "models/default/m/_versions/v1/_version.json"
    manifest.write_text(manifest.read_text().replace('"description": ""', '"description": "x"'))
    before = repo_state(registry_path)
    with pytest.raises(WorktreeDirtyError), client.batch():
        model.new_model_version("v2")
        client.model_version("m@v1").update_metadata("k", 1)
    assert repo_state(registry_path) == before
