"""``modelbox diff``: the review summary of a proposal, as JSON and as Markdown."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from review_helpers import MODEL, PROPOSAL, git_out, make_registry, ok, one_error_line

if TYPE_CHECKING:
    from conftest import Run

EXPECTED_MARKDOWN = """\
### modelbox: `main` -> `promote/yolo-v3`

Comparing `BASE` with `HEAD`.

#### Tags

| Model | Tag | Before | After | Metrics |
| --- | --- | --- | --- | --- |
| `ai/vision/yolo` | `production` | `v1` | `v3` | acc 0.91 -> 0.93 (+0.02)<br>loss 0.3 -> 0.25 (-0.05) |
| `ai/vision/yolo` | `staging` | `v3` | — |  |

#### Models and versions

- model `ai/audio/whisper` created (owner bob)
- `ai/vision/yolo@v1` archived
- `ai/vision/yolo@v2` created

#### Artifacts

| Target | Artifact | Change | Size |
| --- | --- | --- | --- |
| `ai/vision/yolo@v3` | `model.pt` | added | 2.5 KB |
"""  # noqa: E501 - a Markdown table row is one line, however long


def _proposal(tmp_path: Path, run: Run) -> Path:
    """main: v1 production, v3 staging. The proposal moves production to v3, drops
    staging, adds a model, a version and an artifact, and archives v1."""
    reg = make_registry(run, tmp_path / "reg")
    ok(run, "--repo", reg, "tag", f"{MODEL}@v3", "staging")
    weights = tmp_path / "model.pt"
    weights.write_bytes(b"w" * 2500)
    b = ("--repo", reg, "--branch", PROPOSAL)
    ok(run, *b, "artifact", "add", f"{MODEL}@v3", weights)
    ok(run, *b, "tag", f"{MODEL}@v3", "production")
    ok(run, *b, "untag", MODEL, "staging")
    ok(run, *b, "version", "create", MODEL, "v2")
    ok(run, *b, "model", "create", "ai/audio/whisper", "--owner", "bob")
    ok(run, *b, "version", "archive", f"{MODEL}@v1")
    return reg


def _json(run: Run, *argv: str | Path) -> Any:
    return json.loads(ok(run, *argv, "--format", "json").out)


def test_diff_reports_tags_versions_metric_deltas_and_artifacts(
    tmp_path: Path, run: Run
) -> None:
    reg = _proposal(tmp_path, run)
    doc = _json(run, "--repo", reg, "diff", "main", PROPOSAL)

    assert doc["base"] == {"rev": "main", "commit": git_out(reg, "rev-parse", "main").strip()}
    assert doc["tags"] == [
        {"model": MODEL, "tag": "production", "change": "moved", "before": "v1", "after": "v3",
         "metrics": [{"key": "acc", "before": 0.91, "after": 0.93, "delta": 0.02},
                     {"key": "loss", "before": 0.3, "after": 0.25, "delta": -0.05}]},
        {"model": MODEL, "tag": "staging", "change": "removed", "before": "v3", "after": None,
         "metrics": []},
    ]
    assert [(v["version"], v["change"]) for v in doc["versions"]] == [
        ("v1", "archived"), ("v2", "created")]
    assert doc["models"] == [{"model": "ai/audio/whisper", "change": "created", "owner": "bob"}]
    [artifact] = doc["artifacts"]
    assert (artifact["target"], artifact["path"], artifact["change"], artifact["size"]) == (
        f"{MODEL}@v3", "model.pt", "added", 2500)
    assert doc["other_files"] == []


def test_diff_markdown_is_the_pull_request_summary(tmp_path: Path, run: Run) -> None:
    reg = _proposal(tmp_path, run)
    out = ok(run, "--repo", reg, "diff", "main", PROPOSAL, "--format", "markdown").out
    base, head = (git_out(reg, "rev-parse", r).strip()[:10] for r in ("main", PROPOSAL))
    assert out.replace(base, "BASE").replace(head, "HEAD") == EXPECTED_MARKDOWN


def test_diff_defaults_to_the_registry_branch_against_the_target_branch(
    tmp_path: Path, run: Run
) -> None:
    reg = _proposal(tmp_path, run)
    doc = _json(run, "--repo", reg, "--branch", PROPOSAL, "diff")
    assert (doc["base"]["rev"], doc["head"]["rev"]) == ("main", PROPOSAL)
    assert len(doc["tags"]) == 2
    # On the registry branch with no upstream: nothing to compare, nothing changed.
    same = ok(run, "--repo", reg, "diff").out
    assert "No registry changes." in same


def test_revisions_may_be_refs_shas_and_ancestors(tmp_path: Path, run: Run) -> None:
    reg = _proposal(tmp_path, run)
    sha = git_out(reg, "rev-parse", f"{PROPOSAL}~5").strip()  # the artifact commit
    doc = _json(run, "--repo", reg, "diff", "refs/heads/main", sha)
    assert [a["path"] for a in doc["artifacts"]] == ["model.pt"] and doc["tags"] == []
    doc = _json(run, "--repo", reg, "diff", f"{PROPOSAL}^", PROPOSAL)
    assert [(v["version"], v["change"]) for v in doc["versions"]] == [("v1", "archived")]
    one_error_line(run("--repo", reg, "diff", "main", "no-such-branch"), "no-such-branch")


def test_an_upstream_is_the_default_base_of_the_registry_branch(
    tmp_path: Path, run: Run
) -> None:
    reg = make_registry(run, tmp_path / "reg")
    git_out(reg, "update-ref", "refs/remotes/origin/main", "main")
    ok(run, "--repo", reg, "tag", f"{MODEL}@v3", "production")
    out = ok(run, "--repo", reg, "diff").out
    assert re.search(r"`production` \| `v1` \| `v3` \| acc 0.91 -> 0.93 \(\+0.02\)", out), out
    assert out.startswith("### modelbox: `refs/remotes/origin/main` -> `main`")
