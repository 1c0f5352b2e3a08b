"""examples/ci's site-publishing workflows, run here: their build commands, as the YAML
spells them, in a real clone of a registry, with no store credentials.

The registry's store is S3 at a loopback port where nothing listens and no AWS credential
exists, as in CI: the build must still succeed (what only the store knows says so on the
page). A second build after a tag move is incremental: pages it did not need are left as
they were (same bytes, same mtime)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]  # PyYAML ships no type stubs
from browser.harness import free_port
from browser.registries import demo
from conftest import Git

from modelbox import ModelBoxClient

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "ci"
GITHUB = EXAMPLES / "publish-site.yml"
GITLAB = EXAMPLES / "publish-site.gitlab-ci.yml"
BIN = Path(sys.executable).parent


def _site_build_exists() -> bool:
    proc = subprocess.run([str(BIN / "modelbox"), "site", "build", "--help"],
                          capture_output=True, check=False)
    return proc.returncode == 0


needs_site_build = pytest.mark.skipif(
    not _site_build_exists(), reason="`modelbox site build` is not in this build yet "
    "(branch s6/website brings it)")


def _load(path: Path) -> dict[Any, Any]:
    loaded: dict[Any, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return loaded


def _github_commands() -> list[str]:
    """The build job's ``run`` steps, but the install (this checkout's modelbox is on PATH)."""
    steps = _load(GITHUB)["jobs"]["build"]["steps"]
    return [s["run"] for s in steps if "run" in s and not s["run"].startswith("pip install")]


def _gitlab_commands() -> list[str]:
    return [c for c in _load(GITLAB)["pages"]["script"] if not c.startswith("pip install")]


def _ci_env(tmp_path: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a CI job: modelbox on PATH, no credential of any kind, the S3
    endpoint a loopback port nothing listens on."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MODELBOX_"))}
    env.update(PATH=f"{BIN}{os.pathsep}{env['PATH']}",
               AWS_ENDPOINT_URL=f"http://127.0.0.1:{free_port()}",
               AWS_CONFIG_FILE=str(tmp_path / "none"),
               AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"),
               AWS_EC2_METADATA_DISABLED="true",
               MODELBOX_CACHE_DIR=str(tmp_path / "ci-cache"),
               MODELBOX_STORE_CONNECT_TIMEOUT="1", MODELBOX_STORE_ATTEMPTS="1",
               **(extra or {}))
    return env


def _run_steps(commands: list[str], cwd: Path, env: dict[str, str]) -> None:
    for command in commands:
        proc = subprocess.run(["bash", "-eo", "pipefail", "-c", command], cwd=cwd, env=env,
                              capture_output=True, text=True, check=False, timeout=300)
        assert proc.returncode == 0, f"{command!r} exited {proc.returncode}: {proc.stderr}"


def _published(tmp_path: Path, git: Git) -> tuple[Path, Path]:
    """A registry whose store is S3, pushed to a bare remote, and a CI checkout of it."""
    registry = demo(tmp_path / "registry")
    settings = registry / ".modelbox" / "registry.json"
    data = json.loads(settings.read_text(encoding="utf-8"))
    data["store"] = "s3://modelbox-site-ci/objects"
    settings.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    git("commit", "-qam", "store: s3", cwd=registry)
    remote = tmp_path / "remote.git"
    git("clone", "-q", "--bare", registry, remote)
    checkout = tmp_path / "checkout"
    git("clone", "-q", remote, checkout)  # actions/checkout, fetch-depth 0
    return remote, checkout


def _files(folder: Path) -> dict[str, tuple[int, bytes]]:
    return {str(p.relative_to(folder)): (p.stat().st_mtime_ns, p.read_bytes())
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_the_workflows_hold_no_credentials() -> None:
    for path in (GITHUB, GITLAB):
        text = path.read_text(encoding="utf-8")
        for credential in ("${{ secrets", "AWS_", "CI_JOB_TOKEN", "GITHUB_TOKEN"):
            assert credential not in text, (path.name, credential)
    github = _load(GITHUB)
    assert github[True]["push"]["branches"] == ["main"]  # PyYAML reads `on:` as True
    steps = github["jobs"]["build"]["steps"]
    uploaded = next(s for s in steps if s.get("uses", "").startswith(
        "actions/upload-pages-artifact@"))["with"]["path"]
    assert any(f"modelbox site build {uploaded}" in c for c in _github_commands())
    assert github["jobs"]["deploy"]["steps"][0]["uses"].startswith("actions/deploy-pages@")
    assert any("modelbox site build public" in c for c in _gitlab_commands())


@needs_site_build
def test_the_github_workflow_builds_the_site_then_only_what_a_tag_move_changed(
        tmp_path: Path, git: Git) -> None:
    remote, checkout = _published(tmp_path, git)
    env = _ci_env(tmp_path)
    _run_steps(_github_commands(), checkout, env)
    site = checkout / "_site"
    assert (site / "index.html").is_file()
    before = _files(site)

    with ModelBoxClient(tmp_path / "registry") as client:  # a promotion lands upstream
        client.model("vision/yolo").version("v1").tag("champion")
    git("push", "-q", remote, "main", cwd=tmp_path / "registry")
    git("pull", "-q", "--ff-only", cwd=checkout)
    _run_steps(_github_commands(), checkout, env)
    after = _files(site)
    kept = [p for p in before if p in after and after[p] == before[p]]
    rewritten = [p for p in after if p not in before or after[p][1] != before[p][1]]
    assert rewritten, "the tag move changed no page"
    assert kept, "an incremental build rewrote every page"
    assert any(b"champion" in after[p][1] for p in rewritten)


@needs_site_build
def test_the_gitlab_job_builds_the_site_from_a_detached_checkout(tmp_path: Path,
                                                                 git: Git) -> None:
    _, checkout = _published(tmp_path, git)
    sha = git("rev-parse", "HEAD", cwd=checkout).strip()
    git("checkout", "-q", "--detach", sha, cwd=checkout)  # what a GitLab runner leaves
    git("branch", "-q", "-D", "main", cwd=checkout)
    env = _ci_env(tmp_path, {"CI_COMMIT_BRANCH": "main", "CI_COMMIT_SHA": sha,
                             "CI_DEFAULT_BRANCH": "main"})
    _run_steps(_gitlab_commands(), checkout, env)
    assert (checkout / "public" / "index.html").is_file()
