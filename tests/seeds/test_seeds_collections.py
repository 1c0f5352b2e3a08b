"""Seed 004's collections: listed apart from models, reverse links, one link per source."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import Run
from hostile import assert_refused, fingerprint

from modelbox import ModelBoxClient, ModelboxError


@pytest.fixture
def client(registry_path: Path) -> ModelBoxClient:
    c = ModelBoxClient(registry_path)
    model = c.new_model("detector", "me", "ai")
    model.new_model_version("v1")
    model.new_model_version("v2")
    c.new_collection("prod", namespace="ai", description="best ones")
    c.new_collection("mnist", namespace="ai")
    return c


def test_collection_list_is_apart_from_model_list(
    client: ModelBoxClient, run: Run, registry_path: Path
) -> None:
    client.model("ai/prod").link("ai/detector@v1")
    listed = run("--repo", registry_path, "collection", "list", "--json")
    assert listed.code == 0, listed.err
    assert [(c["namespace"], c["name"], c["links"]) for c in json.loads(listed.out)] == [
        ("ai", "mnist", 0), ("ai", "prod", 1)]
    text = run("--repo", registry_path, "collection", "list", "--namespace", "ai")
    assert "ai/prod\t\t\t1 link(s)\tbest ones" in text.out
    models = json.loads(run("--repo", registry_path, "model", "list", "--json").out)
    assert [m["name"] for m in models] == ["detector"]
    assert [m.id for m in client.models()] == ["ai/detector"]
    assert [c.id for c in client.collections()] == ["ai/mnist", "ai/prod"]
    assert client.collections("other") == []


def test_a_version_lists_every_collection_linking_it(
    client: ModelBoxClient, run: Run, registry_path: Path
) -> None:
    client.model("ai/prod").link("ai/detector@v1")
    client.model("ai/mnist").link("ai/detector@v1")
    client.model("ai/mnist").link("ai/detector@v2")
    version = client.model_version("ai/detector@v1")
    assert version.collections() == ["ai/mnist@v0", "ai/prod@v0"]
    assert client.model_version("ai/detector@v2").collections() == ["ai/mnist@v1"]
    shown = json.loads(run("--repo", registry_path, "version", "show", "ai/detector@v1",
                           "--json").out)
    assert shown["collections"] == ["ai/mnist@v0", "ai/prod@v0"]
    text = run("--repo", registry_path, "version", "show", "ai/detector@v2")
    assert 'collections: ["ai/mnist@v1"]' in text.out


def test_linking_the_same_source_twice_is_refused_with_the_existing_link(
    client: ModelBoxClient, run: Run, registry_path: Path
) -> None:
    client.model("ai/prod").link("ai/detector@v1")
    client.model("ai/detector").version("v1").tag("best")
    before = fingerprint(registry_path)
    for source in ("ai/detector@v1", "ai/detector:best"):  # the same version, both ways
        result = run("--repo", registry_path, "link", source, "ai/prod")
        assert_refused(result.code, result.err, "ai/detector@v1", "ai/prod@v0")
    result = run("--repo", registry_path, "link", "ai/detector@v1", "ai/prod",
                 "--version", "again")
    assert_refused(result.code, result.err, "already", "ai/prod@v0")
    assert fingerprint(registry_path) == before
    with pytest.raises(ModelboxError, match="ai/prod@v0"):
        client.model("ai/prod").link("ai/detector@v1")
    # Another collection, or another version, still links fine.
    assert client.model("ai/mnist").link("ai/detector@v1").id == "ai/mnist@v0"
    assert client.model("ai/prod").link("ai/detector@v2").id == "ai/prod@v1"


def test_an_unlinked_source_may_be_linked_again(client: ModelBoxClient) -> None:
    made = client.model("ai/prod").link("ai/detector@v1")
    made.unlink()
    assert client.model("ai/prod").link("ai/detector@v1").link == "ai/detector@v1"


def test_collection_list_of_a_bad_namespace_is_one_line(
    client: ModelBoxClient, run: Run, registry_path: Path
) -> None:
    result = run("--repo", registry_path, "collection", "list", "--namespace", "../x")
    assert_refused(result.code, result.err, "..")


def test_a_collection_carries_a_display_name_with_spaces(
    client: ModelBoxClient, run: Run, registry_path: Path
) -> None:
    made = client.new_collection("mnist-gray", namespace="ai",
                                 display_name="MNIST Grayscale 28x28")
    assert made.display_name == "MNIST Grayscale 28x28"
    assert client.model("ai/prod").display_name == "prod"  # none given: its name
    created = run("--repo", registry_path, "collection", "create", "ai/cifar",
                  "--display-name", "CIFAR 10 (colour)", "--json")
    assert created.code == 0, created.err
    assert json.loads(created.out)["display_name"] == "CIFAR 10 (colour)"
    listed = {c["name"]: c for c in json.loads(
        run("--repo", registry_path, "collection", "list", "--json").out)}
    assert listed["mnist-gray"]["display_name"] == "MNIST Grayscale 28x28"
    assert "ai/cifar\tCIFAR 10 (colour)\t" in run("--repo", registry_path, "collection",
                                                    "list").out
    shown = json.loads(run("--repo", registry_path, "model", "show", "ai/cifar", "--json").out)
    assert shown["display_name"] == "CIFAR 10 (colour)"
    # Written only when set: a plain model's manifest keeps its bytes.
    plain = registry_path / "models/ai/detector/_model.json"
    assert "display_name" not in plain.read_text()


@pytest.mark.parametrize("display, needle", [
    ("line\nbreak", "control character"), ("tab\there", "control character"),
    ("x" * 201, "at most 200"),
])
def test_a_bad_display_name_is_one_line(
    client: ModelBoxClient, run: Run, registry_path: Path, display: str, needle: str
) -> None:
    before = fingerprint(registry_path)
    result = run("--repo", registry_path, "collection", "create", "ai/bad",
                 "--display-name", display)
    assert_refused(result.code, result.err, needle)
    assert fingerprint(registry_path) == before
    with pytest.raises(ModelboxError, match=needle):
        client.new_collection("bad", namespace="ai", display_name=display)
