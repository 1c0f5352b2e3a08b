"""Seed 003's Python objects and metric model, through the API and the CLI (issue 19)."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest
from conftest import Run
from hostile import assert_refused, fingerprint

import modelbox
from modelbox import Artifact, ArtifactMime, FileType, ModelBoxClient


@pytest.fixture
def client(registry_path: Path) -> ModelBoxClient:
    return ModelBoxClient(registry_path)


def test_the_seed_names_import_from_modelbox() -> None:
    assert modelbox.Artifact is Artifact
    assert FileType.UNDEFINED.value == "UNDEFINED"
    plain: str = "application/octet-stream"
    assert ArtifactMime.Unknown == plain  # a str enum: compares equal to its string


def test_an_artifact_is_constructible_as_the_seed_writes_it() -> None:
    bare = Artifact("ns/m@v1", "model.pt")
    assert bare.mime_type is ArtifactMime.Unknown
    assert (bare.checksum, bare.id, bare.file_type) == ("", "model.pt", FileType.UNDEFINED)
    full = Artifact("ns/m@v1", "w.onnx", ArtifactMime.Onnx, "ab" * 32, "my-id")
    assert full.id == "my-id"
    assert full.mime_type == "application/onnx"  # a str enum: string comparisons hold
    odd = Artifact("ns/m@v1", "x.weird", "application/x-something-else")
    assert type(odd.mime_type) is str


def test_uploaded_artifacts_carry_mime_enum_and_updated_at(
    client: ModelBoxClient, tmp_path: Path, run: Run, registry_path: Path
) -> None:
    model = client.new_model("m", "me", "ns")
    version = model.new_model_version("v1")
    weights, notes = tmp_path / "w.safetensors", tmp_path / "notes.zzz"
    weights.write_bytes(b"\0" * 16)
    notes.write_bytes(b"\x01\x02\x03")
    added = version.upload_artifacts([weights, notes])  # the seed's plural
    assert {a.path for a in added} == {"w.safetensors", "notes.zzz"}
    found = {a.path: a for a in version.artifacts()}
    assert found["w.safetensors"].mime_type is ArtifactMime.Safetensors
    safetensors: str = "application/vnd.safetensors"
    assert found["w.safetensors"].mime_type == safetensors
    assert isinstance(found["w.safetensors"].updated_at, datetime)
    assert found["w.safetensors"].id == found["w.safetensors"].checksum
    listed = run("--repo", registry_path, "artifact", "list", "ns/m@v1", "--json")
    assert listed.code == 0, listed.err
    shown = {a["path"]: a for a in json.loads(listed.out)}
    assert shown["w.safetensors"]["mime_type"] == "application/vnd.safetensors"
    assert shown["w.safetensors"]["updated_at"]
    text = run("--repo", registry_path, "artifact", "list", "ns/m@v1")
    assert "\tMODEL\tapplication/vnd.safetensors" in text.out


def test_models_and_versions_have_created_and_updated_at(
    client: ModelBoxClient, run: Run, registry_path: Path
) -> None:
    model = client.new_model("m", "me", "ns")
    version = model.new_model_version("v1")
    assert model.created_at <= model.updated_at
    created = version.created_at
    assert version.updated_at >= created
    before = datetime.now(timezone.utc).replace(microsecond=0)
    version.update_metadata("lr", 0.1)
    assert version.updated_at >= before  # the metadata change moved it
    shown = run("--repo", registry_path, "version", "show", "ns/m@v1", "--json")
    assert shown.code == 0, shown.err
    document = json.loads(shown.out)
    assert datetime.fromisoformat(document["updated_at"]) >= before
    model_doc = json.loads(run("--repo", registry_path, "model", "show", "ns/m", "--json").out)
    assert model_doc["created_at"] and model_doc["updated_at"]


def test_experiments_and_checkpoints_update_metadata(
    client: ModelBoxClient, run: Run, registry_path: Path
) -> None:
    experiment = client.new_experiment("run1", "me", "ns")
    experiment.update_metadata("seed", 7)
    assert experiment.metadata == {"seed": 7}
    checkpoint = experiment.new_checkpoint(1)
    checkpoint.update_metadata("note", {"best": True})
    assert checkpoint.metadata == {"note": {"best": True}}
    assert ModelBoxClient(registry_path).experiment("ns/run1").checkpoints()[0].metadata == {
        "note": {"best": True}}
    assert checkpoint.updated_at >= checkpoint.created_at


def test_a_wrong_metadata_key_is_one_line(run: Run, registry_path: Path,
                                          client: ModelBoxClient) -> None:
    experiment = client.new_experiment("run1", "me", "ns")
    result = run("--repo", registry_path, "meta", "set", "ns/run1@epoch-9", "k", "1")
    assert_refused(result.code, result.err, "epoch-9")
    with pytest.raises(modelbox.ModelboxError, match="JSON"):
        experiment.update_metadata("k", object())


# -- metrics: seed 003's order, and tensors as strings on the CLI -------------------------

def test_points_without_step_are_ordered_by_wallclock(
    client: ModelBoxClient, run: Run, registry_path: Path
) -> None:
    version = client.new_model("m", "me", "ns").new_model_version("v1")
    version.log_metrics({"loss": 0.2}, wallclock=2000.0)
    version.log_metrics({"loss": 0.9}, wallclock=1000.0)  # logged late, measured earlier
    client.flush()
    assert [p["value"] for p in version.metrics()["loss"]] == [0.9, 0.2]
    assert version.metrics_summary["loss"] == 0.2  # the newest wallclock, not the last call
    shown = run("--repo", registry_path, "version", "show", "ns/m@v1", "--json")
    assert json.loads(shown.out)["metrics"]["loss"] == 0.2
    result = run("--repo", registry_path, "metrics", "log", "ns/m@v1", "loss=0.5",
                 "--wallclock", "1500")
    assert result.code == 0, result.err
    series = json.loads(run("--repo", registry_path, "metrics", "show", "ns/m@v1",
                            "--json").out)["loss"]
    assert [p["wallclock"] for p in series] == [1000.0, 1500.0, 2000.0]
    assert json.loads(run("--repo", registry_path, "version", "show", "ns/m@v1",
                          "--json").out)["metrics"]["loss"] == 0.2


def test_points_with_steps_are_ordered_by_step(client: ModelBoxClient) -> None:
    version = client.new_model("m", "me", "ns").new_model_version("v1")
    version.log_metrics({"acc": 0.8}, step=2, wallclock=1000.0)
    version.log_metrics({"acc": 0.6}, step=1, wallclock=2000.0)  # a replayed earlier step
    client.flush()
    assert [p["step"] for p in version.metrics()["acc"]] == [1, 2]
    assert version.metrics_summary["acc"] == 0.8


def test_mixed_steps_fall_back_to_wallclock(client: ModelBoxClient) -> None:
    version = client.new_model("m", "me", "ns").new_model_version("v1")
    version.log_metrics({"acc": 0.7}, step=5, wallclock=3000.0)
    version.log_metrics({"acc": 0.5}, wallclock=1000.0)
    client.flush()
    assert [p["value"] for p in version.metrics()["acc"]] == [0.5, 0.7]
    assert version.metrics_summary["acc"] == 0.7


def test_the_cli_logs_a_tensor_as_a_string(
    client: ModelBoxClient, run: Run, registry_path: Path
) -> None:
    client.new_model("m", "me", "ns").new_model_version("v1")
    result = run("--repo", registry_path, "metrics", "log", "ns/m@v1", "cm=[[1,0],[0,1]]",
                 "acc=0.5", "flag=true", "--json")
    assert result.code == 0, result.err
    assert json.loads(result.out)["metrics"] == {"cm": "[[1,0],[0,1]]", "acc": 0.5,
                                                 "flag": "true"}
    summary = client.model_version("ns/m@v1").metrics_summary
    assert summary == {"cm": "[[1,0],[0,1]]", "acc": 0.5, "flag": "true"}


@pytest.mark.parametrize("pair, needle", [
    ("acc=NaN", "finite"), ("acc=Infinity", "finite"), ("=1", "KEY=VALUE"),
    ("acc", "KEY=VALUE"),
])
def test_a_wrong_metric_is_one_line(
    client: ModelBoxClient, run: Run, registry_path: Path, pair: str, needle: str
) -> None:
    client.new_model("m", "me", "ns").new_model_version("v1")
    before = fingerprint(registry_path)
    result = run("--repo", registry_path, "metrics", "log", "ns/m@v1", pair)
    assert_refused(result.code, result.err, needle)
    assert fingerprint(registry_path) == before


def test_a_wrong_file_type_is_a_modelbox_error(client: ModelBoxClient, tmp_path: Path) -> None:
    version = client.new_model("m", "me", "ns").new_model_version("v1")
    weights = tmp_path / "w.pt"
    weights.write_bytes(b"x")
    with pytest.raises(modelbox.ModelboxError, match=r"'weights' is none of .*UNDEFINED"):
        version.upload_artifacts([weights], "weights")
    assert version.artifacts() == []
    assert version.upload_artifacts([weights], "UNDEFINED")[0].file_type is FileType.UNDEFINED
