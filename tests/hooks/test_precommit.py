"""The hooks through the real pre-commit framework, installed from a commit of this project.

The session builds the hooks' environment once (pre-commit installs the project and its
dependencies from the package index into its own virtualenv); every test then runs
``pre-commit run`` in a registry made with modelbox and broken by hand with plain git.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple, Protocol

import pytest
from hook_helpers import (
    MODEL,
    MODEL_DIR,
    POINTER,
    TAGS,
    V1,
    V2,
    HookRepo,
    commit,
    edit,
    git,
    hook_repo,
    make_registry,
    pre_commit_home,
    write_config,
)

if TYPE_CHECKING:
    from conftest import Run

__all__ = ["hook_repo", "pre_commit_home"]  # the session fixtures, shared with other modules

SHA = "946a5d4457022ed77e30c3c9341d6665aa2d2061c83bbc861cf1057d4b2aafa2"


class Outcome(NamedTuple):
    code: int
    output: str


class PreCommit(Protocol):
    def __call__(self, repo: Path, *args: str, config: Path | None = None) -> Outcome: ...


@pytest.fixture
def pre_commit(pre_commit_home: Path, hook_repo: HookRepo, tmp_path: Path) -> PreCommit:
    """``pre-commit run ARGS`` in ``repo`` with this project's three hooks."""
    default = write_config(tmp_path / "pre-commit-config.yaml", hook_repo)

    def _run(repo: Path, *args: str, config: Path | None = None) -> Outcome:
        proc = subprocess.run(
            [sys.executable, "-m", "pre_commit", "run", "-c", str(config or default),
             "--color", "never", *args],
            cwd=repo, capture_output=True, text=True, check=False, timeout=300,
            env={**os.environ, "PRE_COMMIT_HOME": str(pre_commit_home)},
        )
        return Outcome(proc.returncode, proc.stdout + proc.stderr)

    return _run


@pytest.fixture
def reg(tmp_path: Path, run: Run) -> Path:
    return make_registry(tmp_path / "registry", run)


def hook_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith(("models/", ".modelbox/",
                                                                      "warning: "))]


def test_a_valid_registry_passes_every_hook(reg: Path, pre_commit: PreCommit) -> None:
    outcome = pre_commit(reg, "--all-files")
    assert outcome.code == 0, outcome.output
    for name in ("modelbox validate", "modelbox format", "modelbox no raw artifacts"):
        assert any(line.startswith(name) and line.endswith("Passed")
                   for line in outcome.output.splitlines()), outcome.output


def test_every_broken_rule_is_refused_naming_file_and_field(
    reg: Path, pre_commit: PreCommit
) -> None:
    edit(reg, f"{V1}/_version.json", {"framework": "caffe"})  # a broken manifest
    edit(reg, POINTER, {"sha256": "ABC"})  # a pointer with a bad checksum field
    edit(reg, f"{V2}/_artifacts/evil.json", {  # a pointer whose path escapes the registry
        "kind": "artifact", "path": "../../../evil", "size": 1, "sha256": SHA,
        "created_at": "2026-11-23T14:00:00Z",
    })
    edit(reg, TAGS, text='{\n  "kind": "tags",\n  "tags": {\n    "production": "v1",\n'
                         '    "production": "v2",\n    "canary": "v9"\n  }\n}\n')
    edit(reg, f"{MODEL_DIR}/_versions/v3/_metrics.json", {"kind": "metrics", "series": {}})
    edit(reg, "models/ai/nlp/bert2/_model.json",  # claims the identity of ai/nlp/bert
         json.loads((reg / "models/ai/nlp/bert/_model.json").read_text()))
    with (reg / V1 / "model.pt").open("wb") as weights:  # 50 MB of weights, no pointer
        weights.truncate(50 * 1024 * 1024)
    commit(reg, "hand edits gone wrong")

    outcome = pre_commit(reg, "--all-files")
    assert outcome.code == 1
    lines = hook_lines(outcome.output)
    expected = [
        f"{V1}/_version.json: framework: \"caffe\" is not one of",
        f"{POINTER}: sha256: \"ABC\" is not a SHA-256 checksum",
        f"{V2}/_artifacts/evil.json: path: \"../../../evil\" is not a safe relative path",
        f"{TAGS}: tags.production: the key appears twice",
        f"{TAGS}: tags.canary: points to v9, which does not exist; `modelbox untag {MODEL} canary`",
        f"{MODEL_DIR}/_versions/v3: (folder): a version folder without _version.json",
        "models/ai/nlp/bert2/_model.json: namespace/name: names model ai/nlp/bert but sits at "
        "ai/nlp/bert2",
        "models/ai/nlp/bert2/_model.json: (document): models/ai/nlp/bert/_model.json claims "
        "the same identity",
        f"{V1}/model.pt: (file): unknown entry in a version folder",
        f"{V1}/model.pt: (file): a raw file (50.0 MB) where only modelbox documents belong; "
        f"keep it out of Git and commit a pointer: `git rm --cached {V1}/model.pt`, then "
        f"`modelbox artifact add {MODEL}@v1 model.pt`",
    ]
    for start in expected:
        assert any(line.startswith(start) for line in lines), (start, outcome.output)


def test_a_big_document_is_refused_unless_max_kb_allows_it(
    reg: Path, pre_commit: PreCommit, hook_repo: HookRepo, tmp_path: Path
) -> None:
    tensors = [{"step": i, "wallclock": 1.0 + i, "value": "0.5," * 100_000} for i in range(4)]
    edit(reg, f"{V2}/_metrics.json", {"series": {"activations": tensors}})
    commit(reg, "a long training run")
    size = (reg / V2 / "_metrics.json").stat().st_size
    assert 1024 * 1024 < size < 4096 * 1024

    outcome = pre_commit(reg, "--all-files")
    assert outcome.code == 1
    assert f"{V2}/_metrics.json: (file): {size / 1024 / 1024:.1f} MB is over the 1024 KB " \
           "limit; raise --max-kb" in outcome.output

    roomy = write_config(tmp_path / "roomy.yaml", hook_repo,
                         modelbox_no_raw_artifacts=["--max-kb=4096"])
    assert pre_commit(reg, "--all-files", config=roomy).code == 0


def test_format_rewrites_documents_canonically_and_then_passes(
    reg: Path, pre_commit: PreCommit
) -> None:
    version = reg / V1 / "_version.json"
    canonical = version.read_bytes()
    version.write_text(json.dumps(json.loads(canonical), indent=4), encoding="utf-8")
    commit(reg, "a hand-formatted manifest")

    outcome = pre_commit(reg, "--all-files")
    assert outcome.code == 1
    assert f"{V1}/_version.json: rewritten as canonical JSON" in outcome.output
    assert "- files were modified by this hook" in outcome.output
    assert version.read_bytes() == canonical
    commit(reg, "formatted")
    assert pre_commit(reg, "--all-files").code == 0


def test_a_commit_is_checked_on_its_own_files_and_what_they_affect(
    reg: Path, pre_commit: PreCommit
) -> None:
    edit(reg, "models/ai/nlp/bert/_versions/v1/_version.json", {"archived": "no"})
    commit(reg, "broken long ago, committed without hooks")
    assert pre_commit(reg, "--all-files").code == 1

    edit(reg, f"{V2}/_version.json", {"description": "better"})
    git(reg, "add", "-A")
    outcome = pre_commit(reg)  # the staged files only
    assert outcome.code == 0, outcome.output

    edit(reg, TAGS, {"tags": {"production": "v7", "staging": "v2"}})
    git(reg, "add", "-A")
    outcome = pre_commit(reg)
    assert outcome.code == 1
    assert [line for line in hook_lines(outcome.output) if not line.startswith("warning")] == [
        f"{TAGS}: tags.production: points to v7, which does not exist; "
        f"`modelbox untag {MODEL} production` or restore the version",
    ]


def test_a_commit_that_only_deletes_a_tagged_version_is_refused(
    reg: Path, pre_commit: PreCommit
) -> None:
    git(reg, "rm", "-rq", V1)
    outcome = pre_commit(reg)
    assert outcome.code == 1
    assert f"{TAGS}: tags.production: points to v1, which does not exist" in outcome.output


def test_drifted_tag_refs_are_a_warning_in_a_hook_and_an_error_in_check(
    reg: Path, pre_commit: PreCommit, run: Run
) -> None:
    ref = f"refs/modelbox/tags/{MODEL}/production"
    git(reg, "update-ref", "-d", ref)
    outcome = pre_commit(reg, "--all-files", "--verbose")
    assert outcome.code == 0, outcome.output
    assert f"warning: {ref}: tag ref is missing" in outcome.output
    result = run("--repo", reg, "check")
    assert result.code == 1
    assert f"{ref}: tag ref is missing; run `modelbox refs sync`" in result.err


def test_an_installed_hook_stops_git_commit(
    reg: Path, pre_commit_home: Path, hook_repo: HookRepo
) -> None:
    config = write_config(reg / ".pre-commit-config.yaml", hook_repo)
    env = {**os.environ, "PRE_COMMIT_HOME": str(pre_commit_home)}
    subprocess.run([sys.executable, "-m", "pre_commit", "install", "-c", str(config)],
                   cwd=reg, check=True, capture_output=True, env=env)
    edit(reg, TAGS, {"tags": {"production": "v1", "staging": "v3"}})
    git(reg, "add", "-A")
    refused = subprocess.run(["git", "commit", "-qm", "tag v3"], cwd=reg, env=env,
                             capture_output=True, text=True, check=False)
    assert refused.returncode == 1
    assert f"{TAGS}: tags.staging: points to v3, which does not exist" in refused.stderr
    edit(reg, TAGS, {"tags": {"production": "v1", "staging": "v1"}})
    git(reg, "add", "-A")
    accepted = subprocess.run(["git", "commit", "-qm", "tag v1"], cwd=reg, env=env,
                              capture_output=True, text=True, check=False)
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr


def test_weights_got_into_the_registry_root_never_reach_a_commit(
    reg: Path, pre_commit: PreCommit, run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 14: ``get`` defaults to ``-o .``; at the registry root ``git add -A`` staged the
    weights and every hook passed (the hook only looked under models/ and experiments/)."""
    monkeypatch.chdir(reg)
    assert run("get", f"{MODEL}:staging").code == 0
    assert (reg / "model.pt").is_file()
    git(reg, "add", "-A")
    assert git(reg, "diff", "--cached", "--name-only") == ""  # listed in .git/info/exclude
    git(reg, "add", "-f", "model.pt")  # forced past the exclusion: the hook still stops it
    outcome = pre_commit(reg)
    assert outcome.code == 1
    assert "model.pt: (file): a weights file (900 bytes) staged for Git; keep it out: " \
           "`git rm --cached model.pt`" in outcome.output, outcome.output
