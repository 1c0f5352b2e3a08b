"""Labelling and retention policies, and garbage collection of the store (issue 6)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from hostile import age_store

from modelbox import ModelBoxClient
from modelbox.errors import InvalidValueError

if TYPE_CHECKING:
    from conftest import Run


def store_files(registry: Path) -> set[str]:
    root = registry / ".git" / "modelbox" / "store" / "sha256"  # objects, not gc's notes
    return {p.name for p in root.rglob("*") if p.is_file()} if root.exists() else set()



@pytest.fixture
def client(registry_path: Path) -> ModelBoxClient:
    return ModelBoxClient(registry_path)


def test_a_version_that_meets_a_labelling_rule_earns_the_tag_in_the_same_commit(
    client: ModelBoxClient, registry_path: Path
) -> None:
    model = client.new_model("ai/yolo")
    v1, v2 = model.new_model_version("v1"), model.new_model_version("v2")
    v1.log_metrics({"acc/coco": 0.5})
    model.set_policy(labelling=[{"tag": "candidate", "metric": "acc", "dataset": "coco",
                                 "op": ">=", "value": 0.9}])
    v1.log_metrics({"acc/coco": 0.85})
    assert "candidate" not in model.tags()
    v2.log_metrics({"acc/coco": 0.93})
    assert model.tags()["candidate"] == "v2"
    message = subprocess.run(["git", "log", "-1", "--format=%B"], cwd=registry_path,
                             check=True, capture_output=True, text=True).stdout
    assert "Modelbox-Operation: metrics.log" in message
    assert "Modelbox-Policy: candidate: acc/coco >= 0.9" in message
    assert "Modelbox-Tag: ai/yolo:candidate - -> v2" in message


def test_policies_refuse_unknown_fields_and_metrics_no_version_has(
    client: ModelBoxClient, run: Run, registry_path: Path, tmp_path: Path
) -> None:
    model = client.new_model("ai/yolo")
    model.new_model_version("v1").log_metrics({"acc": 0.5})
    with pytest.raises(InvalidValueError, match="'acuracy'"):
        model.set_policy(labelling=[{"tag": "c", "metric": "acuracy", "value": 0.9}])
    bad = tmp_path / "policy.json"
    bad.write_text(json.dumps({"labelling": [], "retain": {"keep_last": 2}}))
    result = run("--repo", registry_path, "policy", "set", "ai/yolo", "--file", str(bad))
    assert result.code == 1 and "retain" in result.err
    assert run("--repo", registry_path, "policy", "show", "ai/yolo", "--json").out.strip() == "null"


def test_gc_archives_what_retention_drops_but_keeps_tagged_versions(
    client: ModelBoxClient, run: Run, registry_path: Path
) -> None:
    model = client.new_model("ai/yolo")
    for i in range(5):
        model.new_model_version(f"v{i}", unique_tags=["candidate"] if i == 0 else None)
    client.close()
    assert run("--repo", registry_path, "policy", "set", "ai/yolo", "--keep-last", "2").code == 0
    dry = json.loads(run("--repo", registry_path, "gc", "--dry-run", "--json").out)
    assert dry["archive"] == ["ai/yolo@v1", "ai/yolo@v2"]
    assert run("--repo", registry_path, "gc").code == 0
    listed = json.loads(run("--repo", registry_path, "version", "list", "ai/yolo", "--json").out)
    assert [v["version"] for v in listed] == ["v0", "v3", "v4"]
    log = json.loads(run("--repo", registry_path, "log", "ai/yolo@v1", "--json").out)
    assert log[0]["operation"] == "version.archive"


def test_gc_deletes_only_old_objects_that_no_commit_references(
    client: ModelBoxClient, run: Run, registry_path: Path, tmp_path: Path
) -> None:
    model = client.new_model("ai/yolo")
    mv = model.new_model_version("v1")
    kept = tmp_path / "kept.pt"
    kept.write_bytes(b"k" * 1000)
    mv.upload_artifact([kept])
    replaced = tmp_path / "model.pt"
    replaced.write_bytes(b"old weights")
    mv.upload_artifact([replaced])
    replaced.write_bytes(b"new weights")
    mv.upload_artifact([replaced], replace=True)  # the old object stays in history
    client.close()
    from modelbox.objects import open_store

    orphan = open_store(str(registry_path / ".git" / "modelbox" / "store")).put_bytes(b"orphan")
    before = store_files(registry_path)
    young = json.loads(run("--repo", registry_path, "gc", "--dry-run", "--json").out)
    assert young["delete"] == [] and young["young"] == 1
    age_store(registry_path, 24 * 30)
    plan = json.loads(run("--repo", registry_path, "gc", "--dry-run", "--json").out)
    assert plan["delete"] == [orphan]
    assert store_files(registry_path) == before  # a dry run changes nothing
    assert run("--repo", registry_path, "gc").code == 0
    assert store_files(registry_path) == before - {orphan[2:]}
    out = tmp_path / "out"
    assert run("--repo", registry_path, "get", "ai/yolo@v1", "-o", str(out)).code == 0
    assert (out / "model.pt").read_bytes() == b"new weights"


def test_gc_without_history_frees_replaced_and_archived_objects(
    client: ModelBoxClient, run: Run, registry_path: Path, tmp_path: Path
) -> None:
    model = client.new_model("ai/yolo")
    v1, v2 = model.new_model_version("v1"), model.new_model_version("v2")
    weights = tmp_path / "w.pt"
    weights.write_bytes(b"v1 weights")
    v1.upload_artifact([weights])
    weights.write_bytes(b"v2 weights")
    v2.upload_artifact([weights])
    v1.archive()
    client.close()
    age_store(registry_path, 24 * 30)
    with_history = json.loads(run("--repo", registry_path, "gc", "--dry-run", "--json").out)
    assert with_history["delete"] == []
    live = json.loads(run("--repo", registry_path, "gc", "--dry-run", "--no-history",
                          "--json").out)
    assert len(live["delete"]) == 1
    assert run("--repo", registry_path, "gc", "--no-history").code == 0
    out = tmp_path / "out"
    assert run("--repo", registry_path, "get", "ai/yolo@v2", "-o", str(out)).code == 0
    assert (out / "w.pt").read_bytes() == b"v2 weights"


def test_gc_keeps_what_a_tag_ref_or_another_branch_needs(
    client: ModelBoxClient, run: Run, registry_path: Path, tmp_path: Path
) -> None:
    model = client.new_model("ai/yolo")
    mv = model.new_model_version("v1")
    weights = tmp_path / "w.pt"
    weights.write_bytes(b"on a branch")
    subprocess.run(["git", "branch", "keep-me"], cwd=registry_path, check=True)
    subprocess.run(["git", "checkout", "-q", "keep-me"], cwd=registry_path, check=True)
    mv.upload_artifact([weights])  # written to the registry branch main
    subprocess.run(["git", "checkout", "-q", "main"], cwd=registry_path, check=True)
    subprocess.run(["git", "branch", "-f", "keep-me", "main"], cwd=registry_path, check=True)
    mv.archive()
    subprocess.run(["git", "reset", "-q", "--hard", "HEAD~2"], cwd=registry_path, check=True)
    client.close()
    age_store(registry_path, 24 * 30)
    plan = json.loads(run("--repo", registry_path, "gc", "--dry-run", "--json").out)
    assert plan["delete"] == []  # branch keep-me still has the pointer


def test_the_fast_path_and_the_python_walk_agree_on_what_is_referenced(
    client: ModelBoxClient, registry_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from modelbox import gc
    from modelbox.artifacts import open_registry_store
    from modelbox.registry import Registry

    model = client.new_model("ai/yolo")
    for i in range(3):
        weights = tmp_path / f"w{i}"
        (weights / "shards").mkdir(parents=True)
        (weights / "shards" / "a.bin").write_bytes(f"shard {i}".encode())
        model.new_model_version(f"v{i}").upload_artifact([weights / "shards"])
    client.close()
    registry = Registry.open(registry_path)
    store = open_registry_store(registry)
    fast = gc.referenced_digests(registry, store, gc.GcPlan())
    monkeypatch.setenv("PATH", str(tmp_path / "no-git-here"))  # shutil.which("git") -> None
    assert registry.repo.reachable_blobs(["HEAD"], "_artifacts") is None
    walked = gc.referenced_digests(registry, store, gc.GcPlan())
    assert fast == walked and len(fast) == 6  # 3 directory manifests + 3 shards


def test_gc_keeps_the_packs_a_directory_listing_names(
    client: ModelBoxClient, run: Run, registry_path: Path, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    folder = tmp_path / "shards"
    folder.mkdir()
    for n in range(50):
        (folder / f"{n:03d}.txt").write_bytes(os.urandom(3000))
    client.new_model("ai/yolo").new_model_version("v1").upload_artifact([folder])
    client.close()
    age_store(registry_path, 24 * 30)
    assert len(store_files(registry_path)) == 2  # the listing and one pack of 50 files

    plan = json.loads(run("--repo", registry_path, "gc", "--dry-run", "--json").out)
    assert plan["delete"] == []
    assert run("--repo", registry_path, "gc").code == 0
    assert len(store_files(registry_path)) == 2
    monkeypatch.setenv("MODELBOX_CACHE_DIR", str(tmp_path / "empty-cache"))
    out = tmp_path / "out"
    assert run("--repo", registry_path, "get", "ai/yolo@v1", "-o", str(out)).code == 0
    for n in range(50):
        assert (out / "shards" / f"{n:03d}.txt").read_bytes() == (
            folder / f"{n:03d}.txt").read_bytes()
