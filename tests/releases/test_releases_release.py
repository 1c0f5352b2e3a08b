"""Releases (issue 14, item 1): a version is open until released, by ``version release``,
its first collection link or a protected tag; then its artifact set is frozen and pinned by
a digest that reads through tags and links, ``check`` and the pre-commit hook verify."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from hostile import assert_refused, fingerprint, modelbox

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "hooks"))
# importable once tests/hooks is on the path
from hook_helpers import (
    HookRepo,
    hook_repo,
    pre_commit_home,
    write_config,
)

from modelbox import ModelBoxClient
from modelbox.audit import Change
from modelbox.errors import DigestMismatchError, ReleasedVersionError
from modelbox.manifests import ArtifactPointer, now
from modelbox.registry import Registry

if TYPE_CHECKING:
    from conftest import Git, Run

__all__ = ["hook_repo", "pre_commit_home"]  # session fixtures of the hooks tests

M = "ai/vision/yolo"
V1 = f"models/{M}/_versions/v1"
POINTER = f"{V1}/_artifacts/model.pt.json"
WEIGHTS = b"\x80\x02released weights" * 64


@pytest.fixture
def reg(tmp_path: Path, run: Run) -> Path:
    """A registry with M@v1 holding model.pt, and an empty M@v2."""
    path = tmp_path / "reg"
    weights = tmp_path / "model.pt"
    weights.write_bytes(WEIGHTS)
    for argv in (("init", path), ("--repo", path, "model", "create", M),
                 ("--repo", path, "version", "create", M, "v1"),
                 ("--repo", path, "artifact", "add", f"{M}@v1", weights),
                 ("--repo", path, "version", "create", M, "v2")):
        result = run(*argv)
        assert result.code == 0, (argv, result)
    return path


def manifest(reg: Path, version: str = "v1", model: str = M) -> dict[str, Any]:
    path = reg / "models" / model / "_versions" / version / "_version.json"
    return dict(json.loads(path.read_text(encoding="utf-8")))


def expected_digest(reg: Path, version: str = "v1") -> str:
    """The digest as docs/releases.md defines it, computed here independently."""
    rows = []
    for pointer in sorted((reg / "models" / M / "_versions" / version / "_artifacts").rglob(
            "*.json")):
        doc = json.loads(pointer.read_text(encoding="utf-8"))
        rows.append([doc["path"], doc.get("sha256"), doc["size"], doc.get("uri")])
    text = json.dumps(sorted(rows), separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def roots(reg: Path, tmp_path: Path) -> list[Path]:
    return [reg, tmp_path / "cache", tmp_path / "out"]


def new_bytes(tmp_path: Path) -> Path:
    other = tmp_path / "new" / "model.pt"
    other.parent.mkdir(exist_ok=True)
    other.write_bytes(b"different weights")
    return other


def hand_edit_pointer(reg: Path, git: Git) -> None:
    """Point the released model.pt at other bytes with plain git (hooks skipped)."""
    doc = json.loads((reg / POINTER).read_text(encoding="utf-8"))
    doc["sha256"] = hashlib.sha256(b"swapped").hexdigest()
    doc["size"] = 7
    (reg / POINTER).write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    git("commit", "-qam", "swap the weights by hand", "--no-verify", cwd=reg)


# -- what releases a version --------------------------------------------------------------
def test_version_release_records_the_digest_and_freezes_the_artifact_set(
    reg: Path, tmp_path: Path, run: Run
) -> None:
    assert "released" not in manifest(reg)
    result = run("--repo", reg, "version", "release", f"{M}@v1", "--json")
    assert result.code == 0, result
    released = manifest(reg)["released"]
    assert released["by"] == "version release"
    assert released["digest"] == expected_digest(reg) == json.loads(result.out)["digest"]
    before = fingerprint(*roots(reg, tmp_path))
    started = time.perf_counter()
    refused = modelbox("--repo", reg, "artifact", "add", f"{M}@v1", new_bytes(tmp_path))
    elapsed = time.perf_counter() - started
    assert_refused(refused.code, refused.err, f"{M}@v1 was released by version release",
                   f"modelbox version create {M} NEW --from {M}@v1")
    assert fingerprint(*roots(reg, tmp_path)) == before
    assert elapsed < 5  # the bench holds the 0.25 s target; this only catches a hang
    again = run("--repo", reg, "version", "release", f"{M}@v1")
    assert again.code == 0 and manifest(reg)["released"] == released  # idempotent


def test_a_protected_tag_releases_what_it_names(reg: Path, run: Run) -> None:
    assert run("--repo", reg, "tag", f"{M}@v1", "production").code == 0
    released = manifest(reg)["released"]
    assert released["by"] == "tag production"
    assert released["digest"] == expected_digest(reg)


def test_a_protected_tag_on_a_version_without_artifacts_is_refused(
    reg: Path, tmp_path: Path
) -> None:
    before = fingerprint(*roots(reg, tmp_path))
    for argv in (("tag", f"{M}@v2", "production"),
                 ("version", "create", M, "v3", "--tag", "production")):
        refused = modelbox("--repo", reg, *argv)
        assert_refused(refused.code, refused.err, "has no artifacts", "production",
                       "artifact add")
        assert fingerprint(*roots(reg, tmp_path)) == before


def test_an_ordinary_tag_leaves_the_version_open_for_uploads(
    reg: Path, tmp_path: Path, run: Run
) -> None:
    assert run("--repo", reg, "tag", f"{M}@v2", "staging").code == 0
    added = run("--repo", reg, "artifact", "add", f"{M}@v2", new_bytes(tmp_path))
    assert added.code == 0, added
    assert "released" not in manifest(reg, "v2")
    assert run("--repo", reg, "tag", f"{M}@v2", "production").code == 0  # the documented flow
    assert manifest(reg, "v2")["released"]["by"] == "tag production"


def test_the_first_link_releases_the_source_and_the_link_records_its_digest(
    reg: Path, tmp_path: Path, run: Run
) -> None:
    assert run("--repo", reg, "collection", "create", "ai/shipped").code == 0
    assert run("--repo", reg, "link", f"{M}@v1", "ai/shipped").code == 0
    released = manifest(reg)["released"]
    assert released["by"] == "link ai/shipped@v0"
    assert manifest(reg, "v0", "ai/shipped")["digest"] == released["digest"]
    # A second link (into another collection: one collection links a source once)
    assert run("--repo", reg, "collection", "create", "ai/other").code == 0
    assert run("--repo", reg, "link", f"{M}@v1", "ai/other").code == 0
    assert manifest(reg)["released"] == released
    refused = run("--repo", reg, "artifact", "add", f"{M}@v1", new_bytes(tmp_path))
    assert_refused(refused.code, refused.err, "released by link ai/shipped@v0")


def test_protecting_a_tag_releases_the_version_it_names_now(reg: Path, run: Run) -> None:
    assert run("--repo", reg, "tag", f"{M}@v1", "release").code == 0
    assert "released" not in manifest(reg)
    result = run("--repo", reg, "config", "protected-tags", "production,release", "--json")
    assert result.code == 0, result
    assert json.loads(result.out) == {"protected_tags": ["production", "release"],
                                      "released": [f"{M}@v1"]}
    assert manifest(reg)["released"]["by"] == "tag release"
    settings = json.loads((reg / ".modelbox/registry.json").read_text())
    assert settings["protected_tags"] == ["production", "release"]


def test_with_no_protected_tag_production_is_an_ordinary_tag(reg: Path, run: Run) -> None:
    assert run("--repo", reg, "config", "protected-tags", "--none").code == 0
    assert run("--repo", reg, "tag", f"{M}@v2", "production").code == 0
    assert "released" not in manifest(reg, "v2")


@pytest.mark.parametrize("value", ["../x", "a/b", "latest", "x" * 200])
def test_a_bad_protected_tag_is_refused_and_changes_nothing(
    reg: Path, tmp_path: Path, value: str
) -> None:
    before = fingerprint(*roots(reg, tmp_path))
    refused = modelbox("--repo", reg, "config", "protected-tags", f"production,{value}")
    assert_refused(refused.code, refused.err, "tag")
    assert fingerprint(*roots(reg, tmp_path)) == before


def test_a_hand_written_bad_protected_tags_setting_is_one_line(
    reg: Path, git: Git
) -> None:
    settings = reg / ".modelbox/registry.json"
    doc = json.loads(settings.read_text())
    doc["protected_tags"] = "production"
    settings.write_text(json.dumps(doc))
    git("commit", "-qam", "hand edit", "--no-verify", cwd=reg)
    refused = modelbox("--repo", reg, "tag", f"{M}@v1", "staging")
    assert_refused(refused.code, refused.err, "protected_tags")


# -- a frozen set --------------------------------------------------------------------------
def test_a_released_set_refuses_track_before_contacting_anything(
    reg: Path, tmp_path: Path, run: Run
) -> None:
    assert run("--repo", reg, "version", "release", f"{M}@v1").code == 0
    before = fingerprint(*roots(reg, tmp_path))
    # No server listens here: the refusal must come before any request.
    refused = modelbox("--repo", reg, "artifact", "track", f"{M}@v1",
                       "s3://nowhere-bucket/x/model.pt")
    assert_refused(refused.code, refused.err, "was released by version release", "--from")
    assert fingerprint(*roots(reg, tmp_path)) == before


@pytest.mark.parametrize("change", ["replace", "remove", "add"])
def test_the_registry_refuses_any_write_to_a_released_artifacts_folder(
    reg: Path, tmp_path: Path, run: Run, change: str
) -> None:
    """The one guard at the write layer: whatever command (remove, replace...) stages it."""
    assert run("--repo", reg, "version", "release", f"{M}@v1").code == 0
    before = fingerprint(*roots(reg, tmp_path))
    pointer = ArtifactPointer(path="model.pt", size=1, sha256="0" * 64, created_at=now())
    registry = Registry.open(reg)
    try:
        with pytest.raises(ReleasedVersionError, match="released by version release"), \
                registry.transaction() as txn:
            if change == "remove":
                txn.delete(POINTER)
            elif change == "replace":
                txn.put(POINTER, pointer)
            else:
                txn.put(f"{V1}/_artifacts/extra.bin.json",
                        pointer.model_copy(update={"path": "extra.bin"}))
            txn.change = Change("artifact.add", f"{M}@v1", "test")
    finally:
        registry.close()
    assert fingerprint(*roots(reg, tmp_path)) == before


def test_metadata_metrics_description_and_events_stay_editable(
    reg: Path, run: Run
) -> None:
    assert run("--repo", reg, "version", "release", f"{M}@v1").code == 0
    released = manifest(reg)["released"]
    for argv in (("meta", "set", f"{M}@v1", "reviewed", "true"),
                 ("metrics", "log", f"{M}@v1", "acc=0.93"),
                 ("event", "log", f"{M}@v1", "deployed")):
        result = run("--repo", reg, *argv)
        assert result.code == 0, (argv, result)
    with ModelBoxClient(reg) as client:
        version = client.model_version(f"{M}@v1")
        version.update_metadata("notes", "fine")
        assert version.released == released
    after = manifest(reg)
    assert after["metadata"] == {"reviewed": True, "notes": "fine"}
    assert after["metrics"] == {"acc": 0.93}
    assert after["released"] == released


def test_the_python_api_releases_and_is_refused_like_the_cli(reg: Path, tmp_path: Path) -> None:
    with ModelBoxClient(reg) as client:
        version = client.model_version(f"{M}@v1")
        assert version.released is None
        release = version.release()
        assert release["by"] == "version release" and version.released == release
        with pytest.raises(ReleasedVersionError, match="--from"):
            version.upload_artifact([new_bytes(tmp_path)])


# -- a hand edit is caught -----------------------------------------------------------------
def test_a_hand_edited_released_pointer_is_reported_by_check(
    reg: Path, run: Run, git: Git
) -> None:
    assert run("--repo", reg, "tag", f"{M}@v1", "production").code == 0
    assert run("--repo", reg, "check").code == 0
    hand_edit_pointer(reg, git)
    result = run("--repo", reg, "check")
    assert result.code == 1
    assert f"{V1}/_version.json: released: its artifacts no longer match" in result.err
    since = run("--repo", reg, "check", "--since", "HEAD~1")
    assert since.code == 1 and "released:" in since.err


@pytest.mark.parametrize("argv", [("get", f"{M}:production", "-o", "out"),
                                  ("get", f"{M}@v1", "-o", "out"),
                                  ("artifact", "list", f"{M}:production")])
def test_a_hand_edited_release_is_refused_before_anything_is_placed(
    reg: Path, tmp_path: Path, run: Run, git: Git, argv: tuple[str, ...]
) -> None:
    assert run("--repo", reg, "tag", f"{M}@v1", "production").code == 0
    recorded = manifest(reg)["released"]["digest"]
    hand_edit_pointer(reg, git)
    before = fingerprint(*roots(reg, tmp_path))
    refused = modelbox("--repo", reg, *argv, cwd=tmp_path)
    assert_refused(refused.code, refused.err, f"{M}@v1", recorded, expected_digest(reg))
    assert fingerprint(*roots(reg, tmp_path)) == before
    assert not (tmp_path / "out").exists()


def test_the_python_api_checks_the_digest_before_placing(
    reg: Path, tmp_path: Path, run: Run, git: Git
) -> None:
    assert run("--repo", reg, "tag", f"{M}@v1", "production").code == 0
    hand_edit_pointer(reg, git)
    with ModelBoxClient(reg) as client:
        version = client.model_version(f"{M}:production")
        with pytest.raises(DigestMismatchError):
            version.artifacts()
        with pytest.raises(DigestMismatchError):
            version.download_artifacts(tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_get_through_a_link_checks_the_digest_the_link_recorded(
    reg: Path, tmp_path: Path, run: Run, git: Git
) -> None:
    assert run("--repo", reg, "collection", "create", "ai/shipped").code == 0
    assert run("--repo", reg, "link", f"{M}@v1", "ai/shipped", "--tag", "prod").code == 0
    assert run("--repo", reg, "get", "ai/shipped:prod", "-o", tmp_path / "ok").code == 0
    hand_edit_pointer(reg, git)
    before = fingerprint(*roots(reg, tmp_path))
    refused = modelbox("--repo", reg, "get", "ai/shipped:prod", "-o", tmp_path / "out")
    assert_refused(refused.code, refused.err, f"{M}@v1 (through ai/shipped@v0)")
    assert fingerprint(*roots(reg, tmp_path)) == before


def test_a_link_still_pins_its_set_when_the_release_record_is_removed_by_hand(
    reg: Path, tmp_path: Path, run: Run, git: Git
) -> None:
    assert run("--repo", reg, "collection", "create", "ai/shipped").code == 0
    assert run("--repo", reg, "link", f"{M}@v1", "ai/shipped").code == 0
    doc = manifest(reg)
    del doc["released"]  # reopened by hand, then the weights swapped
    (reg / V1 / "_version.json").write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    hand_edit_pointer(reg, git)
    result = run("--repo", reg, "check")
    assert result.code == 1
    assert (f"models/ai/shipped/_versions/v0/_version.json: digest: {M}@v1 no longer holds "
            "the artifacts this link pinned") in result.err
    before = fingerprint(*roots(reg, tmp_path))
    refused = modelbox("--repo", reg, "get", "ai/shipped@v0", "-o", tmp_path / "out")
    assert_refused(refused.code, refused.err, "through ai/shipped@v0")
    assert fingerprint(*roots(reg, tmp_path)) == before


# -- a new version from a released one -----------------------------------------------------
def test_version_create_from_copies_the_pointers_and_uploads_nothing(
    reg: Path, tmp_path: Path, run: Run
) -> None:
    folder = tmp_path / "tokenizer"
    folder.mkdir()
    (folder / "vocab.txt").write_text("a b c\n")
    (folder / "config.json").write_text("{}\n")
    assert run("--repo", reg, "artifact", "add", f"{M}@v1", folder).code == 0
    assert run("--repo", reg, "tag", f"{M}@v1", "production").code == 0
    store = reg / ".git" / "modelbox" / "store"
    objects = fingerprint(store)
    result = run("--repo", reg, "version", "create", M, "v3", "--from", f"{M}:production")
    assert result.code == 0, result
    assert fingerprint(store) == objects  # nothing uploaded
    v3 = manifest(reg, "v3")
    assert v3["metadata"] == {"source_version": f"{M}@v1"} and "released" not in v3
    listed = json.loads(run("--repo", reg, "artifact", "list", f"{M}@v3", "--json").out)
    assert [(a["path"], a["sha256"]) for a in listed] == [
        (a["path"], a["sha256"]) for a in
        json.loads(run("--repo", reg, "artifact", "list", f"{M}@v1", "--json").out)]
    got = run("--repo", reg, "get", f"{M}@v3", "-o", tmp_path / "out")
    assert got.code == 0, got
    assert (tmp_path / "out" / "tokenizer" / "vocab.txt").read_text() == "a b c\n"
    assert (tmp_path / "out" / "model.pt").read_bytes() == WEIGHTS
    # the copy is open: the change that was refused on v1 lands here
    assert run("--repo", reg, "artifact", "add", f"{M}@v3", new_bytes(tmp_path),
               "--replace").code == 0


def test_a_copy_tagged_production_at_creation_is_released_with_its_copied_set(
    reg: Path, run: Run
) -> None:
    assert run("--repo", reg, "version", "release", f"{M}@v1").code == 0
    result = run("--repo", reg, "version", "create", M, "v3", "--from", f"{M}@v1",
                 "--tag", "production")
    assert result.code == 0, result
    assert manifest(reg, "v3")["released"]["digest"] == manifest(reg)["released"]["digest"]


def test_version_create_from_a_hand_edited_release_copies_nothing(
    reg: Path, tmp_path: Path, run: Run, git: Git
) -> None:
    assert run("--repo", reg, "version", "release", f"{M}@v1").code == 0
    hand_edit_pointer(reg, git)
    before = fingerprint(*roots(reg, tmp_path))
    refused = modelbox("--repo", reg, "version", "create", M, "v3", "--from", f"{M}@v1")
    assert_refused(refused.code, refused.err, "no longer match")
    assert fingerprint(*roots(reg, tmp_path)) == before


def _release_and_reopen_by_hand(reg: Path, run: Run, git: Git) -> None:
    """Release v1, then stage its document without the ``released`` record."""
    assert run("--repo", reg, "version", "release", f"{M}@v1").code == 0
    doc = manifest(reg)
    del doc["released"]
    (reg / V1 / "_version.json").write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    git("add", "-A", cwd=reg)


def test_a_release_removed_by_hand_is_refused_by_the_hook_and_check_since(
    reg: Path, run: Run, git: Git, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from hooks import validate

    _release_and_reopen_by_hand(reg, run, git)
    monkeypatch.chdir(reg)
    capsys.readouterr()
    assert validate.main([f"{V1}/_version.json"]) == 1
    assert "released: the release (version release, sha256:" in capsys.readouterr().out
    git("commit", "-qm", "reopen", "--no-verify", cwd=reg)
    since = run("--repo", reg, "check", "--since", "HEAD~1")
    assert since.code == 1 and "a release is permanent" in since.err
    assert validate.main([f"{V1}/_version.json"]) == 0  # committed: HEAD is the new base


def test_a_replace_ref_does_not_hide_a_reopened_release_from_the_hook(
    reg: Path, run: Run, git: Git, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # git applies refs/replace/ (a local one, or one fetched with its refspec): replacing
    # HEAD's document with the reopened one would show the hook no release to protect.
    from hooks import validate

    _release_and_reopen_by_hand(reg, run, git)
    head = git("rev-parse", f"HEAD:{V1}/_version.json", cwd=reg).strip()
    git("replace", head, git("rev-parse", f":{V1}/_version.json", cwd=reg).strip(), cwd=reg)
    monkeypatch.chdir(reg)
    capsys.readouterr()
    assert validate.main([f"{V1}/_version.json"]) == 1
    assert "released: the release (version release, sha256:" in capsys.readouterr().out


# -- the pre-commit hook -------------------------------------------------------------------
def test_the_validate_hook_refuses_a_hand_edit_of_a_released_version(
    reg: Path, run: Run, git: Git, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from hooks import validate

    assert run("--repo", reg, "version", "release", f"{M}@v1").code == 0
    doc = json.loads((reg / POINTER).read_text(encoding="utf-8"))
    doc["size"] = 1
    (reg / POINTER).write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    git("add", POINTER, cwd=reg)
    monkeypatch.chdir(reg)
    capsys.readouterr()
    assert validate.main([POINTER]) == 1
    assert "released: its artifacts no longer match" in capsys.readouterr().out


def test_pre_commit_refuses_a_hand_edit_of_a_released_version(
    reg: Path, run: Run, git: Git, hook_repo: HookRepo, pre_commit_home: Path
) -> None:
    """Through the real pre-commit framework, installed from a commit of this project
    (the hooks tests' environment, built once for the run)."""
    env = {**os.environ, "PRE_COMMIT_HOME": str(pre_commit_home)}
    config = write_config(reg.parent / "pre-commit.yaml", hook_repo)
    assert run("--repo", reg, "version", "release", f"{M}@v1").code == 0
    doc = json.loads((reg / POINTER).read_text(encoding="utf-8"))
    doc["size"] = 1
    (reg / POINTER).write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    git("add", POINTER, cwd=reg)
    proc = subprocess.run(
        [sys.executable, "-m", "pre_commit", "run", "-c", str(config), "--color", "never"],
        cwd=reg, capture_output=True, text=True, check=False, timeout=900, env=env,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"{V1}/_version.json: released: its artifacts no longer match" in proc.stdout
