"""A corpus of broken documents of every kind, each refused by modelbox/validate.py with a
message naming the file and the field; the schema examples, put where they belong, pass.

Documents are written into a registry folder outside Git (the hooks' fallback: every file
on disk counts) next to valid ones, and run through ``validate_worktree`` as the
``modelbox-validate`` hook does.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from modelbox import manifests
from modelbox.check import KINDS, check_document, locate
from modelbox.validate import validate_worktree

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
T = "2026-11-23T14:00:00Z"
SHA = "946a5d4457022ed77e30c3c9341d6665aa2d2061c83bbc861cf1057d4b2aafa2"
Y = "models/ai/vision/yolo"
SETTINGS = ".modelbox/registry.json"
MODEL = f"{Y}/_model.json"
VERSION = f"{Y}/_versions/v1/_version.json"
TAGS = f"{Y}/_tags.json"
METRICS = f"{Y}/_versions/v1/_metrics.json"
EVENTS = f"{Y}/_events.json"
POLICY = f"{Y}/_policy.json"
NAMESPACE = "models/ai/vision/_namespace.json"
POINTER = f"{Y}/_versions/v1/_artifacts/model.pt.json"
RUN = "experiments/ai/vision/run1"
EXPERIMENT = f"{RUN}/_experiment.json"
CHECKPOINT = f"{RUN}/_checkpoints/c1/_checkpoint.json"

BASE: dict[str, Any] = {
    SETTINGS: {"kind": "registry", "format": 1, "branch": "main", "store": None},
    MODEL: {"kind": "model", "namespace": "ai/vision", "name": "yolo", "created_at": T},
    VERSION: {"kind": "version", "model": "ai/vision/yolo", "version": "v1", "created_at": T},
    f"{Y}/_versions/v2/_version.json": {
        "kind": "version", "model": "ai/vision/yolo", "version": "v2", "created_at": T},
    TAGS: {"kind": "tags", "tags": {"production": "v1"}},
    POINTER: {"kind": "artifact", "path": "model.pt", "size": 3, "sha256": SHA,
              "created_at": T},
    EXPERIMENT: {"kind": "experiment", "namespace": "ai/vision", "name": "run1",
                 "created_at": T},
    CHECKPOINT: {"kind": "checkpoint", "experiment": "ai/vision/run1", "checkpoint": "c1",
                 "created_at": T},
}


def with_(where: str, /, **change: Any) -> dict[str, Any]:
    document = {**BASE[where], **change}
    return {k: v for k, v in document.items() if v is not ...}


# (file, document or raw bytes, the JSON path the message must name)
INVALID: list[tuple[str, Any, str]] = [
    (SETTINGS, {"format": 2}, "format"),
    (SETTINGS, {"format": "1"}, "format"),
    (SETTINGS, {"kind": "model"}, "kind"),
    (SETTINGS, {"branch": ""}, "branch"),
    (SETTINGS, {"branch": 3}, "branch"),
    (SETTINGS, {"store": 5}, "store"),
    (SETTINGS, {"secret": "x"}, "secret"),
    (SETTINGS, [], "(document)"),
    (MODEL, with_(MODEL, name="../x"), "name"),
    (MODEL, with_(MODEL, name=".hidden"), "name"),
    (MODEL, with_(MODEL, namespace="a//b"), "namespace"),
    (MODEL, with_(MODEL, created_at="2026-11-23T14:00:00"), "created_at"),
    (MODEL, with_(MODEL, created_at=1234), "created_at"),
    (MODEL, with_(MODEL, datasets="coco"), "datasets"),
    (MODEL, with_(MODEL, metadata=[]), "metadata"),
    (MODEL, with_(MODEL, owner=None), "owner"),
    (MODEL, with_(MODEL, extra=1), "extra"),
    (MODEL, with_(MODEL, name=...), "name"),
    (MODEL, with_(MODEL, kind="version"), "kind"),
    (MODEL, with_(MODEL, name="yolo2"), "namespace/name"),
    (MODEL, b"\xff\xfe{}", "(document)"),
    (VERSION, with_(VERSION, framework="caffe"), "framework"),
    (VERSION, with_(VERSION, metrics={"acc": True}), "metrics.acc"),
    (VERSION, with_(VERSION, metrics={"acc": None}), "metrics.acc"),
    (VERSION, with_(VERSION, archived="no"), "archived"),
    (VERSION, with_(VERSION, version="v1/x"), "version"),
    (VERSION, with_(VERSION, model="ai/vision/yolo@v1"), "model"),
    (VERSION, with_(VERSION, created_at=...), "created_at"),
    (VERSION, with_(VERSION, version="v2"), "model/version"),
    (TAGS, {"tags": {"production": 1}}, "tags.production"),
    (TAGS, {"tags": {"prod/x": "v1"}}, "tags.prod/x"),
    (TAGS, {"tags": {"production": "../v1"}}, "tags.production"),
    (TAGS, {"tags": ["v1"]}, "tags"),
    (TAGS, {"production": "v1"}, "production"),
    (TAGS, {"tags": {"production": "v9"}}, "tags.production"),
    (TAGS, {"tags": {"latest": "v1"}}, "tags.latest"),
    (TAGS, b'{"tags": {"production": "v1", "production": "v2"}}', "tags.production"),
    (TAGS, b'{"tags": {\n<<<<<<< HEAD\n"production": "v1"\n=======\n"production": "v2"\n'
           b'>>>>>>> feature\n}}', "(document)"),
    (METRICS, {"series": {"acc": [{"value": 0.9}]}}, "series.acc.0.wallclock"),
    (METRICS, {"series": {"acc": [{"step": 1.5, "wallclock": 1, "value": 0.9}]}},
     "series.acc.0.step"),
    (METRICS, {"series": {"acc": [{"wallclock": 1, "value": True}]}}, "series.acc.0.value"),
    (METRICS, {"series": {"acc": {"wallclock": 1, "value": 1}}}, "series.acc"),
    (METRICS, b'{"series": {"acc": [{"wallclock": 1, "value": NaN}]}}', "(document)"),
    (POINTER, with_(POINTER, path="../escape.pt"), "path"),
    (POINTER, with_(POINTER, path="/etc/passwd"), "path"),
    (POINTER, with_(POINTER, path="a/../../b"), "path"),
    (POINTER, with_(POINTER, sha256="ABC"), "sha256"),
    (POINTER, with_(POINTER, sha256=SHA[:-1]), "sha256"),
    (POINTER, with_(POINTER, size=-1), "size"),
    (POINTER, with_(POINTER, file_type="WEIGHTS"), "file_type"),
    (POINTER, with_(POINTER, size=...), "size"),
    (POINTER, with_(POINTER, path="other.pt"), "path"),
    (POINTER, with_(POINTER, sha256=None), "sha256/uri"),
    (POINTER, with_(POINTER, sha256=None, uri="bucket/model.pt"), "uri"),
    (POINTER, with_(POINTER, etag="abc"), "etag"),
    (POINTER, with_(POINTER, directory=True), "directory/files"),
    (EVENTS, {"events": [{"name": "", "wallclock": 1}]}, "events.0.name"),
    (EVENTS, {"events": [{"name": "deployed"}]}, "events.0.wallclock"),
    (POLICY, {"labelling": [{"tag": "c", "metric": "acc", "value": 0.9, "op": "=~"}]},
     "labelling.0.op"),
    (POLICY, {"retain": {"keep_last": 2}}, "retain"),
    (POLICY, {"retention": {"keep_last": 0}}, "retention.keep_last"),
    (NAMESPACE, {"namespace": "ai/vision", "owners": ["Jane Doe"]}, "owners.0"),
    (NAMESPACE, {"namespace": "ai/vision", "owners": ["@a\n* @b"]}, "owners.0"),
    (NAMESPACE, {"namespace": "ai", "owners": ["@a"]}, "namespace"),
    (NAMESPACE, {"owners": ["@a"]}, "namespace"),
    (EXPERIMENT, with_(EXPERIMENT, name=".x"), "name"),
    (EXPERIMENT, with_(EXPERIMENT, framework="caffe"), "framework"),
    (CHECKPOINT, with_(CHECKPOINT, epoch=-1), "epoch"),
    (CHECKPOINT, with_(CHECKPOINT, checkpoint="c2"), "experiment/checkpoint"),
    (f"{Y}/_versions/v1/model.pt", b"\x80\x02weights", "(file)"),
    (f"{Y}/_versions/v1/_artifacts/model.pt", b"\x80\x02weights", "(file)"),
    ("models/ai/README.md", b"# notes\n", "(file)"),
]


def write(root: Path, path: str, document: Any) -> None:
    file = root / path
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_bytes(document if isinstance(document, bytes) else json.dumps(document).encode())


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "registry"
    for path, document in BASE.items():
        write(folder, path, document)
    return folder


def test_the_base_registry_is_valid(root: Path) -> None:
    assert validate_worktree(root, [str(root / p) for p in BASE]) == []


def test_the_corpus_covers_every_kind_in_a_registry() -> None:
    assert len(INVALID) >= 40
    assert {locate(path).kind for path, _, _ in INVALID} == {*KINDS, None} - {"directory"}


@pytest.mark.parametrize(("path", "document", "field"), INVALID)
def test_a_broken_document_is_refused_naming_file_and_field(
    root: Path, path: str, document: Any, field: str
) -> None:
    write(root, path, document)
    problems = [str(p) for p in validate_worktree(root, [str(root / path)])]
    assert any(p.startswith(f"{path}: {field}: ") for p in problems), problems
    assert all(";" in p for p in problems), problems  # each says how to fix it


@pytest.mark.parametrize(("document", "field"), [
    ({"files": [{"path": "../x", "sha256": SHA, "size": 1}]}, "files.0.path"),
    ({"files": [{"path": "x", "sha256": SHA}]}, "files.0.size"),
    ({"files": [{"path": "x", "sha256": "abc", "size": 1}]}, "files.0.sha256"),
])
def test_a_broken_directory_manifest_is_refused_naming_the_field(
    document: Any, field: str
) -> None:
    name = f"sha256/{SHA}"  # directory manifests live in the store, not in Git
    doc, problems = check_document(name, json.dumps(document).encode(), "directory")
    assert doc is None
    assert any(str(p).startswith(f"{name}: {field}: ") for p in problems), problems


def _schema(kind: str) -> dict[str, Any]:
    return dict(json.loads((SCHEMAS / f"{kind}.schema.json").read_text(encoding="utf-8")))


def _place(kind: str, example: dict[str, Any]) -> str | None:
    places = {
        "registry": SETTINGS, "tags": TAGS, "metrics": METRICS, "events": EVENTS,
        "model": f"models/{example.get('namespace')}/{example.get('name')}/_model.json",
        "version": f"models/{example.get('model')}/_versions/{example.get('version')}/"
                   "_version.json",
        "pointer": f"{Y}/_versions/v1/_artifacts/{example.get('path')}.json",
        "namespace": f"models/{example.get('namespace')}/_namespace.json",
        "experiment": f"experiments/{example.get('namespace')}/{example.get('name')}/"
                      "_experiment.json",
        "checkpoint": f"experiments/{example.get('experiment')}/_checkpoints/"
                      f"{example.get('checkpoint')}/_checkpoint.json",
    }
    return places.get(kind)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_schema_examples_pass_validation_where_they_belong(root: Path, kind: str) -> None:
    for example in _schema(kind)["examples"]:
        path = _place(kind, example)
        if path is None:  # a directory manifest has no place in Git
            assert check_document("dir.json", json.dumps(example).encode(), kind)[1] == []
            continue
        write(root, path, example)
        folder = Path(path).parent
        if kind == "checkpoint":
            write(root, f"{folder.parent.parent}/_experiment.json", {
                "namespace": "ai/vision", "name": "yolo-run-17", "created_at": T})
        assert validate_worktree(root, [str(root / path)]) == [], (kind, example)


@pytest.mark.parametrize("kind", ["experiment", "checkpoint", "events"])
def test_the_newer_schemas_match_their_pydantic_models(kind: str) -> None:
    """tests/test_schemas.py holds the first seven kinds to a corpus; these three likewise."""
    schema = _schema(kind)
    model = getattr(manifests, KINDS[kind])
    generated = model.model_json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert set(schema["properties"]) == set(generated["properties"])
    assert set(schema.get("required", [])) == set(generated.get("required", []))
    assert schema["additionalProperties"] is False
    cases = [doc for path, doc, _ in INVALID if locate(path).kind == kind]
    assert cases
    for document in [*cases, *schema["examples"]]:
        by_schema = jsonschema.Draft202012Validator(schema).is_valid(document)
        try:
            model.model_validate_json(json.dumps(document))
            by_model = True
        except ValueError:
            by_model = False
        assert by_schema == by_model, document
