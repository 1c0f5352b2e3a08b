"""Artifacts end to end: pointers in Git, objects in a real store (local folder and S3)."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from modelbox import ModelBoxClient
from modelbox.errors import ArtifactExistsError
from modelbox.filetypes import FileType, mime_type, sniff
from modelbox.names import parse_reference
from modelbox.objects import open_store
from modelbox.registry import AUDIT_REF, Registry

if TYPE_CHECKING:
    from conftest import Run
    from s3server import S3Server

BUCKET = "modelbox-artifacts"


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout


def _use_s3(server: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    server.create_bucket(BUCKET)
    for name, value in server.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("MODELBOX_STORE", f"s3://{BUCKET}/{uuid.uuid4().hex}")


@pytest.fixture(params=["local", "s3"])
def store_env(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Which store the registry uses: its embedded default, or a fresh prefix of SeaweedFS."""
    if request.param == "s3":
        _use_s3(request.getfixturevalue("s3_server"), monkeypatch)
    return str(request.param)


def _make_registry(path: Path, run: Run) -> Path:
    assert run("init", str(path)).code == 0
    repo = ("--repo", str(path))
    assert run(*repo, "model", "create", "ai/vision/yolo").code == 0
    assert run(*repo, "version", "create", "ai/vision/yolo", "v1", "--tag", "staging").code == 0
    return path


@pytest.fixture
def reg(tmp_path: Path, store_env: str, run: Run) -> Path:
    """A registry with ai/vision/yolo@v1, on each store in turn."""
    return _make_registry(tmp_path / "reg", run)


@pytest.fixture
def local_reg(tmp_path: Path, run: Run) -> Path:
    """A registry on the embedded default store (for properties of pointers, not stores)."""
    return _make_registry(tmp_path / "reg", run)


@pytest.fixture
def s3_reg(
    tmp_path: Path, run: Run, s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """A registry whose store is a fresh prefix of the SeaweedFS bucket."""
    _use_s3(s3_server, monkeypatch)
    return _make_registry(tmp_path / "reg", run)


@pytest.fixture
def files(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    (src / "hf" / "tokenizer").mkdir(parents=True)
    (src / "model.pt").write_bytes(os.urandom(300_000))
    (src / "hf" / "config.json").write_text('{"layers": 2}\n')
    (src / "hf" / "model.safetensors").write_bytes(os.urandom(5000))
    (src / "hf" / "tokenizer" / "vocab.txt").write_text("a\nb\n")
    (src / "hf" / ".gitattributes").write_text("* binary\n")
    return src


def _head(path: Path) -> str:
    return git(path, "rev-parse", "HEAD").strip()


@pytest.mark.smoke
def test_a_file_and_a_folder_round_trip_through_the_store(
    reg: Path, files: Path, tmp_path: Path, run: Run
) -> None:
    repo = ("--repo", str(reg))
    assert run(*repo, "artifact", "add", "ai/vision/yolo@v1", str(files / "model.pt"),
               "--type", "MODEL").code == 0
    assert run(*repo, "artifact", "add", "ai/vision/yolo@v1", str(files / "hf")).code == 0
    listed = json.loads(run(*repo, "artifact", "list", "ai/vision/yolo@v1", "--json").out)
    by_path = {a["path"]: a for a in listed}
    assert by_path["model.pt"]["size"] == 300_000
    assert by_path["model.pt"]["file_type"] == "MODEL"
    assert by_path["hf"]["directory"] is True and by_path["hf"]["files"] == 4

    out = tmp_path / "deploy"
    result = run(*repo, "get", "ai/vision/yolo:staging", "-o", str(out), "-q")
    assert result.code == 0, result.err
    for rel in ["model.pt", "hf/config.json", "hf/model.safetensors", "hf/tokenizer/vocab.txt",
                "hf/.gitattributes"]:
        assert (out / rel).read_bytes() == (files / rel).read_bytes()
    assert git(reg, "status", "--porcelain") == ""
    assert run(*repo, "check").code == 0


def test_a_folder_of_many_small_files_is_stored_in_a_few_packs(
    reg: Path, tmp_path: Path, run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "dataset"
    for n in range(600):
        path = folder / f"part-{n % 3}" / f"{n:04d}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(12_000 + n))
    (folder / "empty.txt").write_bytes(b"")
    (folder / "weights.bin").write_bytes(os.urandom(3 << 20))  # large: an object of its own
    repo = ("--repo", str(reg))

    assert run(*repo, "artifact", "add", "ai/vision/yolo@v1", str(folder), "-q").code == 0

    store = open_store(os.environ.get("MODELBOX_STORE") or str(reg / ".git/modelbox/store"))
    stored = set(store.iter_digests())
    assert 4 <= len(stored) <= 6  # the listing, the large file, 2-4 packs of ~7 MiB
    [listed] = json.loads(run(*repo, "artifact", "list", "ai/vision/yolo@v1", "--json").out)
    assert listed["files"] == 602
    listing = json.loads(store.open_bytes(listed["sha256"]))
    assert [entry["path"] for entry in listing["files"]] == ["weights.bin"]
    assert {pack["sha256"] for pack in listing["packs"]} == stored - {
        listed["sha256"], listing["files"][0]["sha256"]}
    monkeypatch.setenv("MODELBOX_CACHE_DIR", str(tmp_path / "fresh-cache"))
    out = tmp_path / "out"
    assert run(*repo, "get", "ai/vision/yolo@v1", "-o", str(out), "-q").code == 0
    for path in folder.rglob("*"):
        if path.is_file():
            assert (out / "dataset" / path.relative_to(folder)).read_bytes() == path.read_bytes()
    assert run(*repo, "check").code == 0


@pytest.mark.parametrize(
    "name", ["back\\slash.txt", "bell\x07.txt", "new\nline.txt", "ends-in-newline.txt\n"]
)
def test_a_folder_with_a_file_name_a_listing_cannot_hold_changes_nothing(
    local_reg: Path, tmp_path: Path, run: Run, name: str
) -> None:
    folder = tmp_path / "odd"
    folder.mkdir()
    (folder / "fine.txt").write_text("fine")
    (folder / name).write_text("odd")
    head = _head(local_reg)
    result = run("--repo", str(local_reg), "artifact", "add", "ai/vision/yolo@v1", str(folder))
    assert result.code == 1 and "rename the file" in result.err
    assert "Traceback" not in result.err and len(result.err.strip().splitlines()) == 1
    assert _head(local_reg) == head
    assert not (local_reg / ".git" / "modelbox" / "store").exists()


def test_adding_an_unchanged_file_again_makes_no_commit(reg: Path, files: Path, run: Run) -> None:
    repo = ("--repo", str(reg))
    assert run(*repo, "artifact", "add", "ai/vision/yolo@v1", str(files / "model.pt")).code == 0
    head = _head(reg)
    assert run(*repo, "artifact", "add", "ai/vision/yolo@v1", str(files / "model.pt")).code == 0
    assert _head(reg) == head


def test_an_unchanged_re_add_needs_no_store_but_new_content_does(
    s3_reg: Path, files: Path, run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = ("--repo", str(s3_reg))
    for source in (files / "model.pt", files / "hf"):
        assert run(*repo, "artifact", "add", "ai/vision/yolo@v1", str(source), "-q").code == 0
    head = _head(s3_reg)
    # The store goes away: what the branch already records needs no word with it...
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    for source in (files / "model.pt", files / "hf"):
        result = run(*repo, "artifact", "add", "ai/vision/yolo@v1", str(source), "-q")
        assert result.code == 0, result.err
    assert _head(s3_reg) == head
    # ...but new content must reach it, and fails cleanly when it cannot.
    (files / "hf" / "config.json").write_text('{"layers": 3}\n')
    result = run(*repo, "artifact", "add", "ai/vision/yolo@v1", str(files / "hf"), "-q")
    assert result.code != 0 and "Traceback" not in result.err
    assert len(result.err.strip().splitlines()) == 1
    assert _head(s3_reg) == head


def test_adding_new_content_under_the_same_path_replaces_the_pointer_only_when_asked(
    reg: Path, files: Path, run: Run
) -> None:
    registry = Registry.open(reg)
    ref = parse_reference("ai/vision/yolo@v1")
    client = ModelBoxClient(reg)
    mv = client.model_version("ai/vision/yolo@v1")
    first = mv.upload_artifact([files / "model.pt"])[0].checksum
    (files / "model.pt").write_bytes(b"retrained")
    with pytest.raises(ArtifactExistsError, match="--replace"):
        mv.upload_artifact([files / "model.pt"])
    assert [a.checksum for a in mv.artifacts()] == [first]
    second = mv.upload_artifact([files / "model.pt"], replace=True)[0].checksum
    assert first != second
    assert [a.checksum for a in mv.artifacts()] == [second]
    events = [e for e in registry.log("ai/vision/yolo@v1") if e.operation == "artifact.add"]
    assert len(events) == 2 and second in (events[0].after or "")
    assert events[0].before == f"model.pt={first}"
    assert str(ref) == "ai/vision/yolo@v1"
    client.close()


def test_a_download_is_audited_off_the_registry_branch(
    reg: Path, files: Path, tmp_path: Path, run: Run
) -> None:
    repo = ("--repo", str(reg))
    assert run(*repo, "artifact", "add", "ai/vision/yolo@v1", str(files / "model.pt")).code == 0
    head = _head(reg)
    assert run(*repo, "get", "ai/vision/yolo@v1", "-o", str(tmp_path / "o")).code == 0
    assert _head(reg) == head
    assert git(reg, "rev-parse", "--verify", AUDIT_REF).strip()
    events = json.loads(run(*repo, "log", "ai/vision/yolo", "--json").out)
    assert events[0]["operation"] == "artifact.download"


def test_a_corrupt_object_is_an_error_and_nothing_is_placed(
    reg: Path, files: Path, tmp_path: Path, run: Run, store_env: str,
    request: pytest.FixtureRequest,
) -> None:
    repo = ("--repo", str(reg))
    assert run(*repo, "artifact", "add", "ai/vision/yolo@v1", str(files / "model.pt")).code == 0
    digest = json.loads(run(*repo, "artifact", "list", "ai/vision/yolo@v1", "--json").out)[0][
        "sha256"
    ]
    key = f"sha256/{digest[:2]}/{digest[2:]}"
    if store_env == "local":
        obj = reg / ".git" / "modelbox" / "store" / key
        obj.chmod(0o644)
        obj.write_bytes(b"bit rot")
    else:
        server: S3Server = request.getfixturevalue("s3_server")
        server.client().pipe_file(f"{os.environ['MODELBOX_STORE']}/{key}", b"bit rot")
    out = tmp_path / "deploy"
    result = run(*repo, "get", "ai/vision/yolo@v1", "-o", str(out))
    assert result.code == 1
    assert digest in result.err and "corrupt" in result.err
    assert not (out / "model.pt").exists()


def test_a_missing_source_file_changes_nothing(reg: Path, tmp_path: Path, run: Run) -> None:
    head = _head(reg)
    result = run("--repo", str(reg), "artifact", "add", "ai/vision/yolo@v1",
                 str(tmp_path / "nope.pt"))
    assert result.code == 1 and "nope.pt" in result.err
    assert _head(reg) == head


def test_get_refuses_to_write_through_a_symlink(
    reg: Path, files: Path, tmp_path: Path, run: Run
) -> None:
    repo = ("--repo", str(reg))
    assert run(*repo, "artifact", "add", "ai/vision/yolo@v1", str(files / "hf")).code == 0
    out = tmp_path / "deploy"
    out.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (out / "hf").symlink_to(elsewhere)
    result = run(*repo, "get", "ai/vision/yolo@v1", "-o", str(out))
    assert result.code == 1 and "symbolic link" in result.err
    assert list(elsewhere.iterdir()) == []


def test_a_hand_written_pointer_that_escapes_is_refused(
    local_reg: Path, tmp_path: Path, run: Run
) -> None:
    reg = local_reg
    pointer = reg / "models/ai/vision/yolo/_versions/v1/_artifacts/evil.json"
    pointer.parent.mkdir(parents=True)
    pointer.write_text(json.dumps({
        "kind": "artifact", "path": "../../evil", "size": 1, "sha256": "0" * 64,
        "created_at": "2026-11-23T14:00:00Z",
    }))
    git(reg, "add", "-A")
    git(reg, "commit", "-qm", "hand-made pointer")
    result = run("--repo", str(reg), "get", "ai/vision/yolo@v1", "-o", str(tmp_path / "o"))
    assert result.code == 1 and "evil.json" in result.err
    assert not (tmp_path / "evil").exists()
    assert run("--repo", str(reg), "check").code == 1


def test_a_raw_file_committed_among_pointers_fails_check(local_reg: Path, run: Run) -> None:
    reg = local_reg
    raw = reg / "models/ai/vision/yolo/_versions/v1/_artifacts/model.pt"
    raw.parent.mkdir(parents=True)
    raw.write_bytes(b"\0" * 1000)
    git(reg, "add", "-A")
    git(reg, "commit", "-qm", "oops")
    result = run("--repo", str(reg), "check")
    assert result.code == 1 and "not a pointer file" in result.err


def test_tracking_an_s3_uri_records_size_and_etag_and_get_verifies_them(
    s3_reg: Path, tmp_path: Path, run: Run, s3_server: S3Server
) -> None:
    reg, server = s3_reg, s3_server
    uri = f"s3://{BUCKET}/external/{uuid.uuid4().hex}/report.html"
    server.client().pipe_file(uri, b"<html>eval</html>")
    repo = ("--repo", str(reg))
    assert run(*repo, "artifact", "track", "ai/vision/yolo@v1", uri).code == 0
    [tracked] = json.loads(run(*repo, "artifact", "list", "ai/vision/yolo@v1", "--json").out)
    assert tracked["uri"] == uri and tracked["size"] == 17 and tracked["mime_type"] == "text/html"
    assert run(*repo, "get", "ai/vision/yolo@v1", "-o", str(tmp_path / "a")).code == 0
    assert (tmp_path / "a" / "report.html").read_bytes() == b"<html>eval</html>"
    server.client().pipe_file(uri, b"<html>changed!</html>")
    result = run(*repo, "get", "ai/vision/yolo@v1", "-o", str(tmp_path / "b"))
    assert result.code == 1 and "changed since it was tracked" in result.err
    assert not (tmp_path / "b" / "report.html").exists()


def test_wrong_s3_keys_give_one_clear_line(
    s3_reg: Path, files: Path, run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    reg = s3_reg
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong")
    head = _head(reg)
    result = run("--repo", str(reg), "artifact", "add", "ai/vision/yolo@v1",
                 str(files / "model.pt"))
    assert result.code == 1
    assert len(result.err.strip().splitlines()) == 1 and "s3://" in result.err
    assert _head(reg) == head


def test_the_python_api_tracks_uris_and_uploads_paths_given_at_creation(
    reg: Path, files: Path, tmp_path: Path
) -> None:
    client = ModelBoxClient(reg)
    model = client.model("ai/vision/yolo")
    mv = model.new_model_version("v2", artifacts=[str(files / "model.pt")])
    assert [a.path for a in mv.artifacts()] == ["model.pt"]
    placed = mv.download_artifacts(tmp_path / "out")
    assert [p.name for p in placed] == ["model.pt"]
    client.close()


def test_uri_artifacts_given_to_the_seed_api_are_tracked(
    s3_reg: Path, s3_server: S3Server
) -> None:
    reg, server = s3_reg, s3_server
    uri = f"s3://{BUCKET}/seed/{uuid.uuid4().hex}/model.pt"
    server.client().pipe_file(uri, b"weights")
    client = ModelBoxClient(reg)
    mv = client.create_model_version("ai/vision/yolo", "yolo4", "v3", "d", [uri])
    [artifact] = mv.artifacts()
    assert artifact.uri == uri and artifact.size == 7 and artifact.file_type == "MODEL"
    client.close()


@pytest.mark.parametrize(
    ("name", "head", "kind", "mime"),
    [
        ("model.pt", b"PK\x03\x04", FileType.MODEL, "application/x-pytorch"),
        ("weights.safetensors", b"", FileType.MODEL, "application/vnd.safetensors"),
        ("epoch-3.ckpt", b"", FileType.CHECKPOINT, "application/x-checkpoint"),
        ("train.parquet", b"PAR1", FileType.DATASET, "application/vnd.apache.parquet"),
        ("notes.md", b"# hi", FileType.TEXT, "text/markdown"),
        ("sample", b"\x89PNG\r\n\x1a\n....", FileType.IMAGE, "image/png"),
        ("clip", b"\x00\x00\x00\x18ftypmp42", FileType.VIDEO, "video/mp4"),
        ("speech.wav", b"RIFF", FileType.AUDIO, "audio/x-wav"),
        ("blob", b"\x00\x01\x02", FileType.OTHER, "application/octet-stream"),
        ("README", b"plain words", FileType.TEXT, "text/plain"),
    ],
)
def test_file_and_mime_types_are_detected(
    tmp_path: Path, name: str, head: bytes, kind: FileType, mime: str
) -> None:
    path = tmp_path / name
    path.write_bytes(head)
    assert sniff(path) == (kind, mime)


def test_mime_type_uses_the_name_before_the_content() -> None:
    detect: Callable[[str, bytes], str] = mime_type
    assert detect("x.json", b"\x89PNG") == "application/json"


def test_the_store_is_chosen_by_env_then_clone_config_then_registry_setting(
    tmp_path: Path, run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    from modelbox.artifacts import store_url

    shared = tmp_path / "shared-store"
    reg = tmp_path / "reg"
    assert run("init", str(reg), "--store", str(shared)).code == 0
    registry = Registry.open(reg)
    assert store_url(registry) == str(shared)
    git(reg, "config", "modelbox.store", str(tmp_path / "clone-store"))
    assert store_url(Registry.open(reg)) == str(tmp_path / "clone-store")
    monkeypatch.setenv("MODELBOX_STORE", str(tmp_path / "env-store"))
    assert store_url(Registry.open(reg)) == str(tmp_path / "env-store")
    settings = json.loads((reg / ".modelbox" / "registry.json").read_text())
    assert settings["store"] == str(shared)


def test_a_shared_store_setting_is_used_by_add_and_get(
    tmp_path: Path, files: Path, run: Run
) -> None:
    shared = tmp_path / "shared-store"
    reg = tmp_path / "reg"
    assert run("init", str(reg), "--store", str(shared)).code == 0
    repo = ("--repo", str(reg))
    assert run(*repo, "model", "create", "m").code == 0
    assert run(*repo, "artifact", "add", "default/m", str(files / "model.pt")).code == 0
    assert any(shared.rglob("*")), "the object went to the shared store"
    assert not (reg / ".git" / "modelbox" / "store").exists()
