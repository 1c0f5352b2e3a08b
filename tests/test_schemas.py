"""schemas/ and the code's views of the same documents must agree.

Each document of the corpus goes through the JSON Schema, the pydantic model and (for the
two documents read on the CLI's hot path) the hand-written parser in modelbox.documents;
all of them must accept it, or all must refuse it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from modelbox import documents
from modelbox.errors import ManifestError, ModelboxError
from modelbox.manifests import (
    ArtifactPointer,
    CheckpointManifest,
    DirectoryManifest,
    Document,
    EventLog,
    ExperimentManifest,
    MetricSeries,
    ModelManifest,
    NamespaceManifest,
    Policy,
    RegistrySettings,
    TagMap,
    VersionManifest,
    parse,
)

SCHEMAS = Path(__file__).resolve().parents[1] / "schemas"
MODELS: dict[str, type[Document]] = {
    "registry": RegistrySettings,
    "model": ModelManifest,
    "version": VersionManifest,
    "tags": TagMap,
    "metrics": MetricSeries,
    "pointer": ArtifactPointer,
    "directory": DirectoryManifest,
    "experiment": ExperimentManifest,
    "checkpoint": CheckpointManifest,
    "events": EventLog,
    "policy": Policy,
    "namespace": NamespaceManifest,
}
T = "2026-11-23T14:00:00Z"
EXPERIMENT = {"kind": "experiment", "namespace": "ai", "name": "run-1", "created_at": T}
CHECKPOINT = {"kind": "checkpoint", "experiment": "ai/run-1", "checkpoint": "epoch-3",
              "created_at": T}
RULE = {"tag": "candidate", "metric": "acc", "value": 0.9}
SHA = "946a5d4457022ed77e30c3c9341d6665aa2d2061c83bbc861cf1057d4b2aafa2"
POINTER = {"kind": "artifact", "path": "model.pt", "size": 3, "sha256": SHA, "created_at": T}
MODEL = {"kind": "model", "namespace": "ai/vision", "name": "yolo", "created_at": T}
VERSION = {"kind": "version", "model": "ai/vision/yolo", "version": "v1", "created_at": T}

VALID: list[tuple[str, Any]] = [
    ("registry", {"kind": "registry", "format": 1, "branch": "main", "store": None}),
    ("registry", {"format": 1, "branch": "registry", "store": "s3://bucket/prefix"}),
    ("registry", {}),
    ("registry", {"branch": "team/registry-2.x"}),
    ("model", MODEL),
    ("model", {**MODEL, "namespace": "a/b/c", "metadata": {"x": [1, {"y": None}]}}),
    ("model", {**MODEL, "owner": "me", "task": "t", "datasets": ["coco"], "description": ""}),
    ("model", {**MODEL, "created_at": "2026-11-23T14:00:00.123456+02:00"}),
    ("model", {**MODEL, "collection": True}),
    ("model", {**MODEL, "collection": False}),
    ("version", VERSION),
    ("version", {**VERSION, "framework": "pytorch", "metrics": {"acc": 0.9, "t": "[1,2]"}}),
    ("version", {**VERSION, "metrics": {"epochs": 3}, "archived": True}),
    ("version", {**VERSION, "version": "1.0.0-rc_1"}),
    ("version", {**VERSION, "link": "ai/vision/yolo-run-17@v5"}),
    ("version", {**VERSION, "link": "default/yolo@1.0.0-rc_1"}),
    ("version", {**VERSION, "link": None}),
    ("version", {**VERSION, "released": {"at": T, "by": "tag production",
                                         "digest": "sha256:" + SHA}}),
    ("version", {**VERSION, "link": "ai/x@v1", "digest": "sha256:" + SHA}),
    ("registry", {"protected_tags": ["production", "release-1.x"]}),
    ("registry", {"protected_tags": []}),
    ("registry", {"protected_tags": None}),
    ("tags", {"kind": "tags", "tags": {"production": "v1", "staging": "v2"}}),
    ("tags", {"tags": {}}),
    ("metrics", {"kind": "metrics", "series": {"acc": [{"wallclock": 1.5, "value": 0.9}]}}),
    ("metrics", {"series": {"acc": [{"step": 3, "wallclock": 1, "value": "tensor"}]}}),
    ("metrics", {"series": {"raw": [{"wallclock": 1, "value": {"bytes": "AAECAw=="}}]}}),
    ("metrics", {"series": {"raw": [{"wallclock": 1, "value": {"bytes": ""}}]}}),
    ("pointer", POINTER),
    ("pointer", {**POINTER, "path": "hf-export", "directory": True, "files": 12}),
    ("pointer", {**POINTER, "path": "weights/model v2.bin", "file_type": "CHECKPOINT"}),
    ("pointer", {**POINTER, "sha256": None, "uri": "s3://b/x.pt", "etag": "abc"}),
    ("directory", {"files": [{"path": "a/.gitattributes", "sha256": SHA, "size": 0}]}),
    ("directory", {"kind": "directory", "files": []}),
    ("experiment", EXPERIMENT),
    ("experiment", {**EXPERIMENT, "framework": "jax", "metadata": {"lr": 0.001}}),
    ("checkpoint", CHECKPOINT),
    ("checkpoint", {**CHECKPOINT, "epoch": 3, "step": 300, "metrics": {"acc": 0.5},
                    "promoted_to": ["ai/yolo@v3"]}),
    ("events", {"kind": "events", "events": [{"name": "deployed", "wallclock": 1.0}]}),
    ("events", {"events": [{"name": "x", "source": "ci", "wallclock": 2, "metadata": {}}]}),
    ("policy", {"kind": "policy", "labelling": [RULE]}),
    ("policy", {"labelling": [{**RULE, "dataset": "coco", "op": "<"}],
                "retention": {"keep_last": 3, "keep_tagged": False}}),
    ("policy", {}),
    ("policy", {"labelling": [{**RULE, "op": "!="}], "pinned": ["production"]}),
    ("namespace", {"kind": "namespace", "namespace": "ai/vision", "owners": ["@acme/ml"]}),
    ("namespace", {"namespace": "default", "owners": ["@alice", "ml-lead@example.com"]}),
    ("namespace", {"namespace": "team0"}),
]

INVALID: list[tuple[str, Any]] = [
    ("registry", {"format": 2}),
    ("registry", {"format": "1"}),
    ("registry", {"kind": "model"}),
    ("registry", {"branch": ""}),
    ("registry", {"branch": 3}),
    ("registry", {"store": 5}),
    ("registry", {"secret": "x"}),
    ("registry", {"branch": "../../../x"}),
    ("registry", {"branch": "HEAD"}),
    ("registry", {"branch": "-x"}),
    ("registry", {"branch": "a..b"}),
    ("registry", {"branch": "x.lock"}),
    ("registry", {"branch": "a//b"}),
    ("registry", {"branch": "a/"}),
    ("registry", {"branch": "a b"}),
    ("registry", {"branch": "a\u001b[2J"}),
    ("registry", []),
    ("model", {**MODEL, "name": "../x"}),
    ("model", {**MODEL, "name": ".hidden"}),
    ("model", {**MODEL, "name": "x.lock"}),
    ("model", {**MODEL, "name": "a..b"}),
    ("model", {**MODEL, "name": ""}),
    ("model", {**MODEL, "name": "has space"}),
    ("model", {**MODEL, "namespace": "a//b"}),
    ("model", {**MODEL, "namespace": "/a"}),
    ("model", {**MODEL, "created_at": "2026-11-23T14:00:00"}),
    ("model", {**MODEL, "created_at": 1234}),
    ("model", {**MODEL, "datasets": "coco"}),
    ("model", {**MODEL, "metadata": []}),
    ("model", {**MODEL, "owner": None}),
    ("model", {**MODEL, "extra": 1}),
    ("model", {k: v for k, v in MODEL.items() if k != "name"}),
    ("model", {**MODEL, "kind": "version"}),
    ("model", {**MODEL, "collection": "yes"}),
    ("model", {**MODEL, "collection": 1}),
    ("version", {**VERSION, "framework": "caffe"}),
    ("version", {**VERSION, "metrics": {"acc": True}}),
    ("version", {**VERSION, "metrics": {"acc": None}}),
    ("version", {**VERSION, "metrics": {"acc": [0.9]}}),
    ("version", {**VERSION, "archived": "no"}),
    ("version", {**VERSION, "version": "v1/x"}),
    ("version", {**VERSION, "version": "v1."}),
    ("version", {**VERSION, "model": "ai/vision/yolo@v1"}),
    ("version", {k: v for k, v in VERSION.items() if k != "created_at"}),
    ("version", {**VERSION, "link": "yolo@v1"}),
    ("version", {**VERSION, "link": "ai/yolo"}),
    ("version", {**VERSION, "link": "ai/yolo:production"}),
    ("version", {**VERSION, "link": "ai/yolo@../v1"}),
    ("version", {**VERSION, "link": "ai/../yolo@v1"}),
    ("version", {**VERSION, "link": "ai/yolo@v1@v2"}),
    ("version", {**VERSION, "link": ""}),
    ("version", {**VERSION, "link": 5}),
    ("version", {**VERSION, "released": {"at": T, "by": "x", "digest": SHA}}),
    ("version", {**VERSION, "released": {"at": T, "digest": "sha256:" + SHA}}),
    ("version", {**VERSION, "released": {"at": T, "by": "", "digest": "sha256:" + SHA}}),
    ("version", {**VERSION, "released": {"at": T, "by": "x", "digest": "sha256:" + SHA,
                                         "extra": 1}}),
    ("version", {**VERSION, "digest": "md5:" + SHA}),
    ("registry", {"protected_tags": "production"}),
    ("registry", {"protected_tags": ["../x"]}),
    ("registry", {"protected_tags": [5]}),
    ("registry", {"protected_tags": ["a/b"]}),
    ("tags", {"tags": {"production": 1}}),
    ("tags", {"tags": {"prod/x": "v1"}}),
    ("tags", {"tags": {"production": "../v1"}}),
    ("tags", {"tags": {".x": "v1"}}),
    ("tags", {"tags": ["v1"]}),
    ("tags", {"production": "v1"}),
    ("metrics", {"series": {"acc": [{"value": 0.9}]}}),
    ("metrics", {"series": {"acc": [{"step": 1.5, "wallclock": 1, "value": 0.9}]}}),
    ("metrics", {"series": {"acc": [{"wallclock": 1, "value": True}]}}),
    ("metrics", {"series": {"acc": {"wallclock": 1, "value": 1}}}),
    ("metrics", {"series": {"raw": [{"wallclock": 1, "value": {"bytes": "not base64!"}}]}}),
    ("metrics", {"series": {"raw": [{"wallclock": 1, "value": {"bytes": "AAE"}}]}}),
    ("metrics", {"series": {"raw": [{"wallclock": 1, "value": {"bytes": "AA==", "x": 1}}]}}),
    ("metrics", {"series": {"raw": [{"wallclock": 1, "value": {"base64": "AA=="}}]}}),
    ("metrics", {"series": {"raw": [{"wallclock": 1, "value": {"bytes": 5}}]}}),
    ("pointer", {**POINTER, "path": "../escape.pt"}),
    ("pointer", {**POINTER, "path": "/etc/passwd"}),
    ("pointer", {**POINTER, "path": "a/../../b"}),
    ("pointer", {**POINTER, "path": ".git/config"}),
    ("pointer", {**POINTER, "path": "a\\b"}),
    ("pointer", {**POINTER, "path": "dir/"}),
    ("pointer", {**POINTER, "sha256": "ABC"}),
    ("pointer", {**POINTER, "sha256": SHA[:-1]}),
    ("pointer", {**POINTER, "size": -1}),
    ("pointer", {**POINTER, "file_type": "WEIGHTS"}),
    ("pointer", {k: v for k, v in POINTER.items() if k != "size"}),
    ("directory", {"files": [{"path": "../x", "sha256": SHA, "size": 1}]}),
    ("directory", {"files": [{"path": "x", "sha256": SHA}]}),
    ("directory", {"files": [{"path": "x/./y", "sha256": SHA, "size": 1}]}),
    ("experiment", {**EXPERIMENT, "name": "../run"}),
    ("experiment", {**EXPERIMENT, "framework": "caffe"}),
    ("checkpoint", {**CHECKPOINT, "epoch": -1}),
    ("checkpoint", {**CHECKPOINT, "checkpoint": "a/b"}),
    ("events", {"events": [{"name": "", "wallclock": 1}]}),
    ("events", {"events": [{"name": "x"}]}),
    ("policy", {"labelling": [{**RULE, "op": "=~"}]}),
    ("policy", {"labelling": [{**RULE, "tag": "../x"}]}),
    ("policy", {"retention": {"keep_last": 0}}),
    ("policy", {"retain": {"keep_last": 2}}),
    ("namespace", {"owners": ["@alice"]}),
    ("namespace", {"namespace": "ai/../x"}),
    ("namespace", {"namespace": "/ai"}),
    ("namespace", {"namespace": "ai", "owners": ["alice"]}),
    ("namespace", {"namespace": "ai", "owners": ["@a b"]}),
    ("namespace", {"namespace": "ai", "owners": ["a@example.com\n"]}),
    ("namespace", {"namespace": "ai", "owners": ["@alice\n* @mallory"]}),
    ("namespace", {"namespace": "ai", "owners": "@alice"}),
    ("namespace", {"namespace": "ai", "owner": "@alice"}),
    ("namespace", {"kind": "model", "namespace": "ai"}),
]


def _schema(kind: str) -> dict[str, Any]:
    return dict(json.loads((SCHEMAS / f"{kind}.schema.json").read_text()))


def _verdicts(kind: str, document: Any) -> dict[str, bool]:
    data = json.dumps(document).encode()
    out = {"schema": jsonschema.Draft202012Validator(_schema(kind)).is_valid(document)}
    try:
        parse(MODELS[kind], f"{kind}.json", data)
        out["pydantic"] = True
    except ManifestError:
        out["pydantic"] = False
    light = {"registry": documents.parse_settings, "tags": documents.parse_tags}.get(kind)
    if light is not None:
        try:
            light(f"{kind}.json", data)
            out["light"] = True
        except ModelboxError:
            out["light"] = False
    return out


@pytest.mark.parametrize(("kind", "document"), VALID)
def test_every_view_accepts_a_valid_document(kind: str, document: Any) -> None:
    assert set(_verdicts(kind, document).values()) == {True}


@pytest.mark.parametrize(("kind", "document"), INVALID)
def test_every_view_refuses_an_invalid_document(kind: str, document: Any) -> None:
    assert set(_verdicts(kind, document).values()) == {False}


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_schema_fields_match_the_pydantic_model(kind: str) -> None:
    schema, generated = _schema(kind), MODELS[kind].model_json_schema()
    assert set(schema["properties"]) == set(generated["properties"])
    assert set(schema.get("required", [])) == set(generated.get("required", []))
    assert schema["additionalProperties"] is False


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_schema_examples_are_valid_documents(kind: str) -> None:
    schema = _schema(kind)
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["examples"]
    for example in schema["examples"]:
        assert set(_verdicts(kind, example).values()) == {True}


def test_a_manifest_error_names_the_file_and_the_field() -> None:
    with pytest.raises(ManifestError) as info:
        parse(VersionManifest, "models/a/b/_versions/v1/_version.json",
              json.dumps({**VERSION, "framework": "caffe"}).encode())
    assert "models/a/b/_versions/v1/_version.json" in str(info.value)
    assert "framework" in str(info.value)
