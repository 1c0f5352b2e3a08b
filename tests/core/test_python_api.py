"""The Python API of the ModelBox seeds: ModelBoxClient, models, versions, metadata, metrics."""

from __future__ import annotations

import importlib
import math
from collections.abc import Iterator
from pathlib import Path

import pytest
from core_helpers import assert_clean, git_out, repo_state

import modelbox
from modelbox import MLFramework, Model, ModelBoxClient, ModelboxError, ModelVersion
from modelbox.errors import (
    InvalidNameError,
    InvalidValueError,
    ModelExistsError,
    RegistryNotFoundError,
    RemoteError,
    TagConflictError,
    VersionExistsError,
)

PUBLIC_API = {"Artifact", "ArtifactMime", "AuditEvent", "Checkpoint", "Event", "Experiment",
              "FileType", "MLFramework", "Model", "ModelBoxClient", "ModelVersion",
              "ModelboxError", "Namespace"}


@pytest.fixture
def client(registry_path: Path) -> Iterator[ModelBoxClient]:
    with ModelBoxClient(registry_path) as c:
        yield c


def test_the_public_surface_is_exactly_what_is_tested() -> None:
    assert set(modelbox.__all__) == PUBLIC_API
    assert len(modelbox.__all__) == len(PUBLIC_API)
    for name in modelbox.__all__:
        assert getattr(modelbox, name) is not None
    namespace: dict[str, object] = {}
    exec("from modelbox import *", namespace)
    assert set(namespace) >= PUBLIC_API
    with pytest.raises(AttributeError):
        _ = modelbox.NoSuchThing


def test_the_git_layer_names_each_member_from_its_own_module() -> None:
    # modelbox.refs loads its members on first use; every name it exports must resolve to
    # the object its module defines, and nothing else may.
    from modelbox import refs

    assert sorted(refs.__all__) == sorted(refs._LAZY)
    for name, module in refs._LAZY.items():
        assert getattr(refs, name) is getattr(importlib.import_module(module), name)
    with pytest.raises(AttributeError):
        _ = refs.NoSuchThing
    assert importlib.import_module("modelbox").__version__


def test_every_error_modelbox_raises_derives_from_one_root() -> None:
    from modelbox import errors

    for name in errors.__all__:
        assert issubclass(getattr(errors, name), ModelboxError)
    assert ModelboxError.exit_code == 1


def test_create_model_as_in_seed_002(client: ModelBoxClient, registry_path: Path) -> None:
    model = client.create_model(
        "yolo", "owner@email.com", "ai/vision/", "object_detection", "yolo_des", {"meta": "foo"}
    )
    assert isinstance(model, Model)
    assert model.id == "ai/vision/yolo"
    assert (model.name, model.namespace, model.owner, model.task, model.description) == (
        "yolo", "ai/vision", "owner@email.com", "object_detection", "yolo_des"
    )
    assert model.metadata == {"meta": "foo"}
    assert client.model("ai/vision/yolo").owner == "owner@email.com"
    assert_clean(registry_path)


def test_create_model_version_as_in_seed_002(client: ModelBoxClient, registry_path: Path) -> None:
    model = client.create_model("yolo", "owner@email.com", "ai/vision/", "object_detection",
                                "yolo_des", {"meta": "foo"})
    mv = client.create_model_version(
        model.id, "yolo4_v1", "v1", "A Yolo v4 trained with custom dataset", None,
        {"model_hyperparam_1": "value"}, MLFramework.PYTORCH,
    )
    assert isinstance(mv, ModelVersion)
    assert mv.id == "ai/vision/yolo@v1"
    assert (mv.model_id, mv.version, mv.name) == ("ai/vision/yolo", "v1", "yolo4_v1")
    assert mv.description == "A Yolo v4 trained with custom dataset"
    assert mv.framework is MLFramework.PYTORCH
    assert mv.metadata == {"model_hyperparam_1": "value"}
    assert client.resolve("ai/vision/yolo:latest") == "v1"
    assert_clean(registry_path)


def test_new_model_and_new_model_version_as_in_seed_003(client: ModelBoxClient) -> None:
    model = client.new_model("resnet", "ml@example.com", "ai/vision", "classification", "d",
                             None, {"team": "cv"})
    assert model.id == "ai/vision/resnet"
    mv = model.new_model_version("v1", "resnet50", "first", None, {"epochs": 40},
                                 ["staging", "candidate"], MLFramework.PYTORCH)
    assert mv.unique_tags == ["candidate", "staging"]
    assert model.tags() == {"staging": "v1", "candidate": "v1"}
    assert client.model_version("ai/vision/resnet:staging").version == "v1"
    mv2 = model.new_model_version("v2", unique_tags=["beta"], framework="tensorflow")
    assert mv2.framework is MLFramework.TENSORFLOW
    assert mv2.name == "resnet"  # defaults to the model's name
    assert [v.version for v in model.versions()] == ["v1", "v2"]
    with pytest.raises(TagConflictError):
        model.new_model_version("v3", unique_tags=["staging"])
    assert [v.version for v in model.versions()] == ["v1", "v2"]


def test_a_bare_model_name_goes_to_the_default_namespace(client: ModelBoxClient) -> None:
    assert client.new_model("plain").id == "default/plain"
    assert client.new_model("deep/er/model").id == "deep/er/model"
    assert [m.id for m in client.models()] == ["deep/er/model", "default/plain"]
    assert [m.id for m in client.models("deep")] == ["deep/er/model"]


def test_duplicates_and_bad_names_raise(client: ModelBoxClient, registry_path: Path) -> None:
    model = client.new_model("m")
    model.new_model_version("v1")
    before = repo_state(registry_path)
    with pytest.raises(ModelExistsError):
        client.new_model("m")
    with pytest.raises(VersionExistsError):
        model.new_model_version("v1")
    with pytest.raises(InvalidNameError):
        client.new_model("../m")
    with pytest.raises(InvalidNameError):
        model.new_model_version("a..b")
    with pytest.raises(InvalidValueError, match="'caffe9'"):
        model.new_model_version("v2", framework="caffe9")
    assert repo_state(registry_path) == before


def test_update_metadata_on_models_and_versions(
    client: ModelBoxClient, registry_path: Path
) -> None:
    model = client.new_model("m", metadata={"a": 1})
    mv = model.new_model_version("v1")
    model.update_metadata("team", {"name": "cv", "size": 3})
    mv.update_metadata("dataset", "coco-2017")
    mv.update_metadata("dataset", "coco-2017")  # unchanged: no commit
    assert model.metadata == {"a": 1, "team": {"name": "cv", "size": 3}}
    assert mv.metadata == {"dataset": "coco-2017"}
    assert client.model_version("m@v1").metadata == {"dataset": "coco-2017"}
    events = client.log("m@v1")
    assert [(e.operation, e.before, e.after) for e in events] == [
        ("version.update", None, '"coco-2017"'), ("version.create", None, None)
    ]
    assert git_out(registry_path, "rev-list", "--count", "HEAD") == "5\n"
    with pytest.raises(InvalidValueError):
        mv.update_metadata("bad", float("nan"))
    with pytest.raises(InvalidValueError):
        mv.update_metadata("bad", object())


def test_log_metrics_keeps_series_and_a_summary_of_latest_values(
    client: ModelBoxClient, registry_path: Path
) -> None:
    mv = client.new_model("m").new_model_version("v1")
    mv.log_metrics({"acc": 0.8, "loss": 1.5}, step=1, wallclock=1000.0)
    mv.log_metrics({"acc": 0.91}, step=2, wallclock=1001.5)
    mv.log_metrics({"note": "converged"}, step=3)
    assert mv.metrics_summary == {"acc": 0.91, "loss": 1.5, "note": "converged"}
    series = mv.metrics()
    assert [(p["step"], p["wallclock"], p["value"]) for p in series["acc"]] == [
        (1, 1000.0, 0.8), (2, 1001.5, 0.91)
    ]
    assert series["loss"] == [{"step": 1, "wallclock": 1000.0, "value": 1.5}]
    assert isinstance(series["note"][0]["wallclock"], float)
    assert client.model_version("m@v1").metrics_summary["acc"] == 0.91
    assert_clean(registry_path)
    assert client.log("m@v1")[0].operation == "metrics.log"


def test_models_log_metrics_too(client: ModelBoxClient) -> None:
    model = client.new_model("m")
    model.log_metrics({"best_acc": 3}, step=0, wallclock=5.0)
    assert model.metrics() == {"best_acc": [{"step": 0, "wallclock": 5.0, "value": 3.0}]}


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_metrics_are_refused_and_nothing_changes(
    client: ModelBoxClient, registry_path: Path, bad: float
) -> None:
    mv = client.new_model("m").new_model_version("v1")
    mv.log_metrics({"acc": 0.5}, step=1)
    before = repo_state(registry_path)
    with pytest.raises(InvalidValueError, match="'acc'"):
        mv.log_metrics({"loss": 1.0, "acc": bad}, step=2)
    assert repo_state(registry_path) == before
    assert mv.metrics_summary == {"acc": 0.5}


def test_metric_steps_must_be_integers(client: ModelBoxClient) -> None:
    mv = client.new_model("m").new_model_version("v1")
    with pytest.raises(InvalidValueError, match="step"):
        mv.log_metrics({"acc": 0.5}, step=1.5)  # type: ignore[arg-type]  # the wrong type is the test


def test_tag_untag_and_archive_through_versions(client: ModelBoxClient) -> None:
    model = client.new_model("m")
    v1 = model.new_model_version("v1", unique_tags=["prod"])
    v2 = model.new_model_version("v2")
    v2.tag("prod")
    assert v1.unique_tags == []
    assert v2.unique_tags == ["prod"]
    with pytest.raises(InvalidValueError):
        v1.untag("prod")
    v2.untag("prod")
    assert model.tags() == {}
    v2.tag("prod")
    v2.archive(force=True)
    assert v2.archived
    assert model.tags() == {}
    assert [v.version for v in model.versions()] == ["v1"]
    assert [v.version for v in model.versions(archived=True)] == ["v1", "v2"]


def test_the_client_refuses_what_is_not_a_local_registry(tmp_path: Path) -> None:
    with pytest.raises(RegistryNotFoundError):
        ModelBoxClient(tmp_path)
    # A URL opens a read-only registry (tests/reach/test_reach_url.py); one that nothing
    # serves is one clear error, and a URL is no place to create a registry.
    with pytest.raises(RemoteError, match="cannot reach"):
        ModelBoxClient("git://127.0.0.1:1/registry.git")
    with pytest.raises(InvalidValueError, match="create a registry in a folder"):
        ModelBoxClient("git://127.0.0.1:1/registry.git", create=True)


def test_the_client_can_create_a_registry(tmp_path: Path) -> None:
    with ModelBoxClient(tmp_path / "new", create=True) as client:
        client.new_model("m")
    with ModelBoxClient(tmp_path / "new", create=True) as client:
        assert [m.id for m in client.models()] == ["default/m"]
    assert_clean(tmp_path / "new")



_NEVER_CLOSED = """
import sys
from modelbox import ModelBoxClient
client = ModelBoxClient(sys.argv[1])
model = client.model("a/b")
model.new_model_version("v2")
print(sorted(v.version for v in model.versions()))
"""


def test_a_script_that_never_closes_the_client_exits_quietly(registry_path: Path) -> None:
    """Most scripts never call close(). Once the registry has a pack (any ``git gc``, or
    modelbox's own maintenance), dulwich's packs warned from ``__del__`` at exit, and the
    warning's own import failed then: four tracebacks on stderr after a run that worked."""
    import subprocess
    import sys

    with ModelBoxClient(registry_path) as c:
        c.create_model("a/b").new_model_version("v1")
    subprocess.run(["git", "repack", "-adq"], cwd=registry_path, check=True)
    assert list((registry_path / ".git" / "objects" / "pack").glob("*.pack"))
    done = subprocess.run([sys.executable, "-c", _NEVER_CLOSED, str(registry_path)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert (done.returncode, done.stdout, done.stderr) == (0, "['v1', 'v2']\n", "")
