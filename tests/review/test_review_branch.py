"""``--branch``: a write proposes a change on a branch instead of applying it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from review_helpers import MODEL, PROPOSAL, files, git_out, make_registry, ok, one_error_line, refs

if TYPE_CHECKING:
    from conftest import Run


def test_tag_with_branch_leaves_registry_branch_work_tree_and_tag_refs_alone(
    tmp_path: Path, run: Run
) -> None:
    reg = make_registry(run, tmp_path / "reg")
    before_refs, before_files = refs(reg), files(reg)

    result = ok(run, "--repo", reg, "tag", f"{MODEL}@v3", "production", "--branch", PROPOSAL)

    assert "from v1 to v3" in result.out
    after = refs(reg)
    proposal = after.pop(f"refs/heads/{PROPOSAL}")
    assert after == before_refs  # main and refs/modelbox/tags/* did not move
    assert files(reg) == before_files
    assert git_out(reg, "status", "--porcelain", "--untracked-files=all") == ""
    assert git_out(reg, "rev-parse", f"{proposal}^").strip() == before_refs["refs/heads/main"]
    assert "Modelbox-After: v3" in git_out(reg, "log", "-1", "--format=%B", PROPOSAL)
    assert ok(run, "--repo", reg, "resolve", f"{MODEL}:production").out == "v1\n"
    on_branch = ok(run, "--repo", reg, "--branch", PROPOSAL, "resolve", f"{MODEL}:production")
    assert on_branch.out == "v3\n"


def test_later_writes_to_the_branch_build_on_the_proposal(tmp_path: Path, run: Run) -> None:
    reg = make_registry(run, tmp_path / "reg")
    ok(run, "--repo", reg, "--branch", PROPOSAL, "tag", f"{MODEL}@v3", "production")
    ok(run, "--repo", reg, "--branch", PROPOSAL, "tag", f"{MODEL}@v1", "fallback")

    log = git_out(reg, "log", "--format=%s", f"main..{PROPOSAL}").splitlines()
    assert log == [f"tag {MODEL}:fallback -> v1", f"tag {MODEL}:production v1 -> v3"]
    tags = ok(run, "--repo", reg, "--branch", PROPOSAL, "model", "show", MODEL, "--json").out
    assert '"fallback": "v1"' in tags and '"production": "v3"' in tags


def test_a_checked_out_target_branch_gets_its_work_tree_updated(
    tmp_path: Path, run: Run
) -> None:
    reg = make_registry(run, tmp_path / "reg")
    git_out(reg, "checkout", "-q", "-b", PROPOSAL)
    main_before = refs(reg)["refs/heads/main"]

    ok(run, "--repo", reg, "--branch", PROPOSAL, "tag", f"{MODEL}@v3", "production")

    assert '"production": "v3"' in (reg / "models/ai/vision/yolo/_tags.json").read_text()
    assert git_out(reg, "status", "--porcelain", "--untracked-files=all") == ""
    assert refs(reg)["refs/heads/main"] == main_before


def test_an_invalid_branch_name_is_refused(tmp_path: Path, run: Run) -> None:
    reg = make_registry(run, tmp_path / "reg")
    before = refs(reg)
    result = run("--repo", reg, "--branch", "bad..name", "tag", f"{MODEL}@v3", "production")
    one_error_line(result, "bad..name")
    assert refs(reg) == before
