"""Objects travelling with push/clone/pull, concurrent writers, merges and refusals."""

from __future__ import annotations

import json
import os
import socket
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from collab.collab_helpers import (
    assert_clean,
    git_out,
    make_registry,
    ok,
    one_error_line,
    tag_refs,
)
from collab.collab_servers import BareRemote
from modelbox.audit import Change
from modelbox.names import parse_reference
from modelbox.registry import AUDIT_REF, Registry

if TYPE_CHECKING:
    from conftest import Run
    from s3server import S3Server

YOLO = "ai/vision/yolo"


def _refs(path: Path) -> str:
    return git_out(path, "for-each-ref", "--format=%(refname) %(objectname)")


def _weights(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    (src / "hf").mkdir(parents=True)
    (src / "model.pt").write_bytes(os.urandom(50_000))
    (src / "hf" / "config.json").write_text('{"layers": 2}\n')
    (src / "hf" / "weights.safetensors").write_bytes(os.urandom(4000))
    return src


@pytest.mark.usefixtures("git_transport")
def test_objects_reach_the_remote_store_and_a_new_clone_can_get_them(
    bare_remote: BareRemote, tmp_path: Path, run: Run
) -> None:
    src = _weights(tmp_path)
    first = make_registry(run, tmp_path / "first", bare_remote.urls["file"])
    ok(run, "--repo", first, "artifact", "add", f"{YOLO}@v1", src / "model.pt", src / "hf")
    result = json.loads(ok(run, "--repo", first, "push", "--json").out)
    assert result["objects_uploaded"] == 3  # a file, a listing, the pack of the two it lists
    assert (bare_remote.path / "modelbox" / "store" / "sha256").is_dir()

    other = tmp_path / "other"
    ok(run, "clone", bare_remote.path, other)
    ok(run, "--repo", other, "get", f"{YOLO}:prod", "-o", tmp_path / "out")
    assert (tmp_path / "out" / "model.pt").read_bytes() == (src / "model.pt").read_bytes()
    assert (tmp_path / "out" / "hf" / "weights.safetensors").read_bytes() == (
        src / "hf" / "weights.safetensors").read_bytes()

    (src / "v2.pt").write_bytes(os.urandom(1000))
    ok(run, "--repo", first, "artifact", "add", f"{YOLO}@v2", src / "v2.pt")
    state = json.loads(ok(run, "--repo", first, "status", "--json").out)
    assert len(state["missing_remotely"]) == 1 and state["missing_locally"] == []
    ok(run, "--repo", first, "push")
    assert json.loads(ok(run, "--repo", other, "pull", "--json").out)["objects_copied"] == 1
    ok(run, "--repo", other, "get", f"{YOLO}@v2", "-o", tmp_path / "out2")
    assert (tmp_path / "out2" / "v2.pt").read_bytes() == (src / "v2.pt").read_bytes()


@pytest.mark.usefixtures("git_transport")
def test_pointers_cannot_be_pushed_where_their_objects_cannot_go(
    bare_remote: BareRemote, tmp_path: Path, run: Run
) -> None:
    src = _weights(tmp_path)
    first = make_registry(run, tmp_path / "first", bare_remote.urls["git"])
    ok(run, "--repo", first, "artifact", "add", f"{YOLO}@v1", src / "model.pt")
    one_error_line(run("--repo", first, "push"), "own store", "Nothing was pushed")
    assert _refs(bare_remote.path) == ""


def test_nothing_is_pushed_when_the_shared_store_is_unreachable(
    bare_remote: BareRemote, tmp_path: Path, run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = _weights(tmp_path)
    first = make_registry(run, tmp_path / "first", bare_remote.urls["file"])
    ok(run, "--repo", first, "artifact", "add", f"{YOLO}@v1", src / "model.pt")
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    for name, value in {"MODELBOX_STORE": "s3://team/models",
                        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
                        "AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s",
                        "AWS_DEFAULT_REGION": "us-east-1", "AWS_MAX_ATTEMPTS": "1"}.items():
        monkeypatch.setenv(name, value)
    result = run("--repo", first, "push")
    assert result.code == 1 and len(result.err.splitlines()) == 1, result
    assert _refs(bare_remote.path) == ""


def test_push_through_a_shared_s3_store_and_get_from_another_clone(
    bare_remote: BareRemote, tmp_path: Path, run: Run, s3_server: S3Server,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    s3_server.create_bucket("collab")
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("MODELBOX_STORE", f"s3://collab/{uuid.uuid4().hex}")
    src = _weights(tmp_path)
    first = make_registry(run, tmp_path / "first", bare_remote.urls["http"])
    ok(run, "--repo", first, "artifact", "add", f"{YOLO}@v1", src / "hf")
    assert json.loads(ok(run, "--repo", first, "push", "--json").out)["objects_uploaded"] == 0
    other = tmp_path / "other"
    ok(run, "clone", bare_remote.urls["git"], other)
    assert json.loads(ok(run, "--repo", other, "status", "--json").out)["missing_remotely"] == []
    ok(run, "--repo", other, "get", f"{YOLO}@v1", "-o", tmp_path / "out")
    assert (tmp_path / "out" / "hf" / "config.json").read_text() == '{"layers": 2}\n'


@pytest.fixture
def two_clones(bare_remote: BareRemote, tmp_path: Path, run: Run) -> tuple[Path, Path]:
    first = make_registry(run, tmp_path / "first", bare_remote.urls["git"])
    ok(run, "--repo", first, "push")
    second = tmp_path / "second"
    ok(run, "clone", bare_remote.urls["git"], second)
    return first, second


def test_two_clones_race_to_promote_and_both_changes_survive(
    two_clones: tuple[Path, Path], bare_remote: BareRemote, run: Run
) -> None:
    first, second = two_clones
    ok(run, "--repo", first, "tag", f"{YOLO}@v2", "staging")
    ok(run, "--repo", second, "tag", f"{YOLO}@v2", "prod")
    ok(run, "--repo", second, "meta", "set", f"{YOLO}@v1", "note", '"kept"')
    ok(run, "--repo", first, "push")
    remote_before = _refs(bare_remote.path)

    one_error_line(run("--repo", second, "push", "--no-retry"), "modelbox pull",
                   "modelbox push")
    assert _refs(bare_remote.path) == remote_before

    assert "merge" in ok(run, "--repo", second, "pull").out
    assert_clean(second)
    ok(run, "--repo", second, "push")
    ok(run, "--repo", first, "pull")
    for clone in (first, second):
        assert ok(run, "--repo", clone, "resolve", f"{YOLO}:staging").out == "v2\n"
        assert ok(run, "--repo", clone, "resolve", f"{YOLO}:prod").out == "v2\n"
        assert ok(run, "--repo", clone, "check").code == 0
        assert_clean(clone)
    assert tag_refs(first) == tag_refs(second) == tag_refs(bare_remote.path)
    assert git_out(first, "rev-list", "--parents", "-1", "main").count(" ") == 2  # a merge
    shown = json.loads(ok(run, "--repo", first, "version", "show", f"{YOLO}@v1", "--json").out)
    assert shown["metadata"]["note"] == "kept"
    log = ok(run, "--repo", first, "log", f"{YOLO}:prod").out
    assert "v1 -> v2" in log


def test_moving_one_tag_two_ways_stops_the_pull_and_changes_nothing(
    two_clones: tuple[Path, Path], run: Run
) -> None:
    first, second = two_clones
    ok(run, "--repo", first, "tag", f"{YOLO}@v2", "prod")
    ok(run, "--repo", first, "push")
    ok(run, "--repo", second, "version", "create", YOLO, "v3")
    ok(run, "--repo", second, "tag", f"{YOLO}@v3", "prod")
    before = (git_out(second, "rev-parse", "main"), tag_refs(second))
    one_error_line(run("--repo", second, "pull"), "_tags.json", "git pull", "modelbox check")
    assert (git_out(second, "rev-parse", "main"), tag_refs(second)) == before
    assert_clean(second)


def test_pull_refuses_to_overwrite_a_hand_edit(
    two_clones: tuple[Path, Path], run: Run
) -> None:
    first, second = two_clones
    ok(run, "--repo", first, "tag", f"{YOLO}@v2", "staging")
    ok(run, "--repo", first, "push")
    tags = second / "models/ai/vision/yolo/_tags.json"
    tags.write_text(tags.read_text() + " ")
    head = git_out(second, "rev-parse", "main")
    one_error_line(run("--repo", second, "pull"), "_tags.json")
    assert git_out(second, "rev-parse", "main") == head
    assert tags.read_text().endswith("}\n ")


def test_download_events_of_both_clones_survive_push_and_pull(
    two_clones: tuple[Path, Path], tmp_path: Path, run: Run
) -> None:
    first, second = two_clones
    for clone in (first, second):
        registry = Registry.open(clone)
        registry.record_event(_download(f"{YOLO}@v1", clone.name))
        registry.close()
    ok(run, "--repo", first, "push")
    one_error_line(run("--repo", second, "push", "--no-retry"), AUDIT_REF, "modelbox pull")
    ok(run, "--repo", second, "pull")
    ok(run, "--repo", second, "push")
    ok(run, "--repo", first, "pull")
    for clone in (first, second):
        registry = Registry.open(clone)
        events = [e.subject for e in registry.log(str(parse_reference(f"{YOLO}@v1")))
                  if e.operation == "artifact.download"]
        registry.close()
        assert sorted(events) == ["download from first", "download from second"]
    assert git_out(first, "rev-parse", AUDIT_REF) == git_out(second, "rev-parse", AUDIT_REF)


def _download(target: str, who: str) -> Change:
    return Change("artifact.download", target, f"download from {who}")
