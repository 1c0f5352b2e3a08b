"""Plain git beside modelbox: concurrent pushes, relative clone paths, tags moved by hand,
dangling tags, and what a plain ``git push`` sends (issue 13, "plain git beside modelbox").

Everything runs against real repositories with the real ``git`` program and real
``modelbox`` processes; a push race is a real race between two processes.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from collab.collab_servers import BareRemote, bare_remote, git_servers
from conftest import Run
from hostile import MODELBOX, Proc, assert_refused, fingerprint, modelbox

__all__ = ["bare_remote", "git_servers"]  # fixtures, from the collaboration tests

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


def done(run: Run, *argv: str | Path) -> None:
    """Run the CLI in-process (setup steps: no interpreter start-up) and insist on 0."""
    result = run(*argv)
    assert result.code == 0, result


def shared(tmp_path: Path, run: Run, remote: Path | None = None) -> tuple[Path, Path]:
    """A registry with ``ai/vision/yolo`` @v1 (tag ``prod``) and @v2, pushed to a bare
    remote (a new one unless given); returns (the registry, the remote)."""
    reg = tmp_path / "reg"
    done(run, "init", reg)
    for argv in (("model", "create", MODEL),
                 ("version", "create", MODEL, "v1", "--tag", "prod"),
                 ("version", "create", MODEL, "v2")):
        done(run, "--repo", reg, *argv)
    if remote is None:
        remote = tmp_path / "remote.git"
        git(tmp_path, "init", "-q", "--bare", "-b", "main", str(remote))
    git(reg, "remote", "add", "origin", str(remote))
    done(run, "--repo", reg, "push")
    return reg, remote


def remote_tags(remote: Path) -> dict[str, str]:
    """The tag map the remote's branch holds."""
    data = git(remote, "show", f"main:{TAGS_FILE}")
    tags: dict[str, str] = json.loads(data)["tags"]
    return tags


# -- two clones pushing different tags at the same moment ----------------------------------
@pytest.mark.parametrize("via", ["git, a path", "dulwich, git://"])
def test_a_push_that_loses_the_ref_transaction_race_merges_and_retries(
        tmp_path: Path, run: Run, bare_remote: BareRemote, via: str) -> None:
    """Deterministic: while B's push sits in the remote's pre-receive hook (after its
    listing, before its ref transaction), A pushes. B's transaction then fails ("atomic
    transaction failed"), which is the remote having moved: B merges and pushes again."""
    _, remote = shared(tmp_path, run, bare_remote.path)
    transport, _, kind = via.partition(", ")
    url = bare_remote.urls["git"] if kind == "git://" else str(remote)
    ok("clone", remote, tmp_path / "a")
    ok("clone", url, tmp_path / "b")
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
    pushed = modelbox("push", cwd=tmp_path / "b", env={"MODELBOX_GIT_TRANSPORT": transport})
    assert pushed.code == 0, pushed
    assert flag.exists()
    assert "had new commits" in pushed.out
    assert remote_tags(remote) == {"prod": "v1", "from-a": "v1", "from-b": "v2"}


@pytest.mark.stress
def test_two_clones_pushing_different_tags_at_once_both_land(tmp_path: Path, transport: str,
                                                             run: Run) -> None:
    """Ten rounds of two real ``modelbox push`` processes racing through one bare remote:
    every push ends 0 and the remote holds both tags."""
    _, remote = shared(tmp_path, run)
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


def test_a_push_waits_for_another_push_holding_the_remote_branch_lock(
        tmp_path: Path, transport: str, run: Run) -> None:
    """Another push holding ``refs/heads/main.lock`` on the remote (nothing landed yet) is
    waited for: three immediate retries all found the lock held on a loaded machine."""
    reg, remote = shared(tmp_path, run)
    done(run, "--repo", reg, "tag", f"{MODEL}@v2", "waited")
    lock = remote / "refs" / "heads" / "main.lock"
    lock.write_text(git(remote, "rev-parse", "main"), encoding="utf-8")
    release = threading.Timer(2.0, lock.unlink)
    release.start()
    try:
        pushed = modelbox("push", cwd=reg)
    finally:
        release.join()
    assert pushed.code == 0, pushed
    assert remote_tags(remote)["waited"] == "v2"


def test_a_push_gives_up_on_a_remote_lock_nobody_releases(tmp_path: Path, transport: str,
                                                         run: Run) -> None:
    """A stale lock left by a crashed push ends the wait with one line naming the ref."""
    reg, remote = shared(tmp_path, run)
    done(run, "--repo", reg, "tag", f"{MODEL}@v2", "stuck")
    before = git(remote, "rev-parse", "main")
    (remote / "refs" / "heads" / "main.lock").write_text(before, encoding="utf-8")
    pushed = modelbox("push", cwd=reg)
    assert pushed.code == 1, pushed
    assert "refs/heads/main" in pushed.err and "Traceback" not in pushed.err
    assert git(remote, "rev-parse", "main") == before


# -- a relative clone path -------------------------------------------------------------------
@pytest.mark.parametrize("given", ["remote.git", "sub/../remote.git"])
def test_a_clone_of_a_relative_path_stores_it_absolute(tmp_path: Path, given: str,
                                                       run: Run) -> None:
    """``modelbox clone remote.git victim`` stored ``remote.git``, so ``pull`` inside the
    clone (another working directory) failed; git stores the absolute path."""
    reg, remote = shared(tmp_path, run)
    (tmp_path / "sub").mkdir()
    ok("clone", given, "victim", cwd=tmp_path)
    victim = tmp_path / "victim"
    assert git(victim, "config", "remote.origin.url").strip() == str(remote)
    done(run, "--repo", reg, "tag", f"{MODEL}@v2", "staging")
    done(run, "--repo", reg, "push")
    pulled = ok("pull", cwd=victim)
    assert "fast-forward" in pulled.out or "Fast-forward" in pulled.out, pulled
    assert ok("resolve", f"{MODEL}:staging", cwd=victim).out.strip() == "v2"


# -- a tag map naming a missing version ------------------------------------------------------
@pytest.mark.parametrize("version", ["v9", "v1-gone"])
def test_resolving_a_tag_that_names_a_missing_version_is_one_line_and_exit_1(
        tmp_path: Path, version: str, run: Run) -> None:
    """`_tags.json` hand-edited (and committed) to a version that does not exist: check
    flags it, and resolve must not print the missing version with exit 0."""
    reg, _ = shared(tmp_path, run)
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


# -- what a plain `git push` sends: the installed pre-push hook runs `check`'s rules -----------
def hooked_clone(tmp_path: Path, run: Run) -> tuple[Path, Path]:
    """A clone with modelbox's git hooks installed; returns (clone, bare remote)."""
    _, remote = shared(tmp_path, run)
    clone = tmp_path / "clone"
    done(run, "clone", remote, clone)
    done(run, "--repo", clone, "install-hooks")
    return clone, remote


def plain_push(clone: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "push"], cwd=clone, capture_output=True, text=True,
                          check=False)


def write_json(path: Path, doc: object) -> None:
    path.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def edit_version(clone: Path) -> None:
    path = clone / f"models/{MODEL}/_versions/v2/_version.json"
    doc = json.loads(path.read_text(encoding="utf-8"))
    doc["framework"] = "caffe"  # not one of the frameworks the schema allows
    write_json(path, doc)


def dangle_tag(clone: Path) -> None:
    write_json(clone / TAGS_FILE, {"kind": "tags", "tags": {"prod": "v9"}})


def stray_file(clone: Path) -> None:
    (clone / f"models/{MODEL}/_versions/v2/weights.bin").write_bytes(b"\0" * 64)


def latest_tag(clone: Path) -> None:
    write_json(clone / TAGS_FILE, {"kind": "tags", "tags": {"prod": "v1", "latest": "v1"}})


def not_json(clone: Path) -> None:
    (clone / TAGS_FILE).write_text("<<<<<<< HEAD\n{}\n", encoding="utf-8")


@pytest.mark.parametrize("breakage, needle", [
    (edit_version, "caffe"),
    (dangle_tag, "v9"),
    (stray_file, "weights.bin"),
    (latest_tag, "latest"),
    (not_json, "not valid JSON"),
])
def test_plain_git_push_of_a_manifest_that_fails_check_is_refused(
        tmp_path: Path, breakage: object, needle: str, run: Run) -> None:
    clone, remote = hooked_clone(tmp_path, run)
    assert callable(breakage)
    breakage(clone)
    git(clone, "add", "-A")
    git(clone, "commit", "-qm", "hand edit")
    before = fingerprint(remote)
    pushed = plain_push(clone)
    assert pushed.returncode != 0, pushed
    assert needle in pushed.stderr and "the push was stopped" in pushed.stderr, pushed.stderr
    assert "Traceback" not in pushed.stderr
    assert fingerprint(remote) == before


@pytest.mark.parametrize("breakage, needle", [
    (edit_version, "caffe"),
    (dangle_tag, "v9"),
    (stray_file, "weights.bin"),
])
def test_modelbox_push_of_a_hand_made_commit_that_fails_check_is_refused(
        tmp_path: Path, breakage: object, needle: str, run: Run) -> None:
    """`modelbox push` skips git's hooks (it does their work itself): it must run the
    same rules on hand-made commits, before any object or ref is sent."""
    reg, remote = shared(tmp_path, run)
    assert callable(breakage)
    breakage(reg)
    git(reg, "add", "-A")
    git(reg, "commit", "-qm", "hand edit")
    before = fingerprint(remote)
    pushed = modelbox("push", cwd=reg)
    assert_refused(pushed.code, pushed.err, needle, "nothing was pushed")
    assert fingerprint(remote) == before


def move_prod_to_staging(clone: Path) -> str:
    """refs/modelbox/tags/.../prod moved by hand to the tag object of staging (v2)."""
    staging = git(clone, "rev-parse", f"refs/modelbox/tags/{MODEL}/staging").strip()
    git(clone, "update-ref", f"refs/modelbox/tags/{MODEL}/prod", staging)
    return "ai/vision/yolo@v2"


def invent_a_tag(clone: Path) -> str:
    """A tag ref that no manifest has."""
    staging = git(clone, "rev-parse", f"refs/modelbox/tags/{MODEL}/staging").strip()
    git(clone, "update-ref", f"refs/modelbox/tags/{MODEL}/hotfix", staging)
    return "has no such tag"


def point_at_a_commit(clone: Path) -> str:
    """A tag ref moved to a plain commit, no modelbox tag object at all."""
    git(clone, "update-ref", f"refs/modelbox/tags/{MODEL}/prod", "HEAD")
    return "not a modelbox tag object"


@pytest.mark.parametrize("move", [move_prod_to_staging, invent_a_tag, point_at_a_commit])
def test_plain_git_push_of_a_hand_moved_tag_ref_is_refused(tmp_path: Path, move: object,
                                                           run: Run) -> None:
    """Remote plain-git readers resolve refs/modelbox/tags/*: a ref that contradicts the
    manifests would hand them the wrong production version."""
    clone, remote = hooked_clone(tmp_path, run)
    done(run, "--repo", clone, "tag", f"{MODEL}@v2", "staging")
    done(run, "--repo", clone, "push")
    assert callable(move)
    needle = move(clone)
    before = fingerprint(remote)
    pushed = plain_push(clone)
    assert pushed.returncode != 0, pushed
    assert needle in pushed.stderr and f"refs/modelbox/tags/{MODEL}/" in pushed.stderr
    assert "modelbox refs sync" in pushed.stderr and "Traceback" not in pushed.stderr
    assert fingerprint(remote) == before
    # The advice works: after `refs sync` the same plain push goes through.
    ok("refs", "sync", cwd=clone)
    assert plain_push(clone).returncode == 0
    assert git(remote, "for-each-ref", "--format=%(contents:subject)",
               f"refs/modelbox/tags/{MODEL}/prod").strip() == f"{MODEL}@v1"


def test_plain_git_push_of_good_modelbox_work_passes_the_hook(tmp_path: Path,
                                                             run: Run) -> None:
    clone, remote = hooked_clone(tmp_path, run)
    done(run, "--repo", clone, "version", "create", MODEL, "v3", "--tag", "canary")
    done(run, "--repo", clone, "tag", f"{MODEL}@v3", "prod")
    pushed = plain_push(clone)
    assert pushed.returncode == 0, pushed.stderr
    assert "modelbox pre-push:" not in pushed.stderr
    assert git(remote, "rev-parse", "main") == git(clone, "rev-parse", "main")
    assert git(remote, "for-each-ref", "--format=%(contents:subject)",
               f"refs/modelbox/tags/{MODEL}/prod").strip() == f"{MODEL}@v3"


# -- tags moved by a plain git commit --------------------------------------------------------
MALLORY = {"GIT_AUTHOR_NAME": "Mallory", "GIT_AUTHOR_EMAIL": "mallory@example.com",
           "GIT_AUTHOR_DATE": "2030-01-01T00:00:00Z",
           "GIT_COMMITTER_DATE": "2030-01-01T00:00:00Z"}


def set_tags(repo: Path, tags: dict[str, str]) -> None:
    write_json(repo / TAGS_FILE, {"kind": "tags", "tags": tags})


@pytest.mark.parametrize("tags, target, change", [
    ({"prod": "v2"}, "prod", "v1 -> v2"),                 # moved
    ({"prod": "v1", "canary": "v2"}, "canary", "- -> v2"),  # assigned
    ({}, "prod", "v1 -> -"),                              # removed
])
def test_a_tag_moved_by_a_plain_git_commit_is_audited_as_outside_modelbox(
        tmp_path: Path, run: Run, tags: dict[str, str], target: str, change: str) -> None:
    """A valid `_tags.json` edit committed with plain git moved production silently:
    `log M:TAG` and `resolve --at` did not see it and `check` said ok."""
    reg, _ = shared(tmp_path, run)
    set_tags(reg, tags)
    git(reg, "commit", "-qam", "quick fix", env=MALLORY)
    ref = f"{MODEL}:{target}"
    logged = run("--repo", reg, "log", ref).out.splitlines()
    assert "(outside modelbox)" in logged[0] and "Mallory" in logged[0], logged
    assert change in logged[0]
    events = json.loads(run("--repo", reg, "log", ref, "--json").out)
    assert events[0]["operation"].endswith("(outside modelbox)")
    assert events[0]["author"].startswith("Mallory")
    after = change.rpartition(" -> ")[2]
    at = modelbox("resolve", ref, "--at", "2030-06-01T00:00:00", cwd=reg)
    if after == "-":
        assert_refused(at.code, at.err, "pointed to no version")
    else:
        assert at.code == 0 and at.out.strip() == after, at
        assert "changed outside modelbox by Mallory" in at.err
    before = modelbox("resolve", ref, "--at", "2029-06-01T00:00:00", cwd=reg)
    assert before.out.strip() == ("v1" if target == "prod" else ""), before
    checked = modelbox("check", "--fix", cwd=reg)
    assert checked.code == 0, checked
    assert f"tags.{target}: {change} changed outside modelbox by Mallory" in checked.err
    assert checked.err.startswith("warning: ")
    strict = run("--repo", reg, "check", "--strict")
    assert strict.code == 1 and "changed outside modelbox" in strict.err


def test_merges_whose_tag_changes_come_from_audited_commits_get_no_warning(
        tmp_path: Path, run: Run) -> None:
    """Two clones tag with modelbox; one side merges with `modelbox pull` (a merge
    commit), the other with plain `git pull` (git's merge commit). Both merges only bring
    audited moves: no warning, no outside event."""
    reg, remote = shared(tmp_path, run)
    # Spacer tags keep the two sides' lines apart, so plain git merges the file too.
    for tag in ("a1", "m1", "m2", "z1"):
        done(run, "--repo", reg, "tag", f"{MODEL}@v1", tag)
    done(run, "--repo", reg, "push")
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    for clone in (a, b, c):
        done(run, "clone", remote, clone)
    done(run, "--repo", a, "tag", f"{MODEL}@v2", "b2")   # sorts between a1 and m1
    done(run, "--repo", a, "push")
    done(run, "--repo", b, "tag", f"{MODEL}@v2", "n1")   # sorts between m2 and z1
    git(b, "pull", "-q", "--no-rebase", "--no-edit")      # git's merge commit
    done(run, "--repo", c, "tag", f"{MODEL}@v2", "n1")
    done(run, "--repo", c, "pull")                       # modelbox's merge commit
    for clone in (b, c):
        parents = git(clone, "log", "-1", "--format=%P").split()
        assert len(parents) == 2
        checked = modelbox("check", "--fix", "--strict", cwd=clone)
        assert checked.code == 0 and "warning" not in checked.err, checked
        assert "outside modelbox" not in ok("log", cwd=clone).out
        assert json.loads((clone / TAGS_FILE).read_text())["tags"]["b2"] == "v2"


def test_a_merge_that_resolves_a_tag_its_own_way_is_a_move_outside_modelbox(
        tmp_path: Path, run: Run) -> None:
    """An evil merge: the merge commit gives a tag a value neither parent has."""
    reg, _ = shared(tmp_path, run)
    git(reg, "checkout", "-q", "-b", "side")
    done(run, "--repo", reg, "meta", "set", f"{MODEL}@v2", "note", '"side"')
    git(reg, "checkout", "-q", "main")
    git(reg, "merge", "-q", "--no-ff", "--no-commit", "side")
    set_tags(reg, {"prod": "v2"})
    git(reg, "add", "-A")
    git(reg, "commit", "-qm", "merge side", env=MALLORY)
    checked = modelbox("check", "--fix", cwd=reg)
    assert checked.code == 0
    assert "tags.prod: v1 -> v2 changed outside modelbox by Mallory" in checked.err, checked


def test_a_squash_merge_quoting_modelbox_trailers_is_audited(tmp_path: Path,
                                                            run: Run) -> None:
    """`git merge --squash` of a promotion branch: the squash commit quotes (indented)
    the trailers of the commits it squashed, so its move is an ordinary audited one."""
    reg, _ = shared(tmp_path, run)
    done(run, "--repo", reg, "--branch", "promote", "tag", f"{MODEL}@v2", "prod")
    git(reg, "merge", "-q", "--squash", "promote")
    git(reg, "commit", "-q", "--no-edit", env=MALLORY)
    assert "    Modelbox-Operation: tag.move" in git(reg, "log", "-1", "--format=%B")
    checked = modelbox("check", "--fix", "--strict", cwd=reg)
    assert checked.code == 0 and "warning" not in checked.err, checked
    events = json.loads(ok("log", f"{MODEL}:prod", "--json", cwd=reg).out)
    assert (events[0]["operation"], events[0]["after"]) == ("tag.move", "v2")
    assert events[0]["author"].startswith("Mallory")


def test_plain_git_push_deleting_a_tag_ref_the_manifests_still_have_is_refused(
        tmp_path: Path, run: Run) -> None:
    clone, remote = hooked_clone(tmp_path, run)
    before = fingerprint(remote)
    pushed = subprocess.run(["git", "push", "origin", f":refs/modelbox/tags/{MODEL}/prod"],
                            cwd=clone, capture_output=True, text=True, check=False)
    assert pushed.returncode != 0
    assert "would be deleted, but main still has ai/vision/yolo@v1" in pushed.stderr
    assert fingerprint(remote) == before


def test_check_since_a_revision_checks_only_that_range(tmp_path: Path, run: Run) -> None:
    """The range entry point the hooks use, on the command line (CI on a pull request)."""
    reg, _ = shared(tmp_path, run)
    edit_version(reg)
    git(reg, "commit", "-qam", "hand edit")
    done(run, "--repo", reg, "tag", f"{MODEL}@v1", "staging")
    ranged = modelbox("check", "--since", "HEAD~2", cwd=reg)
    assert ranged.code == 1 and "caffe" in ranged.err, ranged
    assert json.loads(modelbox("check", "--since", "HEAD~2", "--json", cwd=reg).out)[0][
        "path"].endswith("v2/_version.json")
    after = modelbox("check", "--since", "HEAD~1", cwd=reg)
    assert after.code == 0 and after.out.startswith("ok"), after
    bad = modelbox("check", "--since", "no-such-branch", cwd=reg)
    assert_refused(bad.code, bad.err, "no-such-branch")


def test_plain_git_push_of_a_tag_moved_by_hand_without_refs_sync_is_refused(
        tmp_path: Path, run: Run) -> None:
    """A plain `git commit` moved prod and no `refs sync` ran (git has no post-commit hook
    of ours): the push would publish the branch with the old prod ref beside it."""
    clone, remote = hooked_clone(tmp_path, run)
    set_tags(clone, {"prod": "v2"})
    git(clone, "commit", "-qam", "move prod by hand")
    before = fingerprint(remote)
    pushed = plain_push(clone)
    assert pushed.returncode != 0
    assert f"refs/modelbox/tags/{MODEL}/prod: tag ref is out of date" in pushed.stderr
    assert "changed outside modelbox" in pushed.stderr  # the warning comes too
    assert fingerprint(remote) == before
    done(run, "--repo", clone, "refs", "sync")
    assert plain_push(clone).returncode == 0
    assert git(remote, "for-each-ref", "--format=%(contents:subject)",
               f"refs/modelbox/tags/{MODEL}/prod").strip() == f"{MODEL}@v2"


def test_the_pre_push_hook_prints_a_hostile_author_escaped(tmp_path: Path, run: Run) -> None:
    """The outside-move warning names the commit's author, who may be anyone: an OSC
    title sequence in the name reaches the terminal escaped."""
    clone, _ = hooked_clone(tmp_path, run)
    set_tags(clone, {"prod": "v2"})
    git(clone, "commit", "-qam", "move prod by hand",
        env={"GIT_AUTHOR_NAME": "Mal\x1b]0;pwned\x07lory"})
    done(run, "--repo", clone, "refs", "sync")
    pushed = plain_push(clone)
    assert pushed.returncode == 0, pushed.stderr
    assert "changed outside modelbox by Mal\\x1b]0;pwned\\x07lory" in pushed.stderr
    assert "\x1b" not in pushed.stderr and "\x07" not in pushed.stderr
