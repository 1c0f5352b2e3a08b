"""Issue 16, item 4: examples/ci/ deploys when a promotion tag is pushed.

The GitHub Actions job's own ``run:`` steps (read from the YAML, the install step left
out: modelbox is this checkout's) and the GitLab job's script run here, in a plain
``git clone`` of a real bare remote checked out at the pushed tag as a runner would,
after ``modelbox tag ... production`` + ``modelbox push``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml  # type: ignore[import-untyped]  # PyYAML ships no type stubs
from collab.collab_helpers import ok

if TYPE_CHECKING:
    from conftest import Git, Run

M = "team/m"
CI = Path(__file__).resolve().parents[2] / "examples" / "ci"


def github_glob(pattern: str) -> re.Pattern[str]:
    """GitHub's filter patterns: ``**`` any characters, ``*`` any but ``/``."""
    out = "".join(".*" if part == "**" else "[^/]*" if part == "*" else re.escape(part)
                  for part in re.split(r"(\*\*|\*)", pattern))
    return re.compile(f"^{out}$")


def runner(tmp_path: Path, git: Git, remote: Path, tag: str) -> Path:
    """The runner's workspace: a clone checked out at the tag (detached), the example
    scripts copied in as the workflow's header says."""
    work = tmp_path / f"ws-{len(list(tmp_path.glob('ws-*')))}"
    git("clone", "-q", remote, work)
    git("-C", work, "checkout", "-q", "--detach", tag)
    shutil.copytree(CI, work / "examples" / "ci")
    return work


def env(tmp_path: Path, **extra: str) -> dict[str, str]:
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    return {**os.environ, "PATH": path, **extra}


def run_github_job(work: Path, tag: str, output: Path, base: dict[str, str]) -> str:
    job = yaml.safe_load((CI / "promotion.yml").read_text())["jobs"]["deploy"]
    expressions = {"github.ref_name": tag, "github.event.repository.default_branch": "main"}
    log = []
    for step in job["steps"]:
        if "run" not in step or step.get("name", "").startswith("Install"):
            continue
        step_env = {k: re.sub(r"\$\{\{\s*([\w.]+)\s*\}\}",
                              lambda m: expressions[m[1]], str(v))
                    for k, v in step.get("env", {}).items()}
        proc = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c",
                               step["run"]], cwd=work, capture_output=True, text=True,
                              env={**base, **step_env, "GITHUB_REF_NAME": tag,
                                   "GITHUB_OUTPUT": str(output)}, check=False)
        assert proc.returncode == 0, (step, proc.stdout, proc.stderr)
        log.append(proc.stdout)
    return "".join(log)


def outputs(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines())


@pytest.fixture
def remote(tmp_path: Path, run: Run, git: Git) -> Path:
    bare = tmp_path / "remote.git"
    git("init", "-q", "--bare", "-b", "main", bare)
    reg = tmp_path / "reg"
    ok(run, "init", "--git-tags", reg)
    ok(run, "--repo", reg, "config", "protected-tags", "--none")
    ok(run, "--repo", reg, "model", "create", M)
    for version in ("v1.0.0", "v2.0.0"):
        ok(run, "--repo", reg, "version", "create", M, version)
    ok(run, "--repo", reg, "tag", f"{M}@v1.0.0", "production")
    ok(run, "--repo", reg, "push", bare)
    return bare


def test_the_trigger_matches_promotions_only() -> None:
    on = yaml.safe_load((CI / "promotion.yml").read_text())
    patterns = on[True]["push"]["tags"]  # YAML 1.1 reads the key `on` as True
    gitlab = yaml.safe_load((CI / "promotion.gitlab-ci.yml").read_text())
    rule = gitlab["deploy-on-promotion"]["rules"][0]["if"]
    regex = re.compile(rule.split("=~ /", 1)[1].rsplit("/", 1)[0].replace("\\/", "/"))
    for tag, fires in (("team/m#production#1", True), ("team/m#production!#2", True),
                       ("a/b/c#staging#10", True), ("team/m@v1.0.0", False),
                       ("team/m@v1.0.0!#3", False), ("v1.2.0", False)):
        assert any(github_glob(p).match(tag) for p in patterns) is fires, tag
        assert bool(regex.match(tag)) is fires, tag


def test_github_job_deploys_what_the_promotion_moved(tmp_path: Path, run: Run, git: Git,
                                                      remote: Path) -> None:
    tag = "team/m#production#1"
    assert tag in git("-C", remote, "tag").split()
    out = tmp_path / "github-output"
    log = run_github_job(runner(tmp_path, git, remote, tag), tag, out, env(tmp_path))
    assert "would deploy team/m@v1.0.0 to production" in log
    assert outputs(out) == {"event": "assign", "model": M, "stage": "production",
                            "version": "v1.0.0"}


def test_a_move_and_a_removal(tmp_path: Path, run: Run, git: Git, remote: Path) -> None:
    reg = tmp_path / "reg"
    ok(run, "--repo", reg, "tag", f"{M}@v2.0.0", "production")
    ok(run, "--repo", reg, "push", remote)
    pushed = git("-C", remote, "tag").split()
    assert {"team/m#production!#2", "team/m#production#3"} <= set(pushed)
    # Both tags fire; each deploys what production names now.
    for tag in ("team/m#production!#2", "team/m#production#3"):
        out = tmp_path / f"out-{tag[-1]}"
        log = run_github_job(runner(tmp_path, git, remote, tag), tag, out, env(tmp_path))
        assert "would deploy team/m@v2.0.0 to production" in log
    ok(run, "--repo", reg, "untag", M, "production")
    ok(run, "--repo", reg, "push", remote)
    tag = "team/m#production!#4"
    out = tmp_path / "out-removed"
    log = run_github_job(runner(tmp_path, git, remote, tag), tag, out, env(tmp_path))
    assert "names no version now" in log
    assert outputs(out)["event"] == "unassign" and outputs(out)["version"] == ""


def test_gitlab_job_runs_the_same(tmp_path: Path, git: Git, remote: Path) -> None:
    tag = "team/m#production#1"
    work = runner(tmp_path, git, remote, tag)
    job: Any = yaml.safe_load((CI / "promotion.gitlab-ci.yml").read_text())
    script = "\n".join(line for line in job["deploy-on-promotion"]["script"]
                       if not line.startswith("pip install"))
    proc = subprocess.run(["bash", "-eo", "pipefail", "-c", script], cwd=work, text=True,
                          capture_output=True, check=False,
                          env=env(tmp_path, CI_COMMIT_TAG=tag, CI_DEFAULT_BRANCH="main"))
    assert proc.returncode == 0, proc.stderr
    assert "would deploy team/m@v1.0.0 to production" in proc.stdout


def test_other_tags_do_nothing(tmp_path: Path, git: Git, remote: Path) -> None:
    proc = subprocess.run([str(CI / "promotion-event.sh"), "team/m@v1.0.0"],
                          capture_output=True, text=True, check=False, env=env(tmp_path))
    assert proc.returncode == 0 and "nothing to do" in proc.stdout
