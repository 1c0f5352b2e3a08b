"""Plain git beside modelbox: concurrent pushes, relative clone paths, tags moved by hand,
dangling tags, and what a plain ``git push`` sends (issue 13, "plain git beside modelbox").

Everything runs against real repositories with the real ``git`` program and real
``modelbox`` processes; a push race is a real race between two processes.
"""

from __future__ import annotations

import json
import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from conftest import Run
from hostile import MODELBOX, Proc, assert_refused, fingerprint, modelbox

MODEL = "ai/vision/yolo"
TAGS_FILE = f"models/{MODEL}/_tags.json"


def git(cwd: Path, *args: str, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False,
                          env={**os.environ, **(env or {})})
    assert proc.returncode == 0, f"git {' '.join(args)}: {proc.stderr}"
    return proc.stdout


def ok(*argv: str | Path, cwd: Path | None = None) -> Proc:
    result = modelbox(*argv, cwd=cwd)
    assert result.code == 0, result
    return result


@pytest.fixture(params=["git", "dulwich"])
def transport(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch,
              isolated_env: None) -> str:
    """Once with the git program doing the transfers, once with dulwich."""
    choice = str(request.param)
    monkeypatch.setenv("MODELBOX_GIT_TRANSPORT", choice)
    return choice


def shared(tmp_path: Path) -> tuple[Path, Path]:
    """A registry with ``ai/vision/yolo`` @v1 (tag ``prod``) and @v2, pushed to a bare
    remote; returns (the registry, the remote)."""
    reg, remote = tmp_path / "reg", tmp_path / "remote.git"
    ok("init", reg)
    for argv in (("model", "create", MODEL),
                 ("version", "create", MODEL, "v1", "--tag", "prod"),
                 ("version", "create", MODEL, "v2")):
        ok("--repo", reg, *argv)
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(remote))
    git(reg, "remote", "add", "origin", str(remote))
    ok("push", cwd=reg)
    return reg, remote


def remote_tags(remote: Path) -> dict[str, str]:
    """The tag map the remote's branch holds."""
    data = git(remote, "show", f"main:{TAGS_FILE}")
    tags: dict[str, str] = json.loads(data)["tags"]
    return tags


# -- two clones pushing different tags at the same moment ----------------------------------
def test_a_push_that_loses_the_ref_transaction_race_merges_and_retries(tmp_path: Path) -> None:
    """Deterministic: while B's push sits in the remote's pre-receive hook (after its
    listing, before its ref transaction), A pushes. B's transaction then fails ("atomic
    transaction failed"), which is the remote having moved: B merges and pushes again."""
    _, remote = shared(tmp_path)
    ok("clone", remote, tmp_path / "a")
    ok("clone", remote, tmp_path / "b")
    ok("tag", f"{MODEL}@v1", "from-a", cwd=tmp_path / "a")
    ok("tag", f"{MODEL}@v2", "from-b", cwd=tmp_path / "b")
    flag = tmp_path / "raced"
    hook = remote / "hooks" / "pre-receive"
    # The hook runs inside B's receive-pack: clear what points git at the remote.
    hook.write_text(
        "#!/bin/sh\ncat >/dev/null\n"
        f"[ -e '{flag}' ] && exit 0\n: > '{flag}'\n"
        "unset GIT_DIR GIT_QUARANTINE_PATH GIT_OBJECT_DIRECTORY "
        "GIT_ALTERNATE_OBJECT_DIRECTORIES\n"
        f"cd '{tmp_path / 'a'}' && '{MODELBOX}' push >&2\n",
        encoding="utf-8",
    )
    hook.chmod(0o755)
    env = {"MODELBOX_GIT_TRANSPORT": "git"}
    pushed = modelbox("push", cwd=tmp_path / "b", env=env)
    assert pushed.code == 0, pushed
    assert flag.exists()
    assert "had new commits" in pushed.out
    assert remote_tags(remote) == {"prod": "v1", "from-a": "v1", "from-b": "v2"}


@pytest.mark.stress
def test_two_clones_pushing_different_tags_at_once_both_land(tmp_path: Path, transport: str,
                                                             run: Run) -> None:
    """Ten rounds of two real ``modelbox push`` processes racing through one bare remote:
    every push ends 0 and the remote holds both tags."""
    _, remote = shared(tmp_path)
    a, b = tmp_path / "a", tmp_path / "b"
    ok("clone", remote, a)
    ok("clone", remote, b)
    with ThreadPoolExecutor(2) as pool:
        for i in range(10):
            assert run("--repo", a, "tag", f"{MODEL}@v1", f"a{i}").code == 0
            assert run("--repo", b, "tag", f"{MODEL}@v2", f"b{i}").code == 0
            results = list(pool.map(lambda where: modelbox("push", cwd=where), (a, b)))
            for result in results:
                assert result.code == 0, result
            tags = remote_tags(remote)
            assert (tags[f"a{i}"], tags[f"b{i}"]) == ("v1", "v2")
    refs = git(remote, "for-each-ref", "--format=%(refname)", "refs/modelbox/tags")
    assert f"refs/modelbox/tags/{MODEL}/a9" in refs.split()
    assert f"refs/modelbox/tags/{MODEL}/b9" in refs.split()


# -- a relative clone path -------------------------------------------------------------------
@pytest.mark.parametrize("given", ["remote.git", "./remote.git", "sub/../remote.git"])
def test_a_clone_of_a_relative_path_stores_it_absolute(tmp_path: Path, given: str) -> None:
    """``modelbox clone remote.git victim`` stored ``remote.git``, so ``pull`` inside the
    clone (another working directory) failed; git stores the absolute path."""
    reg, remote = shared(tmp_path)
    (tmp_path / "sub").mkdir()
    ok("clone", given, "victim", cwd=tmp_path)
    victim = tmp_path / "victim"
    assert git(victim, "config", "remote.origin.url").strip() == str(remote)
    ok("tag", f"{MODEL}@v2", "staging", cwd=reg)
    ok("push", cwd=reg)
    pulled = ok("pull", cwd=victim)
    assert "fast-forward" in pulled.out or "Fast-forward" in pulled.out, pulled
    assert ok("resolve", f"{MODEL}:staging", cwd=victim).out.strip() == "v2"


# -- a tag map naming a missing version ------------------------------------------------------
@pytest.mark.parametrize("version", ["v9", "v1-gone"])
def test_resolving_a_tag_that_names_a_missing_version_is_one_line_and_exit_1(
        tmp_path: Path, version: str) -> None:
    """`_tags.json` hand-edited (and committed) to a version that does not exist: check
    flags it, and resolve must not print the missing version with exit 0."""
    reg, _ = shared(tmp_path)
    path = reg / TAGS_FILE
    path.write_text(json.dumps({"kind": "tags", "tags": {"prod": version}}, indent=2,
                               sort_keys=True) + "\n", encoding="utf-8")
    git(reg, "commit", "-qam", "point prod somewhere")
    before = fingerprint(reg)
    for argv in (("resolve", f"{MODEL}:prod"), ("version", "show", f"{MODEL}:prod")):
        result = modelbox(*argv, cwd=reg)
        assert_refused(result.code, result.err, f"{MODEL}:prod", version, "does not exist")
        assert result.out == ""
    assert fingerprint(reg) == before
    checked = modelbox("check", cwd=reg)
    assert checked.code == 1 and f"points to {version}, which does not exist" in checked.err
