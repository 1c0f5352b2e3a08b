"""The walkthrough of issue 2, command for command, through the CLI and plain git."""

from __future__ import annotations

import json
import subprocess
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from core_helpers import assert_clean, git_code, git_out

from modelbox.names import parse_model
from modelbox.registry import Registry

if TYPE_CHECKING:
    from conftest import Run

MODEL = "ai/vision/yolo"


@pytest.mark.smoke
def test_issue_2_walkthrough(tmp_path: Path, run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    assert run("init", "reg").code == 0
    reg = tmp_path / "reg"
    monkeypatch.chdir(reg)
    assert_clean(reg)

    changes = [
        ("model", "create", MODEL, "--owner", "ml@example.com", "--task", "object_detection",
         "--description", "YOLO v4", "--meta", "team=vision"),
        ("version", "create", MODEL, "v1", "--framework", "pytorch", "--meta", "epochs=40",
         "--tag", "staging"),
        ("version", "create", MODEL, "v2", "--framework", "pytorch"),
        ("tag", f"{MODEL}@v2", "staging"),
        ("tag", f"{MODEL}@v1", "candidate"),
    ]
    for argv in changes:
        result = run(*argv)
        assert result.code == 0, result
        assert_clean(reg)

    result = run("resolve", f"{MODEL}:staging")
    assert (result.code, result.out) == (0, "v2\n")
    assert run("resolve", f"{MODEL}:candidate").out == "v1\n"

    result = run("model", "list", "--json")
    assert result.code == 0
    models = json.loads(result.out)
    assert [(m["namespace"], m["name"]) for m in models] == [("ai/vision", "yolo")]
    assert models[0]["owner"] == "ml@example.com"
    assert models[0]["task"] == "object_detection"
    assert models[0]["description"] == "YOLO v4"
    assert models[0]["metadata"] == {"team": "vision"}

    result = run("version", "list", MODEL, "--json")
    assert result.code == 0
    versions = {v["version"]: v for v in json.loads(result.out)}
    assert list(versions) == ["v1", "v2"]
    assert versions["v1"]["tags"] == ["candidate"]
    assert versions["v2"]["tags"] == ["staging"]
    assert versions["v1"]["framework"] == "pytorch"
    assert versions["v1"]["metadata"] == {"epochs": 40}
    assert versions["v1"]["name"] == "yolo"  # defaults to the model's name

    result = run("meta", "set", f"{MODEL}@v2", "dataset", '"coco-2017"')
    assert result.code == 0, result
    assert_clean(reg)
    with closing(Registry.open(reg)) as registry:
        assert registry.get_version(parse_model(MODEL), "v2").metadata == {
            "dataset": "coco-2017"
        }

    result = run("log", MODEL)
    assert result.code == 0
    lines = result.out.splitlines()
    assert "version.update" in lines[0]
    assert f'{MODEL}@v2  - -> "coco-2017"' in lines[0]
    assert any(f"tag.move  {MODEL}:staging  v1 -> v2" in line for line in lines)
    assert all("Test User <test@example.com>" in line for line in lines)

    refs = git_out(reg, "for-each-ref", "--format=%(refname)", "refs/modelbox")
    assert refs.split() == [
        f"refs/modelbox/tags/{MODEL}/candidate",
        f"refs/modelbox/tags/{MODEL}/staging",
    ]

    subjects = git_out(reg, "log", "--format=%s").splitlines()
    assert subjects == [
        f"meta set {MODEL}@v2 dataset",
        f"tag {MODEL}:candidate -> v1",
        f"tag {MODEL}:staging v1 -> v2",
        f"version create {MODEL}@v2",
        f"version create {MODEL}@v1",
        f"model create {MODEL}",
        "init modelbox registry",
    ]
    assert_clean(reg)
    fsck = subprocess.run(
        ["git", "fsck", "--strict", "--no-dangling"], cwd=reg, capture_output=True, text=True,
        check=False,
    )
    assert fsck.returncode == 0, fsck.stderr
    assert "error" not in fsck.stderr
    assert git_code(reg, "diff", "--cached", "--quiet") == 0


def test_read_only_commands_make_no_commit(registry_path: Path, run: Run) -> None:
    repo = ("--repo", str(registry_path))
    assert run(*repo, "model", "create", "m").code == 0
    assert run(*repo, "version", "create", "m", "v1", "--tag", "prod").code == 0
    head = git_out(registry_path, "rev-parse", "HEAD")
    for argv in (
        ("model", "list"), ("model", "show", "m"), ("version", "list", "m"),
        ("version", "show", "m:prod"), ("resolve", "m:prod"), ("log",), ("check",),
        ("refs", "sync"), ("model", "show", "m", "--json"),
    ):
        assert run(*repo, *argv).code == 0, argv
    assert git_out(registry_path, "rev-parse", "HEAD") == head
    assert_clean(registry_path)


def test_init_refuses_an_existing_registry(registry_path: Path, run: Run) -> None:
    head = git_out(registry_path, "rev-parse", "HEAD")
    result = run("init", str(registry_path))
    assert result.code == 1
    assert "already a modelbox registry" in result.err
    assert git_out(registry_path, "rev-parse", "HEAD") == head


def test_init_turns_an_existing_git_repository_into_a_registry(tmp_path: Path, run: Run) -> None:
    repo = tmp_path / "existing"
    repo.mkdir()
    git_out(repo, "init", "-q", "-b", "main")
    (repo / "README.md").write_text("hello\n")
    git_out(repo, "add", "README.md")
    git_out(repo, "commit", "-q", "-m", "readme")
    assert run("init", str(repo)).code == 0
    assert git_out(repo, "log", "--format=%s").splitlines() == [
        "init modelbox registry", "readme"
    ]
    assert_clean(repo)
    assert (repo / ".modelbox" / "registry.json").is_file()
    assert run("--repo", str(repo), "model", "create", "m").code == 0
    assert_clean(repo)
