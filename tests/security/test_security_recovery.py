"""A ``kill -9`` at any point of a write, or a plain ``git status`` holding ``index.lock``,
never costs data (issue 13, "Data loss" and "Plain git beside modelbox").

A write journals what must follow before it moves the branch (``modelbox/recovery.py``);
the next write finishes it, ``check`` reports it, ``check --fix`` finishes it too.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from hostile import MODELBOX, Proc, assert_refused, modelbox
from kill9 import SCENARIOS, git, kill_loop

from modelbox.cli import main
from modelbox.faults import STEPS


def in_process(argv: Sequence[str]) -> tuple[int, str, str]:
    """The CLI in this process (the recovery write and `check` after each kill: fast)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def mb(repo: Path, *argv: str) -> Proc:
    """An ordinary command, in-process (the killed or watched ones are real processes)."""
    return Proc(*in_process(["--repo", str(repo), *argv]))


def _init(path: Path) -> Path:
    assert in_process(["init", str(path)])[0] == 0
    for argv in (("model", "create", "m"), ("model", "create", "bystander"),
                 ("version", "create", "m", "v0", "--tag", "prod")):
        assert mb(path, *argv).code == 0
    return path


def _clean(path: Path) -> None:
    assert git("status", "--porcelain", cwd=path) == ""
    code, _, err = in_process(["--repo", str(path), "check"])
    assert code == 0, err


# -- deterministic: die at each named step ------------------------------------------------
@pytest.mark.parametrize("step", STEPS)
def test_version_create_killed_at_step_is_finished_by_the_next_write(
        tmp_path: Path, step: str) -> None:
    repo = _init(tmp_path / "r")
    before = git("rev-parse", "HEAD", cwd=repo)
    proc = modelbox("--repo", repo, "version", "create", "m", "v1", "--tag", "staging",
                    env={"MODELBOX_FAULT": step})
    assert proc.code == 137
    moved = git("rev-parse", "HEAD", cwd=repo) != before
    assert moved == (step != "after-journal")  # before the swap: only unreferenced objects
    # `check` sees the interrupted write, whichever step it died at.
    code, _, err = in_process(["--repo", str(repo), "check"])
    assert code == 1 and "interrupted" in err, err
    # The next write, about something else, finishes the job.
    assert mb(repo, "meta", "set", "bystander", "k", "1").code == 0
    _clean(repo)
    tagged = mb(repo, "resolve", "m:staging")
    refs = git("for-each-ref", "--format=%(refname)", "refs/modelbox/tags", cwd=repo)
    if moved:
        assert tagged.out.strip() == "v1"
        assert "refs/modelbox/tags/default/m/staging" in refs
    else:
        assert tagged.code == 1 and "v1" not in mb(repo, "version", "list", "m").out
        assert "staging" not in refs


@pytest.mark.parametrize("step", ["after-journal", "after-ref-move", "index-locked"])
def test_pull_killed_at_step_is_finished_by_the_next_write(tmp_path: Path, step: str) -> None:
    origin = _init(tmp_path / "origin")
    clone = tmp_path / "clone"
    assert in_process(["clone", str(origin), str(clone)])[0] == 0
    for n in range(5):
        assert mb(origin, "version", "create", "m", f"p{n}", "--tag", f"t{n}").code == 0
    assert modelbox("--repo", clone, "pull", env={"MODELBOX_FAULT": step}).code == 137
    assert mb(clone, "model", "create", "other").code == 0
    _clean(clone)
    if step != "after-journal":
        refs = git("for-each-ref", "--format=%(refname)", "refs/modelbox/tags", cwd=clone)
        assert all(f"refs/modelbox/tags/default/m/t{n}\n" in refs for n in range(5))
    assert mb(clone, "pull").code == 0
    _clean(clone)


@pytest.mark.smoke
@pytest.mark.parametrize("step", ["after-ref-move", "index-locked", "before-tag-refs"])
def test_check_fix_finishes_an_interrupted_write(tmp_path: Path, step: str) -> None:
    repo = _init(tmp_path / "r")
    assert modelbox("--repo", repo, "tag", "m@v0", "staging",
                    env={"MODELBOX_FAULT": step}).code == 137
    proc = mb(repo, "check", "--fix")
    assert proc.code == 0, proc.err
    _clean(repo)
    assert not (repo / ".git" / "index.lock").exists()
    assert mb(repo, "resolve", "m:staging").out.strip() == "v0"


def test_the_advice_to_commit_cannot_revert_the_new_version(tmp_path: Path) -> None:
    """The issue's trap: after the kill, `git status` showed staged deletions and the
    "commit them" advice deleted the new version. Now nothing is staged after one write."""
    repo = _init(tmp_path / "r")
    assert modelbox("--repo", repo, "version", "create", "m", "v1", "--tag", "rc",
                    env={"MODELBOX_FAULT": "after-ref-move"}).code == 137
    assert git("status", "--porcelain", cwd=repo) != ""  # what the kill left
    assert mb(repo, "model", "create", "other").code == 0
    assert git("diff", "--cached", "--name-only", cwd=repo) == ""
    assert mb(repo, "resolve", "m:rc").out.strip() == "v1"


def test_an_index_left_behind_without_a_journal_is_reported_and_finished(
        tmp_path: Path) -> None:
    """An older modelbox kept no journal: `check` still sees the index lag the branch
    (from the reflog), and the next write that touches those files finishes it."""
    repo = _init(tmp_path / "r")
    assert modelbox("--repo", repo, "tag", "m@v0", "staging",
                    env={"MODELBOX_FAULT": "after-ref-move"}).code == 137
    for journal in (repo / ".git" / "modelbox" / "journal").iterdir():
        journal.unlink()
    code, _, err = in_process(["--repo", str(repo), "check"])
    assert code == 1 and ".git/index" in err and "older commit" in err, err
    # A write on the very files the lag holds: formerly "uncommitted changes ... commit them".
    proc = mb(repo, "tag", "m@v0", "dev")
    assert proc.code == 0, proc.err
    _clean(repo)


def test_a_stale_index_lock_of_a_live_git_is_not_removed(tmp_path: Path) -> None:
    """Only a lock whose modelbox owner is dead is ours to remove; a live holder's lock is
    waited for (bounded), then the change is reported as landed with one warning line."""
    repo = _init(tmp_path / "r")
    lock = repo / ".git" / "index.lock"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import os, sys, time\n"
         f"fd = os.open({str(lock)!r}, os.O_CREAT | os.O_EXCL | os.O_WRONLY)\n"
         "print('held', flush=True); sys.stdin.read()\n"
         f"os.unlink({str(lock)!r})"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        started = time.monotonic()
        proc = modelbox("--repo", repo, "version", "create", "m", "v1", "--tag", "rc",
                        env={"MODELBOX_INDEX_LOCK_TIMEOUT": "0.5"})
        assert time.monotonic() - started < 10
        assert proc.code == 0, proc.err
        warnings = proc.err.strip().splitlines()
        assert len(warnings) == 1 and "index.lock" in warnings[0], proc.err
        assert "next modelbox write" in warnings[0]
        assert lock.exists()  # the live holder's lock is untouched
        # The change landed, tag ref included; `check` says the index still has to follow.
        assert mb(repo, "resolve", "m:rc").out.strip() == "v1"
        assert "refs/modelbox/tags/default/m/rc" in git("for-each-ref", cwd=repo)
        assert "interrupted" in mb(repo, "check").err
    finally:
        assert holder.stdin is not None and holder.stdout is not None
        holder.stdin.close()
        holder.wait()
        holder.stdout.close()
    assert mb(repo, "model", "create", "other").code == 0
    _clean(repo)


@contextlib.contextmanager
def _git_status_loop(repo: Path) -> Iterator[None]:
    """A shell prompt or an IDE: `git status` again and again (each takes index.lock)."""
    script = (f"cd {str(repo)!r} && while :; do git status --porcelain >/dev/null 2>&1; "
              "done")
    loop = subprocess.Popen(["sh", "-c", script])
    try:
        yield
    finally:
        # Stop the shell only: the `git status` it runs finishes and drops its lock (a git
        # killed holding index.lock leaves it behind, as git itself warns).
        loop.terminate()
        loop.wait()
        deadline = time.monotonic() + 10
        while (repo / ".git" / "index.lock").exists() and time.monotonic() < deadline:
            time.sleep(0.01)


@pytest.mark.stress
def test_version_create_beside_a_git_status_loop_never_fails(tmp_path: Path) -> None:
    """Issue: 18 of 60 `version create` exited 1 ("index.lock exists") although their
    commit had landed, and their tag refs were not synced."""
    repo = _init(tmp_path / "r")
    results = []
    with _git_status_loop(repo):
        for n in range(20):
            results.append(modelbox("--repo", repo, "version", "create", "m", f"v{n + 1}",
                                    "--tag", f"rc{n}"))
    assert [r.code for r in results] == [0] * len(results), [r.err for r in results]
    refs = git("for-each-ref", "--format=%(refname)", "refs/modelbox/tags", cwd=repo)
    assert all(f"refs/modelbox/tags/default/m/rc{n}\n" in refs for n in range(20))
    assert mb(repo, "model", "create", "other").code == 0
    _clean(repo)


# -- kill -9 at random points of real processes -------------------------------------------
@pytest.mark.stress
@pytest.mark.parametrize("command", list(SCENARIOS))
def test_kill_9_at_random_points_costs_nothing(tmp_path: Path, command: str) -> None:
    scenario = SCENARIOS[command](tmp_path, MODELBOX, in_process)
    outcome = kill_loop(scenario, tries=20, seed=13)
    assert outcome.failures == [], outcome.failures
    assert outcome.recovered == outcome.tries == 20


def test_ref_locks_left_by_a_killed_writer_are_cleared(tmp_path: Path) -> None:
    """Killed while dulwich held a tag ref's lock (seen in the stress runs of `pull`):
    `<ref>.lock` stays, and every later sync of that ref failed with a traceback."""
    repo = _init(tmp_path / "r")
    assert modelbox("--repo", repo, "tag", "m@v0", "staging",
                    env={"MODELBOX_FAULT": "before-tag-refs"}).code == 137
    tags = repo / ".git" / "refs" / "modelbox" / "tags" / "default" / "m"
    (tags / "staging.lock").write_text("")  # what the kill inside set_ref leaves
    (tags / "prod.lock").write_text("")
    proc = mb(repo, "model", "create", "other")
    assert proc.code == 0, proc.err
    assert not list(tags.glob("*.lock"))
    _clean(repo)
    assert "refs/modelbox/tags/default/m/staging" in git("for-each-ref", cwd=repo)


@pytest.mark.parametrize("field,value,step", [
    ("ref", "refs/heads/../../../../victim", "after-journal"),
    ("new", "--output=../victim.lock", "after-journal"),
    ("old", "HEAD~1", "after-ref-move"),
    ("old", "0123456789abcdef0123456789abcdef01234567", "after-ref-move"),
    ("new", "0123456789abcdef0123456789abcdef01234567", "after-journal"),
])
def test_a_hand_edited_journal_reaches_neither_the_file_system_nor_git(
        tmp_path: Path, field: str, value: str, step: str) -> None:
    """The journal is input: its branch was joined to the git folder to clear a dead
    writer's `<ref>.lock`, and its commits handed to git. A ref that climbed out of the
    folder removed a `.lock` file beside the clone, and a commit that was not an object
    name stopped every later write; now such a record is refused (one warning, the
    journal removed), the write finishes the move `check` would find, and goes on."""
    repo = _init(tmp_path / "r")
    assert modelbox("--repo", repo, "tag", "m@v0", "staging",
                    env={"MODELBOX_FAULT": step}).code == 137
    journal = repo / ".git" / "modelbox" / "journal" / "branch-move.json"
    data = json.loads(journal.read_text())
    data[field] = value
    data["absorbs"] = {"metrics-1-1.jsonl": 3}  # so that recovery asks whether it landed
    journal.write_text(json.dumps(data))
    victim = tmp_path / "victim.lock"
    victim.write_text("not modelbox's")
    made = journal.stat().st_mtime_ns + 100_000_000  # as if made by the move it announced
    os.utime(victim, ns=(made, made))
    proc = mb(repo, "model", "create", "other")
    assert proc.code == 0, proc.err
    assert victim.read_text() == "not modelbox's"
    assert not journal.exists()
    _clean(repo)  # what the refused record named was finished all the same


def test_a_ref_lock_of_someone_else_is_waited_out_not_a_failure(tmp_path: Path) -> None:
    """No journal names a dead writer: a ref lock is someone else's and is left alone. The
    commit has landed, so the command says so (one warning line, exit 0); the refs follow
    with the next write once the lock is gone."""
    repo = _init(tmp_path / "r")
    lock = repo / ".git" / "refs" / "modelbox" / "tags" / "default" / "m" / "staging.lock"
    lock.write_text("")
    proc = modelbox("--repo", repo, "tag", "m@v0", "staging")
    assert proc.code == 0, proc.err
    lines = proc.err.strip().splitlines()
    assert len(lines) == 1 and "staging.lock exists" in lines[0], proc.err
    assert lock.exists()
    assert mb(repo, "resolve", "m:staging").out.strip() == "v0"
    proc = mb(repo, "refs", "sync")
    assert_refused(proc.code, proc.err, "staging.lock exists")
    assert "interrupted" in mb(repo, "check").err
    lock.unlink()  # the other process is done
    assert mb(repo, "model", "create", "other").code == 0
    _clean(repo)


def test_an_index_lock_whose_owner_lives_is_never_taken(tmp_path: Path) -> None:
    """The owner record names a process that still runs: its lock is not stale, whatever
    the record says; a dead owner's lock (same record, same inode) is removed."""
    from modelbox.refs.index import clear_stale_lock

    repo = _init(tmp_path / "r")
    lock = repo / ".git" / "index.lock"
    owner = repo / ".git" / "index.lock.modelbox-owner"
    live = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                            stdin=subprocess.PIPE)
    try:
        lock.write_bytes(b"")
        owner.write_text(f"{live.pid} {lock.stat().st_ino}\n")
        assert not clear_stale_lock(lock)
        assert lock.exists()
    finally:
        assert live.stdin is not None
        live.stdin.close()
        live.wait()
    assert clear_stale_lock(lock)  # the same record, now of a dead process
    assert not lock.exists() and not owner.exists()


def test_a_pull_whose_tag_ref_is_locked_reports_success(tmp_path: Path) -> None:
    """The branch moved and the files followed; one ref held by another process must not
    turn the pull into "failed": one warning, exit 0, the next write finishes the refs."""
    origin = _init(tmp_path / "origin")
    clone = tmp_path / "clone"
    assert in_process(["clone", str(origin), str(clone)])[0] == 0
    assert mb(origin, "version", "create", "m", "v1", "--tag", "rc").code == 0
    lock = clone / ".git" / "refs" / "modelbox" / "tags" / "default" / "m" / "rc.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)  # a clone's refs may all be packed
    lock.write_text("")
    proc = modelbox("--repo", clone, "pull")
    assert proc.code == 0, proc.err
    assert [line for line in proc.err.splitlines() if "warning" in line] == [
        line for line in proc.err.splitlines() if line.strip()], proc.err
    assert "rc.lock exists" in proc.err
    assert git("status", "--porcelain", cwd=clone) == ""
    lock.unlink()
    assert mb(clone, "model", "create", "other").code == 0
    _clean(clone)
    assert "refs/modelbox/tags/default/m/rc" in git("for-each-ref", cwd=clone)


def test_an_audit_ref_lock_left_by_a_killed_get_blocks_no_later_get(
    registry_path: Path, tmp_path: Path,
) -> None:
    # Found by the get kill loop: a get killed while writing its download audit event
    # leaves `refs/modelbox/audit.lock`, and every later get failed on it.
    import os

    weights = tmp_path / "model.pt"
    weights.write_bytes(b"w" * 1000)
    repo = ("--repo", str(registry_path))
    assert main([*repo, "model", "create", "m"]) == 0
    assert main([*repo, "version", "create", "m", "v1"]) == 0
    assert main([*repo, "artifact", "add", "m@v1", str(weights)]) == 0
    lock = registry_path / ".git" / "refs" / "modelbox" / "audit.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    lock.write_bytes(b"")
    os.utime(lock, (time.time() - 60, time.time() - 60))
    result = modelbox(*repo, "get", "m@v1", "-o", tmp_path / "out")
    assert result.code == 0, result.err
    assert (tmp_path / "out" / "model.pt").read_bytes() == b"w" * 1000
    assert not lock.exists()
    assert "artifact.download" in modelbox(*repo, "log").out
