"""clone, push, pull and status over every transport, and interplay with plain git.

Every test runs twice: with the git program doing the transfers, and with dulwich.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from collab.collab_helpers import assert_clean, git_out, make_registry, ok, tag_refs
from collab.collab_servers import TRANSPORTS, BareRemote

if TYPE_CHECKING:
    from conftest import Run

YOLO = "ai/vision/yolo"
pytestmark = pytest.mark.usefixtures("git_transport")


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_push_clone_change_push_pull_round_trip(
    transport: str, bare_remote: BareRemote, tmp_path: Path, run: Run
) -> None:
    url = bare_remote.urls[transport]
    first = make_registry(run, tmp_path / "first", url)
    assert "2 ref(s)" in ok(run, "--repo", first, "push").out
    assert git_out(bare_remote.path, "rev-parse", "main") == git_out(first, "rev-parse", "main")
    assert tag_refs(bare_remote.path) == tag_refs(first) != ""

    second = tmp_path / "second"
    ok(run, "clone", url, second)
    assert_clean(second)
    assert tag_refs(second) == tag_refs(first)
    assert ok(run, "--repo", second, "resolve", f"{YOLO}:prod").out == "v1\n"
    assert ok(run, "--repo", second, "check").code == 0
    fetch = git_out(second, "config", "--get-all", "remote.origin.fetch")
    assert "+refs/modelbox/tags/*:refs/modelbox/tags/*" in fetch

    ok(run, "--repo", second, "tag", f"{YOLO}@v2", "prod")
    state = json.loads(ok(run, "--repo", second, "status", "--json").out)
    assert (state["ahead"], state["behind"]) == (1, 0)
    assert state["remote_ref_drift"] == {f"refs/modelbox/tags/{YOLO}/prod": "stale"}
    ok(run, "--repo", second, "push")
    assert tag_refs(bare_remote.path) == tag_refs(second)

    result = ok(run, "--repo", first, "pull")
    assert "fast-forward" in result.out
    assert_clean(first)
    assert ok(run, "--repo", first, "resolve", f"{YOLO}:prod").out == "v2\n"
    assert tag_refs(first) == tag_refs(second)
    assert ok(run, "--repo", first, "check").code == 0
    state = json.loads(ok(run, "--repo", first, "status", "--json").out)
    assert (state["ahead"], state["behind"], state["ref_drift"], state["remote_ref_drift"]) == (
        0, 0, {}, {})
    assert "Everything up to date" in ok(run, "--repo", first, "push").out


def test_a_plain_git_clone_pulls_and_pushes_with_modelbox(
    bare_remote: BareRemote, tmp_path: Path, run: Run
) -> None:
    first = make_registry(run, tmp_path / "first", bare_remote.urls["git"])
    ok(run, "--repo", first, "push")
    clone = tmp_path / "plain"
    git_out(tmp_path, "clone", "-q", bare_remote.urls["git"], str(clone))
    assert tag_refs(clone) == ""

    ok(run, "--repo", clone, "pull")  # adds modelbox's refspecs and rebuilds the tag refs
    assert tag_refs(clone) == tag_refs(first)
    ok(run, "--repo", clone, "version", "create", YOLO, "v3", "--tag", "canary")
    ok(run, "--repo", clone, "push")
    assert git_out(bare_remote.path, "rev-parse", "main") == git_out(clone, "rev-parse", "main")
    ok(run, "--repo", first, "pull")
    assert ok(run, "--repo", first, "resolve", f"{YOLO}:canary").out == "v3\n"
    assert "refs/modelbox/tags" in git_out(clone, "config", "--get-all", "remote.origin.push")


def test_a_modelbox_clone_fetches_and_pushes_tag_refs_with_plain_git(
    bare_remote: BareRemote, tmp_path: Path, run: Run
) -> None:
    url = bare_remote.urls["http"]
    first = make_registry(run, tmp_path / "first", url)
    ok(run, "--repo", first, "push")
    second = tmp_path / "second"
    ok(run, "clone", url, second)

    ok(run, "--repo", first, "tag", f"{YOLO}@v2", "staging")
    ok(run, "--repo", first, "push")
    git_out(second, "fetch", "-q")  # plain git moves refs/modelbox/* too
    assert tag_refs(second) == tag_refs(first)
    git_out(second, "merge", "-q", "--ff-only", "origin/main")
    assert ok(run, "--repo", second, "check").code == 0

    ok(run, "--repo", second, "tag", f"{YOLO}@v2", "prod")
    git_out(second, "push", "-q")  # and plain git push sends them
    assert tag_refs(bare_remote.path) == tag_refs(second)
    assert git_out(bare_remote.path, "rev-parse", "main") == git_out(second, "rev-parse", "main")


def test_pull_with_nothing_new_is_fast_and_changes_nothing(
    bare_remote: BareRemote, tmp_path: Path, run: Run
) -> None:
    first = make_registry(run, tmp_path / "first", bare_remote.urls["file"])
    ok(run, "--repo", first, "push")
    before = git_out(first, "for-each-ref")
    start = time.perf_counter()
    result = ok(run, "--repo", first, "pull")
    assert time.perf_counter() - start < 0.5
    assert "Already up to date" in result.out
    assert git_out(first, "for-each-ref") == before


def test_a_clone_checks_out_the_registry_branch_when_the_remote_head_names_code(
    bare_remote: BareRemote, tmp_path: Path, run: Run
) -> None:
    code = tmp_path / "code"
    code.mkdir()
    git_out(code, "init", "-q", "-b", "main")
    (code / "train.py").write_text("print('train')\n")
    git_out(code, "add", "train.py")
    git_out(code, "commit", "-q", "-m", "code")
    git_out(code, "tag", "v0.1")
    ok(run, "init", code, "--branch", "registry")
    ok(run, "--repo", code, "model", "create", YOLO)
    ok(run, "--repo", code, "version", "create", YOLO, "v1", "--tag", "prod")
    git_out(code, "push", "-q", bare_remote.urls["file"], "main", "registry", "v0.1",
            "refs/modelbox/*:refs/modelbox/*")
    assert git_out(bare_remote.path, "symbolic-ref", "HEAD") == "refs/heads/main\n"

    clone = tmp_path / "clone"
    ok(run, "clone", bare_remote.urls["git"], clone)
    assert git_out(clone, "symbolic-ref", "HEAD") == "refs/heads/registry\n"
    # One branch of its own, the registry's; the remote's others are remote-tracking refs.
    assert git_out(clone, "for-each-ref", "--format=%(refname)", "refs/heads") == (
        "refs/heads/registry\n")
    assert git_out(clone, "rev-parse", "origin/main") == git_out(code, "rev-parse", "main")
    assert git_out(clone, "config", "branch.registry.merge") == "refs/heads/registry\n"
    assert "branch.main." not in git_out(clone, "config", "--list")
    assert git_out(clone, "rev-parse", "v0.1") == git_out(code, "rev-parse", "v0.1")  # as git
    assert sorted(p.name for p in clone.iterdir()) == [".git", ".modelbox", "models"]
    assert_clean(clone)
    assert tag_refs(clone) == tag_refs(code) != ""
    assert ok(run, "--repo", clone, "resolve", f"{YOLO}:prod").out == "v1\n"
    assert ok(run, "--repo", clone, "check").code == 0


def test_clone_refuses_a_repository_without_a_registry(
    bare_remote: BareRemote, tmp_path: Path, run: Run
) -> None:
    result = run("clone", bare_remote.urls["file"], tmp_path / "c")
    assert result.code == 1
    assert "holds no modelbox registry" in result.err
    assert not [p for p in tmp_path.iterdir() if p.name.startswith((".c", "c"))]  # no side clone
