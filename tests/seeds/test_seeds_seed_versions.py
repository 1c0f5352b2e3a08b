"""Seed 004's version model: versions numbered v0, v1, ... as W&B numbers them, a collision
of two clones' numbers refused at push, and archived versions marked in `version list --all`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import Run
from hostile import assert_refused, fingerprint

from modelbox import ModelBoxClient
from modelbox.errors import VersionCollisionError


def _ok(run: Run, *argv: str | Path) -> str:
    result = run(*argv)
    assert result.code == 0, result
    return result.out


def test_version_create_without_a_name_takes_the_next_vn(
    registry_path: Path, run: Run
) -> None:
    repo = ("--repo", registry_path)
    _ok(run, *repo, "model", "create", "ai/det")
    made = json.loads(_ok(run, *repo, "version", "create", "ai/det", "--json"))
    assert made["version"] == "v0"
    assert "Created version ai/det@v1" in _ok(run, *repo, "version", "create", "ai/det")
    # Other names do not count; the highest vN does (archived ones too), gaps are kept.
    _ok(run, *repo, "version", "create", "ai/det", "1.0.0")
    _ok(run, *repo, "version", "create", "ai/det", "v7")
    _ok(run, *repo, "version", "archive", "ai/det@v7")
    assert json.loads(_ok(run, *repo, "version", "create", "ai/det", "--json",
                          "--tag", "staging"))["version"] == "v8"
    assert _ok(run, *repo, "resolve", "ai/det:staging").strip() == "v8"
    log = _ok(run, *repo, "log", "ai/det@v8")
    assert "version.create" in log
    # A wrong call is still one line, and changes nothing.
    before = fingerprint(registry_path)
    for argv, needle in ((("ai/nope",), "ai/nope"), (("ai/det", "v..1"), "v..1")):
        refused = run(*repo, "version", "create", *argv)
        assert_refused(refused.code, refused.err, needle)
    assert fingerprint(registry_path) == before


def test_the_python_api_numbers_versions_and_links_with_one_counter(
    registry_path: Path,
) -> None:
    client = ModelBoxClient(registry_path)
    model = client.new_model("det", "me", "ai")
    assert model.new_model_version().version == "v0"
    assert model.new_model_version(unique_tags=["best"]).id == "ai/det@v1"
    with client.batch():  # inside one batch each takes the next number too
        made = [model.new_model_version(description=str(i)).version for i in range(3)]
    assert made == ["v2", "v3", "v4"]
    # Seed 002's spelling, whose version defaults to "".
    assert client.create_model_version("ai/det", "det-6").version == "v5"
    collection = client.new_collection("prod", namespace="ai")
    assert collection.link("ai/det@v1").version == "v0"
    assert collection.link("ai/det@v2").version == "v1"
    client.close()


def test_version_list_all_marks_archived_versions(registry_path: Path, run: Run) -> None:
    repo = ("--repo", registry_path)
    _ok(run, *repo, "model", "create", "det")
    for _ in range(3):
        _ok(run, *repo, "version", "create", "det")
    _ok(run, *repo, "version", "archive", "det@v1")
    rows = [line.split("\t") for line in _ok(run, *repo, "version", "list", "det",
                                              "--all").splitlines()]
    assert [(r[0], r[-1]) for r in rows] == [("v0", "-"), ("v1", "archived"), ("v2", "-")]
    plain = [line.split("\t") for line in _ok(run, *repo, "version", "list",
                                               "det").splitlines()]
    assert [r[0] for r in plain] == ["v0", "v2"] and all(len(r) == 4 for r in plain)
    listed = json.loads(_ok(run, *repo, "version", "list", "det", "--all", "--json"))
    assert [(v["version"], v["archived"]) for v in listed] == [
        ("v0", False), ("v1", True), ("v2", False)]
    client = ModelBoxClient(registry_path)
    assert [(v.version, v.archived) for v in client.model("default/det").versions(
        archived=True)] == [("v0", False), ("v1", True), ("v2", False)]
    client.close()


def _state(clone: Path) -> tuple[str, str, dict[str, str]]:
    """The registry branch, the tag refs and the work tree (fetched objects may differ)."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=clone, capture_output=True, text=True,
                              check=True).stdout

    refs = git("for-each-ref", "--format=%(refname) %(objectname)", "refs/heads",
               "refs/modelbox/tags")
    return refs, git("status", "--porcelain"), fingerprint(clone, ignore=(".git",))


@pytest.fixture
def two_clones(tmp_path: Path, run: Run) -> tuple[Path, Path]:
    """A real bare remote and two real clones of it, each with ``ai/det@v0``."""
    remote = tmp_path / "remote.git"
    subprocess.run(["git", "init", "--bare", "-q", "-b", "main", str(remote)], check=True)
    first = tmp_path / "first"
    _ok(run, "init", first)
    _ok(run, "--repo", first, "model", "create", "ai/det")
    _ok(run, "--repo", first, "version", "create", "ai/det")
    subprocess.run(["git", "remote", "add", "origin", str(remote)], cwd=first, check=True)
    _ok(run, "--repo", first, "push")
    second = tmp_path / "second"
    _ok(run, "clone", remote, second)
    return first, second


def test_two_clones_taking_the_same_number_the_second_push_is_refused(
    two_clones: tuple[Path, Path], run: Run, tmp_path: Path
) -> None:
    first, second = two_clones
    _ok(run, "--repo", first, "version", "create", "ai/det")        # v1 there
    _ok(run, "--repo", first, "version", "create", "ai/det")        # v2 there
    _ok(run, "--repo", first, "push")
    mine = json.loads(_ok(run, "--repo", second, "version", "create", "ai/det", "--json",
                          "--description", "mine", "--tag", "candidate"))
    assert mine["version"] == "v1"
    before = _state(second)
    pushed = run("--repo", second, "push")
    assert_refused(pushed.code, pushed.err, "ai/det@v1", "created both here and there",
                   "version create ai/det v3 --from ai/det@v1")
    assert _state(second) == before  # the pull inside the push changed nothing
    pulled = run("--repo", second, "pull")
    assert_refused(pulled.code, pulled.err, "ai/det@v1")
    with pytest.raises(VersionCollisionError) as caught:
        client = ModelBoxClient(second)
        try:
            from modelbox.sync import push

            push(client.registry)
        finally:
            client.close()
    assert caught.value.versions == ["ai/det@v1"]
    # The way out the message gives works, and both versions survive.
    _ok(run, "--repo", second, "version", "create", "ai/det", "v3", "--from", "ai/det@v1",
        "--description", "mine")
    _ok(run, "--repo", second, "version", "delete", "ai/det@v1", "--force")
    _ok(run, "--repo", second, "push")
    listed = json.loads(_ok(run, "--repo", second, "version", "list", "ai/det", "--json"))
    assert [(v["version"], v["description"]) for v in listed] == [
        ("v0", ""), ("v1", ""), ("v2", ""), ("v3", "mine")]
    _ok(run, "--repo", first, "pull")
    assert json.loads(_ok(run, "--repo", first, "version", "create", "ai/det",
                          "--json"))["version"] == "v4"


def test_the_same_version_made_on_both_sides_of_a_collection_is_refused_too(
    two_clones: tuple[Path, Path], run: Run
) -> None:
    first, second = two_clones
    _ok(run, "--repo", first, "collection", "create", "ai/prod")
    _ok(run, "--repo", first, "push")
    _ok(run, "--repo", second, "pull")
    _ok(run, "--repo", first, "version", "create", "ai/det")
    _ok(run, "--repo", first, "link", "ai/det@v1", "ai/prod")
    _ok(run, "--repo", first, "push")
    _ok(run, "--repo", second, "link", "ai/det@v0", "ai/prod")
    pushed = run("--repo", second, "push")
    assert_refused(pushed.code, pushed.err, "ai/prod@v0",
                   "modelbox link ai/det@v0 ai/prod")


def test_writers_of_one_clone_at_once_never_take_the_same_number(
    registry_path: Path, run: Run
) -> None:
    _ok(run, "--repo", registry_path, "model", "create", "det")
    cli = "import sys; from modelbox.cli import main; sys.exit(main())"
    argv = [sys.executable, "-c", cli, "--repo", str(registry_path), "version", "create",
            "det", "--json"]
    procs = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(4)]
    made = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        made.append(json.loads(out)["version"])
    assert sorted(made) == ["v0", "v1", "v2", "v3"]
