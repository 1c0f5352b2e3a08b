"""Models and versions: create, list by namespace, show, update, archive and delete."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from core_helpers import assert_clean, git_out

from modelbox.errors import InvalidValueError, VersionNotFoundError
from modelbox.frameworks import MLFramework
from modelbox.names import parse_model, parse_reference
from modelbox.registry import Registry

if TYPE_CHECKING:
    from conftest import Run

M = parse_model("ai/vision/yolo")


@pytest.fixture
def registry(registry_path: Path) -> Iterator[Registry]:
    with closing(Registry.open(registry_path)) as reg:
        yield reg


def test_manifests_are_canonical_json_one_folder_each(
    registry: Registry, registry_path: Path
) -> None:
    registry.create_model(M, owner="o", metadata={"z": 1, "a": [1, 2]})
    registry.create_version(M, "v1", framework="PyTorch", metadata={"é": "ü"})
    for rel in ("models/ai/vision/yolo/_model.json",
                "models/ai/vision/yolo/_versions/v1/_version.json",
                ".modelbox/registry.json"):
        text = (registry_path / rel).read_text(encoding="utf-8")
        assert text == json.dumps(json.loads(text), indent=2, sort_keys=True,
                                  ensure_ascii=False) + "\n"
    version = registry.get_version(M, "v1")
    assert version.framework is MLFramework.PYTORCH
    assert version.metadata == {"é": "ü"}


def test_models_are_listed_by_namespace_including_nested_ones(registry: Registry) -> None:
    for name in ("ai/vision/yolo", "ai/vision", "ai/nlp/bert", "other/x", "plain"):
        registry.create_model(parse_model(name))
    full = [m.full_name for m in registry.list_models()]  # by namespace, then name
    assert full == ["ai/vision", "ai/nlp/bert", "ai/vision/yolo", "default/plain", "other/x"]
    assert [m.full_name for m in registry.list_models("ai")] == [
        "ai/vision", "ai/nlp/bert", "ai/vision/yolo"
    ]
    assert [m.full_name for m in registry.list_models("ai/vision")] == ["ai/vision/yolo"]
    assert [m.full_name for m in registry.list_models("/ai/vision/")] == ["ai/vision/yolo"]
    assert [m.full_name for m in registry.list_models("default")] == ["default/plain"]
    assert registry.list_models("nothing") == []


def test_a_model_and_a_namespace_can_share_a_name(registry: Registry, registry_path: Path) -> None:
    registry.create_model(parse_model("ai/vision"))
    registry.create_model(M)
    registry.create_version(parse_model("ai/vision"), "v1", tags=["prod"])
    registry.create_version(M, "v1", tags=["prod"])
    assert registry.tags(parse_model("ai/vision")) == {"prod": "v1"}
    assert [v.version for v in registry.list_versions(M)] == ["v1"]
    refs = git_out(registry_path, "for-each-ref", "--format=%(refname)", "refs/modelbox")
    assert refs.split() == ["refs/modelbox/tags/ai/vision/prod",
                            "refs/modelbox/tags/ai/vision/yolo/prod"]


def test_model_list_and_show_through_the_cli(registry_path: Path, run: Run) -> None:
    repo = ("--repo", str(registry_path))
    assert run(*repo, "model", "create", "ai/vision/yolo", "--dataset", "coco").code == 0
    assert run(*repo, "model", "create", "nlp/bert").code == 0
    assert run(*repo, "version", "create", "ai/vision/yolo", "v1", "--tag", "prod").code == 0
    listed = json.loads(run(*repo, "model", "list", "--namespace", "ai", "--json").out)
    assert [m["name"] for m in listed] == ["yolo"]
    shown = json.loads(run(*repo, "model", "show", "ai/vision/yolo", "--json").out)
    assert shown["tags"] == {"prod": "v1"}
    assert shown["versions"] == ["v1"]
    assert shown["datasets"] == ["coco"]
    version = json.loads(run(*repo, "version", "show", "ai/vision/yolo:prod", "--json").out)
    assert (version["version"], version["tags"]) == ("v1", ["prod"])
    text = run(*repo, "model", "show", "ai/vision/yolo").out
    assert "tags: prod -> v1" in text


def test_updating_a_model_records_before_and_after(registry: Registry, run: Run,
                                                   registry_path: Path) -> None:
    registry.create_model(M, owner="a@example.com")
    result = run("--repo", registry_path, "model", "update", str(M), "--owner", "b@example.com")
    assert result.code == 0
    assert registry.get_model(M).owner == "b@example.com"
    [event, _] = registry.log(str(M))
    assert (event.operation, event.before, event.after) == (
        "model.update", '{"owner": "a@example.com"}', '{"owner": "b@example.com"}'
    )
    assert_clean(registry_path)


def test_meta_set_and_unset_on_a_tag_reference_edit_the_tagged_version(
    registry: Registry, run: Run, registry_path: Path
) -> None:
    registry.create_model(M)
    registry.create_version(M, "v1", tags=["prod"])
    repo = ("--repo", str(registry_path))
    assert run(*repo, "meta", "set", f"{M}:prod", "cfg", '{"lr": 0.1, "ok": true}').code == 0
    assert registry.get_version(M, "v1").metadata == {"cfg": {"lr": 0.1, "ok": True}}
    assert registry.log(f"{M}@v1")[0].target == f"{M}@v1"
    assert run(*repo, "meta", "unset", f"{M}@v1", "cfg").code == 0
    assert registry.get_version(M, "v1").metadata == {}
    assert_clean(registry_path)


def test_archiving_hides_a_version_and_drops_its_tags(
    registry: Registry, registry_path: Path, run: Run
) -> None:
    registry.create_model(M)
    registry.create_version(M, "v1", tags=["prod", "staging"])
    registry.create_version(M, "v2")
    repo = ("--repo", str(registry_path))
    assert run(*repo, "version", "archive", f"{M}:prod", "--force").code == 0
    assert [v.version for v in registry.list_versions(M)] == ["v2"]
    assert [v.version for v in registry.list_versions(M, archived=True)] == ["v1", "v2"]
    assert registry.tags(M) == {}
    assert git_out(registry_path, "for-each-ref", "refs/modelbox") == ""
    with pytest.raises(InvalidValueError, match="archived"):
        registry.tag(M, "v1", "prod")
    listed = json.loads(run(*repo, "version", "list", str(M), "--all", "--json").out)
    assert [(v["version"], v["archived"]) for v in listed] == [("v1", True), ("v2", False)]

    assert run(*repo, "version", "restore", f"{M}@v1").code == 0
    assert [v.version for v in registry.list_versions(M)] == ["v1", "v2"]
    ops = [e.operation for e in registry.log(f"{M}@v1")]
    assert ops[:4] == ["version.restore", "version.archive", "tag.remove", "tag.remove"]
    assert_clean(registry_path)


def test_deleting_a_version_keeps_it_in_history(
    registry: Registry, registry_path: Path, run: Run
) -> None:
    registry.create_model(M)
    registry.create_version(M, "v1", tags=["prod"])
    registry.create_version(M, "v2")
    repo = ("--repo", str(registry_path))
    assert run(*repo, "version", "delete", f"{M}@v2").code == 0
    assert run(*repo, "version", "delete", f"{M}@v1", "--force").code == 0
    with pytest.raises(VersionNotFoundError):
        registry.get_version(M, "v1")
    assert registry.tags(M) == {}
    assert not (registry_path / "models/ai/vision/yolo/_versions").exists()
    assert git_out(registry_path, "for-each-ref", "refs/modelbox") == ""
    old = git_out(registry_path, "show", "HEAD~2:models/ai/vision/yolo/_versions/v1/_version.json")
    assert json.loads(old)["version"] == "v1"
    assert [e.operation for e in registry.log(f"{M}@v1")][:2] == ["version.delete", "tag.remove"]
    assert_clean(registry_path)
    registry.create_version(M, "v1")  # the name is free again
    assert registry.resolve(parse_reference(f"{M}:latest")) == "v1"
