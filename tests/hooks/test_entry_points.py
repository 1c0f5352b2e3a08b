"""The hooks' console scripts, one broken rule at a time, against registries made with
modelbox and committed with plain git; `modelbox check` must agree with them. Also: the hook
manifest is valid for pre-commit and names installed console scripts, and the schemas ship
inside the package.

The scripts run as processes, as pre-commit runs them (and because ``tests/hooks`` would
shadow the ``hooks`` package as a namespace package inside the test process).
"""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import metadata, resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from hook_helpers import (
    HOOK_IDS,
    MODEL,
    MODEL_DIR,
    POINTER,
    PROJECT,
    TAGS,
    V1,
    V2,
    commit,
    edit,
    git,
    make_registry,
)
from pre_commit.clientlib import load_manifest  # type: ignore[import-untyped]  # no hints shipped

if TYPE_CHECKING:
    from conftest import Run

T = "2026-11-23T14:00:00Z"
SHA = "946a5d4457022ed77e30c3c9341d6665aa2d2061c83bbc861cf1057d4b2aafa2"


@pytest.fixture
def reg(tmp_path: Path, run: Run, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = make_registry(tmp_path / "registry", run)
    monkeypatch.chdir(path)  # pre-commit runs hooks at the top of the repository
    return path


def tracked(repo: Path) -> list[str]:
    return [p for p in git(repo, "ls-files", "-z").split("\0") if p]


VALIDATE = "modelbox-hook-validate"
FORMAT = "modelbox-hook-format"
NO_RAW = "modelbox-hook-no-raw-artifacts"


def hook(script: str, *argv: str) -> tuple[int, list[str]]:
    """Run an installed hook script in the current directory: exit code, stdout lines."""
    proc = subprocess.run([str(Path(sys.executable).with_name(script)), *argv],
                          capture_output=True, text=True, check=False)
    assert not proc.stderr, proc.stderr
    return proc.returncode, proc.stdout.splitlines()


# (what to break, the message start expected from the hook and from `modelbox check`)
BROKEN: list[tuple[str, dict[str, Any], str]] = [
    ("manifest", {f"{V1}/_version.json": {"framework": "caffe"}},
     f"{V1}/_version.json: framework: \"caffe\" is not one of"),
    ("required field", {f"{V1}/_version.json": {"created_at": None}},
     f"{V1}/_version.json: created_at: is missing"),
    ("bad checksum", {POINTER: {"sha256": "abc"}},
     f"{POINTER}: sha256: \"abc\" is not a SHA-256 checksum"),
    ("escaping pointer", {f"{V2}/_artifacts/x.json": {
        "kind": "artifact", "path": "../../x", "size": 1, "sha256": SHA, "created_at": T}},
     f"{V2}/_artifacts/x.json: path: \"../../x\" is not a safe relative path"),
    ("pointer elsewhere", {f"{V2}/_artifacts/x.json": {
        "kind": "artifact", "path": "y", "size": 1, "sha256": SHA, "created_at": T}},
     f"{V2}/_artifacts/x.json: path: says 'y' but the file sits at 'x'"),
    ("dangling tag", {TAGS: {"tags": {"production": "v9"}}},
     f"{TAGS}: tags.production: points to v9, which does not exist"),
    ("duplicated tag", {TAGS: '{"kind": "tags", "tags": {"production": "v1", '
                              '"production": "v2"}}\n'},
     f"{TAGS}: tags.production: the key appears twice"),
    ("reserved tag", {TAGS: {"tags": {"latest": "v1"}}},
     f"{TAGS}: tags.latest: 'latest' is computed"),
    ("tag on an archived version", {f"{V1}/_version.json": {"archived": True}},
     f"{TAGS}: tags.production: points to the archived version v1"),
    ("version folder without manifest", {f"{MODEL_DIR}/_versions/v3/_metrics.json": {
        "kind": "metrics", "series": {}}},
     f"{MODEL_DIR}/_versions/v3: (folder): a version folder without _version.json"),
    ("misplaced version", {f"{V2}/_version.json": {"version": "v1"}},
     f"{V2}/_version.json: model/version: names {MODEL}@v1 but sits at {MODEL}@v2"),
    ("duplicate identity", {"models/ai/vision/yolo3/_model.json": {
        "kind": "model", "namespace": "ai/vision", "name": "yolo", "created_at": T}},
     "models/ai/vision/yolo3/_model.json: (document): models/ai/vision/yolo/_model.json "
     "claims the same identity"),
    ("a model and an experiment", {"experiments/ai/vision/yolo/_experiment.json": {
        "kind": "experiment", "namespace": "ai/vision", "name": "yolo", "created_at": T}},
     "experiments/ai/vision/yolo/_experiment.json: (document): models/ai/vision/yolo/"
     "_model.json exists too: a name is either a model or an experiment"),
    ("model without manifest", {"models/ai/vision/ghost/_tags.json": {"tags": {}}},
     "models/ai/vision/ghost: (folder): has modelbox files but no _model.json"),
    ("raw file among pointers", {f"{V2}/_artifacts/model.pt": b"\x80\x02weights"},
     f"{V2}/_artifacts/model.pt: (file): not a pointer file"),
    ("stray file", {"models/ai/notes.txt": "notes\n"},
     "models/ai/notes.txt: (file): not a modelbox document"),
    ("broken settings", {".modelbox/registry.json": {"branch": 3}},
     ".modelbox/registry.json: branch: must be a string, not 3"),
    ("merge conflict", {TAGS: '{"tags": {\n<<<<<<< HEAD\n"production": "v1"\n=======\n'
                              '"production": "v2"\n>>>>>>> other\n}}\n'},
     f"{TAGS}: (document): not valid JSON — a merge conflict left in the file"),
]


def apply(repo: Path, changes: dict[str, Any]) -> None:
    for path, change in changes.items():
        if isinstance(change, dict):
            edit(repo, path, change)
        else:
            edit(repo, path, text=change)


def test_a_valid_registry_passes_every_hook_and_check(
    reg: Path, run: Run
) -> None:
    files = tracked(reg)
    assert hook(VALIDATE, *files) == (0, [])
    assert hook(FORMAT, *files) == (0, [])
    assert hook(NO_RAW, *files) == (0, [])
    assert run("--repo", reg, "check").code == 0


@pytest.mark.parametrize(("rule", "changes", "message"), BROKEN, ids=[b[0] for b in BROKEN])
def test_each_broken_rule_fails_the_hook_and_check_alike(
    reg: Path, run: Run, rule: str, changes: dict[str, Any], message: str,
) -> None:
    apply(reg, changes)
    commit(reg, rule)
    code, lines = hook(VALIDATE, *tracked(reg))
    assert code == 1
    assert any(line.startswith(message) for line in lines), lines

    result = run("--repo", reg, "check", "--json")
    assert result.code == 1
    if rule == "broken settings":  # modelbox cannot open the registry: one error line
        assert ".modelbox/registry.json: branch: " in result.err
        return
    # Warnings (a tag map committed with plain git: moved outside modelbox) aside.
    checked = [f"{p['path']}: {p['message']}" for p in json.loads(result.out)
               if not p["warning"]]
    assert any(line.startswith(message) for line in checked), checked
    # The hook over every file and `modelbox check` find the same problems.
    assert [line for line in lines if not line.startswith("warning: ")] == [
        line for line in checked if not line.startswith("refs/")]


def test_a_staged_change_is_checked_with_what_it_affects_only(
    reg: Path
) -> None:
    edit(reg, "models/ai/nlp/bert/_model.json", {"owner": 7})
    commit(reg, "broken long ago")
    edit(reg, TAGS, {"tags": {"production": "v2", "staging": "v2"}})
    code, lines = hook(VALIDATE, TAGS)
    assert code == 0  # bert's manifest is not part of this change
    assert lines == [f"warning: refs/modelbox/tags/{MODEL}/production: tag ref is out of date "
                     "once this is committed; run `modelbox refs sync` after the commit"]
    edit(reg, f"{V2}/_version.json", {"archived": True})
    code, lines = hook(VALIDATE, f"{V2}/_version.json")
    assert code == 1
    assert f"{TAGS}: tags.production: points to the archived version v2; move or remove " \
           "the tag" in lines


def test_untracked_files_are_not_part_of_the_commit(
    reg: Path
) -> None:
    edit(reg, f"{MODEL_DIR}/_versions/v3/_version.json", {
        "kind": "version", "model": MODEL, "version": "v3", "created_at": T})
    edit(reg, TAGS, {"tags": {"production": "v3"}})
    git(reg, "add", TAGS)
    code, lines = hook(VALIDATE, TAGS)
    assert code == 1
    assert lines[0].startswith(f"{TAGS}: tags.production: points to v3, which does not exist")
    git(reg, "add", "-A")
    assert hook(VALIDATE, TAGS)[0] == 0


def test_a_tag_ref_collision_is_refused_from_the_manifests(
    reg: Path
) -> None:
    nested = f"{MODEL_DIR}/staging/tiny"
    edit(reg, f"{nested}/_model.json", {
        "kind": "model", "namespace": f"{MODEL}/staging", "name": "tiny", "created_at": T})
    edit(reg, f"{nested}/_versions/v1/_version.json", {
        "kind": "version", "model": f"{MODEL}/staging/tiny", "version": "v1", "created_at": T})
    edit(reg, f"{nested}/_tags.json", {"kind": "tags", "tags": {"prod": "v1"}})
    git(reg, "add", "-A")
    code, lines = hook(VALIDATE, f"{nested}/_tags.json")
    assert code == 1
    assert f"{TAGS}: tags.staging: the ref of {MODEL}:staging collides with the tag refs of " \
           f"the model {MODEL}/staging/tiny: Git cannot hold both; untag {MODEL}:staging or " \
           "rename the model" in lines


def test_format_rewrites_only_what_is_not_canonical(
    reg: Path
) -> None:
    version = reg / V1 / "_version.json"
    canonical = version.read_bytes()
    version.write_bytes(json.dumps(json.loads(canonical)).encode())
    edit(reg, TAGS, text='{"tags": {"production": "v1", "production": "v2"}}')
    before = (reg / TAGS).read_bytes()
    code, lines = hook(FORMAT, *tracked(reg))
    assert code == 1
    assert lines == [
        f"{V1}/_version.json: rewritten as canonical JSON; review and stage it",
        f"{TAGS}: tags.production: the key appears twice; keep the right one, then format again",
    ]
    assert version.read_bytes() == canonical
    assert (reg / TAGS).read_bytes() == before  # never drops a tag silently
    edit(reg, TAGS, {"tags": {"production": "v1"}})
    assert hook(FORMAT, *tracked(reg)) == (0, [])


def test_raw_artifacts_are_refused_with_the_command_that_replaces_them(
    reg: Path
) -> None:
    weights = reg / V1 / "model.pt"
    weights.write_bytes(b"\0" * 3000)
    (reg / "README.md").write_text("registry notes\n")
    edit(reg, f"{V1}/_artifacts/model.pt.json", text=b"\x80\x02binary\0")
    code, lines = hook(NO_RAW, f"{V1}/model.pt", "README.md",
                       f"{V1}/_artifacts/model.pt.json")
    assert code == 1
    assert lines == [
        f"{V1}/model.pt: (file): a raw file (3000 bytes) where only modelbox documents belong; "
        f"keep it out of Git and commit a pointer: `git rm --cached {V1}/model.pt`, then "
        f"`modelbox artifact add {MODEL}@v1 model.pt`",
        f"{V1}/_artifacts/model.pt.json: (file): binary content where a JSON document belongs; "
        f"keep it out of Git and commit a pointer: `git rm --cached "
        f"{V1}/_artifacts/model.pt.json`, then `modelbox artifact add {MODEL}@v1 model.pt.json`",
    ]
    assert hook(NO_RAW, "README.md") == (0, [])


def test_max_kb_sets_the_size_cap(reg: Path) -> None:
    edit(reg, f"{V2}/_metrics.json", {"series": {"loss": [
        {"step": i, "wallclock": 1.0 + i, "value": 0.5} for i in range(200)]}})
    path = f"{V2}/_metrics.json"
    code, lines = hook(NO_RAW, "--max-kb=4", path)
    assert code == 1
    assert lines[0].startswith(f"{path}: (file): ") and "over the 4 KB limit" in lines[0]
    assert hook(NO_RAW, "--max-kb=64", path) == (0, [])


def test_the_hook_manifest_is_valid_and_names_installed_console_scripts() -> None:
    hooks = load_manifest(str(PROJECT / ".pre-commit-hooks.yaml"))
    assert tuple(h["id"] for h in hooks) == HOOK_IDS
    scripts = {ep.name: ep.value for ep in metadata.entry_points(group="console_scripts")}
    for entry in (h["entry"] for h in hooks):
        assert scripts[entry].startswith("hooks."), entry
    assert all(h["language"] == "python" for h in hooks)


def test_the_schemas_ship_inside_the_package() -> None:
    packaged = resources.files("modelbox") / "schemas"
    root = {p.name: p.read_bytes() for p in (PROJECT / "schemas").glob("*.schema.json")}
    assert {p.name: p.read_bytes() for p in packaged.iterdir()} == root
