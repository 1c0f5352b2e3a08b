"""Issue 16, item 3: promotions as GTO-format Git tags (docs/gto.md).

The real ``gto`` 1.10 (its own venv, ``.venv-gto``, made by scripts/test.sh; or the one
``MODELBOX_GTO`` names) reads registries modelbox made and must agree with modelbox;
real clones push to and pull from a real bare remote; fetched tags are hostile input.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from collab.collab_helpers import ok
from hostile import MODELBOX

if TYPE_CHECKING:
    from conftest import Git, Run

M = "team/m"
ROOT = Path(__file__).resolve().parents[2]


def gto_program() -> str | None:
    named = os.environ.get("MODELBOX_GTO")
    for candidate in (named, str(ROOT / ".venv-gto" / "bin" / "gto")):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


@pytest.fixture
def gto() -> Any:
    program = gto_program()
    if program is None:
        pytest.skip("gto is not installed: scripts/test.sh makes .venv-gto with "
                    "`pip install gto==1.10.1` (or set MODELBOX_GTO to a gto program)")

    def _gto(repo: Path, *args: str) -> Any:
        proc = subprocess.run([program, *args, "--repo", str(repo)],
                              capture_output=True, text=True, check=False,
                              env={**os.environ, "GTO_NO_UPDATE_CHECK": "1"})
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout) if "--json" in args else proc.stdout.strip()

    return _gto


def registry(run: Run, path: Path, *versions: str) -> Path:
    ok(run, "init", "--git-tags", path)
    ok(run, "--repo", path, "config", "protected-tags", "--none")
    ok(run, "--repo", path, "model", "create", M)
    for version in versions:
        ok(run, "--repo", path, "version", "create", M, version)
    return path


def tags(git: Git, repo: Path) -> list[str]:
    return git("-C", repo, "tag", "--list").split()


def mb_json(run: Run, *argv: str | Path) -> Any:
    return json.loads(ok(run, *argv, "--json").out)


def test_gto_agrees_with_modelbox(tmp_path: Path, run: Run, gto: Any) -> None:
    reg = registry(run, tmp_path / "reg", "v1.0.0", "v1.1.0", "v2.0.0")
    for version, tag in (("v1.0.0", "production"), ("v1.1.0", "staging"),
                         ("v2.0.0", "production"), ("v1.0.0", "production")):
        ok(run, "--repo", reg, "tag", f"{M}@{version}", tag)
    ok(run, "--repo", reg, "untag", M, "staging")
    ok(run, "--repo", reg, "version", "archive", f"{M}@v1.1.0")

    assert set(gto(reg, "show", "--json")) == {
        f"{m['namespace']}/{m['name']}" for m in mb_json(run, "--repo", reg, "model", "list")}
    shown = {v["version"] for v in gto(reg, "show", M, "--json")}
    assert shown == {v["version"] for v in mb_json(run, "--repo", reg, "version", "list", M)}
    assert shown == {"v1.0.0", "v2.0.0"}  # the archived v1.1.0 is deregistered
    resolved = ok(run, "--repo", reg, "resolve", f"{M}:production").out.strip()
    assert gto(reg, "show", f"{M}#production", "--version") == resolved == "v1.0.0"
    assert gto(reg, "show", "--json")[M]["stage"] == {"production": "v1.0.0"}
    # `gto history` and `modelbox log M:TAG` tell the same moves, newest first.
    moves = [e["after"] for e in mb_json(run, "--repo", reg, "log", f"{M}:production")]
    history = gto(reg, "history", M, "--json")
    assigned = [e["version"] for e in history
                if e["event"] == "assignment" and e["stage"] == "production"]
    assert assigned == moves == ["v1.0.0", "v2.0.0", "v1.0.0"]
    assert {e["author_email"] for e in history} == {"test@example.com"}


def test_unmappable_versions_get_no_tag_and_one_note(tmp_path: Path, run: Run,
                                                     git: Git) -> None:
    reg = registry(run, tmp_path / "reg", "v1.0.0")
    result = ok(run, "--repo", reg, "version", "create", M, "sweep-17")
    assert result.err.count("\n") == 1
    assert "team/m gets no Git tag for sweep-17" in result.err
    ok(run, "--repo", reg, "version", "create", M)  # an automatic vN
    # A new stage on such a version: said once too (it was silent before).
    canary = ok(run, "--repo", reg, "tag", f"{M}@sweep-17", "canary")
    assert canary.err.count("\n") == 1
    assert "team/m gets no Git tag for sweep-17" in canary.err
    ok(run, "--repo", reg, "tag", f"{M}@v1.0.0", "staging")
    moved = ok(run, "--repo", reg, "tag", f"{M}@sweep-17", "staging")
    assert "sweep-17" in moved.err  # the stage left GTO's view: said once
    assert tags(git, reg) == ["team/m#staging!#2", "team/m#staging#1", "team/m@v1.0.0"]


def test_off_by_default_and_switchable(tmp_path: Path, run: Run, git: Git) -> None:
    reg = tmp_path / "reg"
    ok(run, "init", reg)
    ok(run, "--repo", reg, "model", "create", M)
    ok(run, "--repo", reg, "version", "create", M, "v1.0.0")
    assert tags(git, reg) == []
    assert mb_json(run, "--repo", reg, "config", "git-tags", "on")["git_tags"] is True
    ok(run, "--repo", reg, "version", "create", M, "v1.1.0")  # the model's first write
    assert tags(git, reg) == ["team/m@v1.0.0", "team/m@v1.1.0"]  # v1.0.0 caught up
    ok(run, "--repo", reg, "config", "git-tags", "off")
    ok(run, "--repo", reg, "tag", f"{M}@v1.1.0", "staging")
    assert len(tags(git, reg)) == 2


def test_a_hand_edited_setting_is_refused(tmp_path: Path, run: Run, git: Git) -> None:
    reg = registry(run, tmp_path / "reg")
    settings = reg / ".modelbox" / "registry.json"
    data = json.loads(settings.read_text())
    data["git_tags"] = "yes"
    settings.write_text(json.dumps(data))
    git("-C", reg, "commit", "-qam", "hand edit")
    result = run("--repo", reg, "version", "create", M, "v1.0.0")
    assert result.code == 1
    assert result.err.startswith("modelbox: error:") and "git_tags" in result.err


def test_registration_and_promotion_point_at_the_registering_commit(
        tmp_path: Path, run: Run, git: Git) -> None:
    reg = registry(run, tmp_path / "reg", "v1.0.0")
    registered = git("-C", reg, "rev-parse", "HEAD").strip()
    ok(run, "--repo", reg, "tag", f"{M}@v1.0.0", "production")
    for tag in ("team/m@v1.0.0", "team/m#production#1"):
        assert git("-C", reg, "rev-parse", f"{tag}^{{commit}}").strip() == registered
        assert git("-C", reg, "cat-file", "-t", tag).strip() == "tag"  # annotated
    tagger = git("-C", reg, "for-each-ref", "--format=%(taggername) %(taggeremail)",
                 "refs/tags/team/m#production#1").strip()
    assert tagger == "Test User <test@example.com>"


def test_a_review_branch_fires_nothing_until_merged(tmp_path: Path, run: Run,
                                                    git: Git) -> None:
    remote = tmp_path / "remote.git"
    git("init", "-q", "--bare", "-b", "main", remote)
    reg = registry(run, tmp_path / "reg", "v1.0.0")
    ok(run, "--repo", reg, "push", remote)
    ok(run, "--repo", reg, "--branch", "review", "tag", f"{M}@v1.0.0", "production")
    assert tags(git, reg) == ["team/m@v1.0.0"]
    # Merged on the forge (a fast-forward of main there); the next pull makes the tag.
    git("-C", reg, "push", "-q", remote, "review:review")
    git("-C", remote, "update-ref", "refs/heads/main", "refs/heads/review")
    ok(run, "--repo", reg, "pull", remote)
    assert tags(git, reg) == ["team/m#production#1", "team/m@v1.0.0"]


def test_push_sends_them_and_a_retry_renumbers_counters(tmp_path: Path, run: Run,
                                                        git: Git, gto: Any) -> None:
    remote = tmp_path / "remote.git"
    git("init", "-q", "--bare", "-b", "main", remote)
    reg = registry(run, tmp_path / "reg", "v1.0.0", "v2.0.0")
    ok(run, "--repo", reg, "push", remote)
    a, b = tmp_path / "a", tmp_path / "b"
    ok(run, "clone", remote, a)
    ok(run, "clone", remote, b)
    assert tags(git, a) == ["team/m@v1.0.0", "team/m@v2.0.0"]
    ok(run, "--repo", a, "tag", f"{M}@v1.0.0", "staging")
    ok(run, "--repo", b, "tag", f"{M}@v2.0.0", "canary")  # both took counter 1
    ok(run, "--repo", a, "push")
    pushed = ok(run, "--repo", b, "push")
    assert "merged them" in pushed.out
    assert tags(git, remote) == ["team/m#canary#2", "team/m#staging#1",
                                 "team/m@v1.0.0", "team/m@v2.0.0"]
    ok(run, "--repo", a, "pull")
    assert tags(git, a) == tags(git, remote)
    assert gto(a, "show", "--json")[M]["stage"] == {"staging": "v1.0.0", "canary": "v2.0.0"}


@pytest.mark.parametrize("how", ["pull", "clone"])
def test_a_fetched_tag_off_the_branch_or_badly_named_is_refused(
        tmp_path: Path, run: Run, git: Git, how: str) -> None:
    remote = tmp_path / "remote.git"
    git("init", "-q", "--bare", "-b", "main", remote)
    reg = registry(run, tmp_path / "reg", "v1.0.0")
    ok(run, "--repo", reg, "push", remote)
    mine = tmp_path / "mine"
    if how == "pull":
        ok(run, "clone", remote, mine)
    # The attacker's clone: a commit on no registry branch, and tags GTO would read.
    evil = tmp_path / "evil"
    git("clone", "-q", remote, evil)
    git("-C", evil, "checkout", "-q", "--orphan", "side")
    git("-C", evil, "commit", "-q", "--allow-empty", "-m", "not the registry")
    on_main = git("-C", evil, "rev-parse", "origin/main").strip()
    for name, target in (("team/m#production#5", "side"),  # outside the registry branch
                         ("team/m#production#99999999999", on_main),  # counter overflow
                         ("team/-m#production#6", on_main),  # no model can be named so
                         ("team/m#staging#7", on_main)):  # fine
        git("-C", evil, "tag", "-a", "-m", "x", name, target)
    git("-C", evil, "tag", "team/m#dev#8", on_main)  # lightweight: GTO ignores it too
    git("-C", evil, "push", "-q", "origin", "--tags")
    argv = ("--repo", mine, "pull") if how == "pull" else ("clone", remote, mine)
    result = ok(run, *argv)
    # The one valid tag is taken; a pull then says what the registry says (no staging).
    undone = ["team/m#staging!#8"] if how == "pull" else []
    assert tags(git, mine) == [*undone, "team/m#staging#7", "team/m@v1.0.0"]
    assert "team/m#production#5" in result.err and "not on the registry branch" in result.err


def test_a_write_killed_before_its_tags_is_finished_by_the_next(
        tmp_path: Path, run: Run, git: Git) -> None:
    reg = registry(run, tmp_path / "reg", "v1.0.0")
    env = {**os.environ, "MODELBOX_FAULT": "before-tag-refs"}
    proc = subprocess.run([MODELBOX, "--repo", str(reg), "tag", f"{M}@v1.0.0", "staging"],
                          env=env, capture_output=True, text=True, check=False)
    assert proc.returncode == 137
    assert tags(git, reg) == ["team/m@v1.0.0"]
    ok(run, "--repo", reg, "model", "list")  # a read: nothing made
    ok(run, "--repo", reg, "version", "create", M, "v2.0.0")  # the next write recovers
    assert tags(git, reg) == ["team/m#staging#1", "team/m@v1.0.0", "team/m@v2.0.0"]


def test_tag_refs_are_dated_by_the_commit_that_moved_them(tmp_path: Path, run: Run,
                                                          git: Git) -> None:
    remote = tmp_path / "remote.git"
    git("init", "-q", "--bare", "-b", "main", remote)
    reg = registry(run, tmp_path / "reg", "v1.0.0", "v2.0.0")
    ok(run, "--repo", reg, "tag", f"{M}@v1.0.0", "production")
    time.sleep(1.1)  # the two moves a second apart, so their dates tell them apart
    ok(run, "--repo", reg, "tag", f"{M}@v2.0.0", "staging")
    ok(run, "--repo", reg, "version", "create", M, "v3.0.0")  # moves no tag
    ok(run, "--repo", reg, "push", remote)
    ok(run, "clone", remote, tmp_path / "a")
    ok(run, "clone", f"file://{remote}", tmp_path / "b")  # shallow first, history later
    fmt = "--format=%(refname) %(objectname) %(taggerdate:unix)"
    refs = {path: git("-C", path, "for-each-ref", "--sort=-taggerdate", fmt,
                      "refs/modelbox/tags").splitlines()
            for path in (reg, tmp_path / "a", tmp_path / "b")}
    assert refs[reg] == refs[tmp_path / "a"] == refs[tmp_path / "b"]  # one object each
    moved = git("-C", reg, "log", "--format=%ct", "--", "models/team/m/_tags.json").split()
    assert [line.split()[0].rsplit("/", 1)[1] for line in refs[reg]] == ["staging",
                                                                        "production"]
    assert [line.split()[2] for line in refs[reg]] == moved  # newest first, both
    for path in (reg, tmp_path / "a", tmp_path / "b"):
        ok(run, "--repo", path, "check")
    # The remote's refs were right: neither clone wrote one of its own (each ref written
    # is a loose file, and a shallow clone's first sync rewrote them all, then again).
    for path in (tmp_path / "a", tmp_path / "b"):
        assert not [p for p in (path / ".git" / "refs").rglob("*") if p.is_file()
                    and "modelbox" in p.parts]


@pytest.mark.parametrize("scheme", ["", "file://"])
def test_a_clone_remakes_the_tag_refs_a_remote_lies_about(tmp_path: Path, run: Run,
                                                         git: Git, scheme: str) -> None:
    """The remote's tag refs arrive with the clone but are derived data: one moved to
    another version, one deleted, one made up are all put right, whether the clone is
    one step (a path) or shallow first (file://), whose refs are synced only at the end."""
    remote = tmp_path / "remote.git"
    git("init", "-q", "--bare", "-b", "main", remote)
    reg = registry(run, tmp_path / "reg", "v1.0.0", "v2.0.0")
    ok(run, "--repo", reg, "tag", f"{M}@v1.0.0", "production")
    ok(run, "--repo", reg, "tag", f"{M}@v2.0.0", "staging")
    ok(run, "--repo", reg, "push", remote)
    prefix = f"refs/modelbox/tags/{M}/"
    staging = git("-C", remote, "rev-parse", prefix + "staging").strip()
    git("-C", remote, "update-ref", prefix + "production", staging)
    git("-C", remote, "update-ref", "-d", prefix + "staging")
    git("-C", remote, "update-ref", prefix + "bogus", staging)
    ok(run, "clone", f"{scheme}{remote}", tmp_path / "c")
    fmt = "--format=%(refname) %(objectname)"
    assert git("-C", tmp_path / "c", "for-each-ref", fmt, "refs/modelbox/tags") == git(
        "-C", reg, "for-each-ref", fmt, "refs/modelbox/tags")
    ok(run, "--repo", tmp_path / "c", "check")


def test_pull_reconciles_only_the_models_its_commits_changed(tmp_path: Path, run: Run,
                                                             git: Git) -> None:
    remote = tmp_path / "remote.git"
    git("init", "-q", "--bare", "-b", "main", remote)
    reg = registry(run, tmp_path / "reg", "v1.0.0")
    ok(run, "--repo", reg, "model", "create", "team/other")
    ok(run, "--repo", reg, "version", "create", "team/other", "v1.0.0")
    ok(run, "--repo", reg, "push", remote)
    mine = tmp_path / "mine"
    ok(run, "clone", remote, mine)
    ok(run, "--repo", mine, "refs", "sync")  # every model reconciled: the cache says where
    mark = mine / ".git" / "modelbox" / "gittags-reconciled.json"
    assert json.loads(mark.read_text())["head"] == git("-C", mine, "rev-parse", "HEAD").strip()
    # A tag of an unchanged model deleted by hand (here and on the remote), then a
    # promotion pushed by plain git (no tags): the pull makes the promotion's tag from
    # history and reads nothing of the other model, so it does not bring its tag back.
    for where in (mine, remote):
        git("-C", where, "tag", "-d", "team/other@v1.0.0")
    ok(run, "--repo", reg, "tag", f"{M}@v1.0.0", "production")
    git("-C", reg, "push", "-q", remote, "main")
    ok(run, "--repo", mine, "pull")
    assert tags(git, mine) == ["team/m#production#1", "team/m@v1.0.0"]
    assert json.loads(mark.read_text())["head"] == git("-C", mine, "rev-parse", "HEAD").strip()
    ok(run, "--repo", mine, "refs", "sync")  # the long way: every model
    assert "team/other@v1.0.0" in tags(git, mine)


@pytest.mark.parametrize("cache", ["deleted", "torn", "foreign"])
def test_pull_without_a_trustworthy_cache_reconciles_every_model(
        tmp_path: Path, run: Run, git: Git, cache: str) -> None:
    remote = tmp_path / "remote.git"
    git("init", "-q", "--bare", "-b", "main", remote)
    reg = registry(run, tmp_path / "reg", "v1.0.0")
    ok(run, "--repo", reg, "model", "create", "team/other")
    ok(run, "--repo", reg, "version", "create", "team/other", "v1.0.0")
    ok(run, "--repo", reg, "push", remote)
    mine = tmp_path / "mine"
    ok(run, "clone", remote, mine)
    ok(run, "--repo", mine, "refs", "sync")
    mark = mine / ".git" / "modelbox" / "gittags-reconciled.json"
    if cache == "deleted":
        mark.unlink()
    elif cache == "torn":
        mark.write_text(mark.read_text()[:20])
    else:  # names a commit this clone lacks
        mark.write_text(json.dumps({**json.loads(mark.read_text()), "head": "0" * 40}))
    for where in (mine, remote):  # an unchanged model's tag, gone: only a full pass
        git("-C", where, "tag", "-d", "team/other@v1.0.0")  # makes it again
    ok(run, "--repo", reg, "version", "create", M, "v2.0.0")
    ok(run, "--repo", reg, "push", remote)
    ok(run, "--repo", mine, "pull")
    assert tags(git, mine) == ["team/m@v1.0.0", "team/m@v2.0.0", "team/other@v1.0.0"]


def test_a_batch_that_moves_many_models_tags_dates_their_refs_as_one_by_one(
        tmp_path: Path, run: Run, git: Git) -> None:
    from modelbox import ModelBoxClient

    reg = tmp_path / "reg"
    ok(run, "init", reg)
    ok(run, "--repo", reg, "config", "protected-tags", "--none")
    client = ModelBoxClient(reg)
    with client.batch():
        handles = [client.new_model(f"m{i}", "a@b.c", "team", "t") for i in range(3)]
        for handle in handles:
            handle.new_model_version("v1.0.0").tag("staging")
    time.sleep(1.1)  # the next moves a second later: their dates tell the commits apart
    with client.batch():  # one git log for the three tag maps' history, not three
        for handle in handles[:2]:
            handle.new_model_version("v2.0.0").tag("production")
    client.close()
    fmt = "--format=%(refname) %(objectname) %(taggerdate:unix)"
    before = git("-C", reg, "for-each-ref", fmt, "refs/modelbox/tags")
    for ref in before.split("\n"):
        if ref:
            git("-C", reg, "update-ref", "-d", ref.split()[0])
    ok(run, "--repo", reg, "refs", "sync")  # every ref derived again from history
    assert git("-C", reg, "for-each-ref", fmt, "refs/modelbox/tags") == before
    dates = {line.split()[0].rsplit("/", 1)[1]: int(line.split()[2])
             for line in before.splitlines() if "/m0/" in line}
    assert dates["production"] > dates["staging"] > 0
