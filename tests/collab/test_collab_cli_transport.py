"""The git program as transport, the automatic retry of a push, and bad remotes.

Pushes race for real (two clones, one remote served by ``git daemon``); a server that
refuses a ref is a bare repository with a real ``pre-receive`` hook.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from collab.collab_helpers import (
    assert_clean,
    git_out,
    make_registry,
    ok,
    one_error_line,
    tag_refs,
)
from collab.collab_servers import BareRemote, Servers
from modelbox.errors import PushRejectedError, RemoteMovedError
from modelbox.refs import GitRepo, gitcli
from modelbox.refs.remote import Remote
from modelbox.registry import AUDIT_REF

if TYPE_CHECKING:
    from conftest import Run

YOLO = "ai/vision/yolo"


def _refs(path: Path) -> str:
    return git_out(path, "for-each-ref", "--format=%(refname) %(objectname)")


def _state(path: Path) -> tuple[str, str, str]:
    """What a failed push must leave alone: the local refs (branch, audit, tags; not the
    remote-tracking ones, which a fetch moves as git fetch does), the index and the files
    of the work tree."""
    refs = git_out(path, "for-each-ref", "--format=%(refname) %(objectname)",
                   "refs/heads", "refs/modelbox")
    files = sorted(str(p.relative_to(path)) + ":" + p.read_text()
                   for p in (path / "models").rglob("*") if p.is_file())
    return refs, git_out(path, "ls-files", "-s"), "\n".join(files)


@pytest.fixture
def two_clones(bare_remote: BareRemote, tmp_path: Path, run: Run) -> tuple[Path, Path]:
    first = make_registry(run, tmp_path / "first", bare_remote.urls["git"])
    ok(run, "--repo", first, "push")
    second = tmp_path / "second"
    ok(run, "clone", bare_remote.urls["git"], second)
    return first, second


# -- the retry -------------------------------------------------------------------------
@pytest.mark.usefixtures("git_transport")
def test_a_push_the_remote_moved_under_is_merged_and_pushed_again(
    two_clones: tuple[Path, Path], bare_remote: BareRemote, tmp_path: Path, run: Run
) -> None:
    first, second = two_clones
    ok(run, "--repo", first, "tag", f"{YOLO}@v2", "staging")
    ok(run, "--repo", first, "push")
    ok(run, "--repo", second, "tag", f"{YOLO}@v2", "prod")
    ok(run, "--repo", second, "meta", "set", f"{YOLO}@v1", "note", '"kept"')

    out = ok(run, "--repo", second, "push").out.splitlines()
    assert len(out) == 2 and "merged them" in out[0] and "pushed again" in out[0], out
    assert git_out(bare_remote.path, "rev-parse", "main") == git_out(second, "rev-parse", "main")
    assert git_out(second, "rev-list", "--parents", "-1", "main").count(" ") == 2  # a merge
    assert_clean(second)

    third = tmp_path / "third"
    ok(run, "clone", bare_remote.urls["http"], third)
    assert ok(run, "--repo", third, "resolve", f"{YOLO}:staging").out == "v2\n"
    assert ok(run, "--repo", third, "resolve", f"{YOLO}:prod").out == "v2\n"
    shown = json.loads(ok(run, "--repo", third, "version", "show", f"{YOLO}@v1", "--json").out)
    assert shown["metadata"]["note"] == "kept"
    assert tag_refs(third) == tag_refs(second) == tag_refs(bare_remote.path)
    assert ok(run, "--repo", third, "check").code == 0


@pytest.mark.usefixtures("git_transport")
def test_a_retried_push_reports_its_merges_in_json(
    two_clones: tuple[Path, Path], run: Run
) -> None:
    first, second = two_clones
    ok(run, "--repo", first, "tag", f"{YOLO}@v2", "staging")
    ok(run, "--repo", first, "push")
    ok(run, "--repo", second, "version", "create", YOLO, "v3")
    result = json.loads(ok(run, "--repo", second, "push", "--json").out)
    assert [pulled["how"] for pulled in result["retries"]] == ["merge"]
    assert result["after"] == git_out(second, "rev-parse", "main").strip()


@pytest.mark.usefixtures("git_transport")
def test_a_conflicting_tag_move_stops_the_push_and_changes_nothing(
    two_clones: tuple[Path, Path], bare_remote: BareRemote, run: Run
) -> None:
    first, second = two_clones
    ok(run, "--repo", first, "tag", f"{YOLO}@v2", "prod")
    ok(run, "--repo", first, "push")
    ok(run, "--repo", second, "version", "create", YOLO, "v3")
    ok(run, "--repo", second, "tag", f"{YOLO}@v3", "prod")
    before, remote_before = _state(second), _refs(bare_remote.path)

    one_error_line(run("--repo", second, "push"), "_tags.json", "git pull", "modelbox check")
    assert _state(second) == before
    assert _refs(bare_remote.path) == remote_before
    assert_clean(second)


@pytest.mark.usefixtures("git_transport")
def test_without_retry_a_moved_remote_asks_to_pull_first(
    two_clones: tuple[Path, Path], bare_remote: BareRemote, run: Run
) -> None:
    first, second = two_clones
    ok(run, "--repo", first, "tag", f"{YOLO}@v2", "staging")
    ok(run, "--repo", first, "push")
    ok(run, "--repo", second, "tag", f"{YOLO}@v2", "prod")
    before, remote_before = _refs(second), _refs(bare_remote.path)
    one_error_line(run("--repo", second, "push", "--no-retry"), "push rejected",
                   "refs/heads/main", "run `modelbox pull`, then `modelbox push` again")
    assert (_refs(second), _refs(bare_remote.path)) == (before, remote_before)


@pytest.mark.usefixtures("git_transport")
def test_download_events_that_raced_are_joined_by_the_retry(
    two_clones: tuple[Path, Path], run: Run
) -> None:
    from modelbox.audit import Change
    from modelbox.names import parse_reference
    from modelbox.registry import Registry

    first, second = two_clones
    for clone in (first, second):
        registry = Registry.open(clone)
        registry.record_event(Change("artifact.download", f"{YOLO}@v1", f"from {clone.name}"))
        registry.close()
    ok(run, "--repo", first, "push")
    ok(run, "--repo", second, "push")
    ok(run, "--repo", first, "pull")
    assert git_out(first, "rev-parse", AUDIT_REF) == git_out(second, "rev-parse", AUDIT_REF)
    registry = Registry.open(first)
    events = [e.subject for e in registry.log(str(parse_reference(f"{YOLO}@v1")))
              if e.operation == "artifact.download"]
    registry.close()
    assert sorted(events) == ["from first", "from second"]


# -- the contract of Remote.push, on both implementations --------------------------------
@pytest.mark.usefixtures("git_transport")
def test_a_push_planned_against_an_old_remote_value_sends_nothing(
    bare_remote: BareRemote, tmp_path: Path, run: Run
) -> None:
    first = make_registry(run, tmp_path / "first", bare_remote.urls["file"])
    ok(run, "--repo", first, "push")
    pushed = git_out(first, "rev-parse", "main").strip()
    ok(run, "--repo", first, "version", "create", YOLO, "v3")
    new = git_out(first, "rev-parse", "main").strip()
    stale = git_out(first, "rev-parse", "main~2").strip()  # the remote holds main~1
    repo = GitRepo.open(first)
    try:
        with pytest.raises(RemoteMovedError) as caught:
            Remote(repo, bare_remote.urls["file"]).push(
                {"refs/heads/main": new}, {"refs/heads/main": stale})
    finally:
        repo.close()
    assert caught.value.ref == "refs/heads/main"
    assert git_out(bare_remote.path, "rev-parse", "main").strip() == pushed


def _refuse_tag(remote: Path, tag: str) -> None:
    """A pre-receive hook on the server that refuses any update of ``tag``'s ref."""
    hook = remote / "hooks" / "pre-receive"
    hook.write_text(
        "#!/bin/sh\nwhile read old new ref; do\n"
        f'  case "$ref" in */{tag}) echo "no {tag} here" >&2; exit 1;; esac\n'
        "done\nexit 0\n"
    )
    hook.chmod(hook.stat().st_mode | stat.S_IXUSR)


@pytest.mark.usefixtures("git_transport")
def test_a_ref_the_server_refuses_is_named_and_nothing_lands(
    bare_remote: BareRemote, tmp_path: Path, run: Run
) -> None:
    # git daemon runs receive-pack, and with it the hook (dulwich writes into a local
    # path itself, without hooks).
    first = make_registry(run, tmp_path / "first", bare_remote.urls["git"])
    ok(run, "--repo", first, "push")
    _refuse_tag(bare_remote.path, "blocked")
    ok(run, "--repo", first, "tag", f"{YOLO}@v2", "blocked")
    before = _refs(bare_remote.path)
    result = run("--repo", first, "push")
    one_error_line(result, f"refs/modelbox/tags/{YOLO}/blocked")
    assert _refs(bare_remote.path) == before  # atomic: the branch did not move either

    repo = GitRepo.open(first)
    try:
        with pytest.raises(PushRejectedError) as caught:
            Remote(repo, bare_remote.urls["git"]).push(
                {f"refs/modelbox/tags/{YOLO}/blocked": repo.ref(
                    f"refs/modelbox/tags/{YOLO}/blocked")}, {})
    finally:
        repo.close()
    assert list(caught.value.statuses) == [f"refs/modelbox/tags/{YOLO}/blocked"]


# -- clone: the tip first, the history while the work tree is written -------------------
@pytest.mark.parametrize("transport", ["git", "http", "file", "path"])
@pytest.mark.usefixtures("git_transport")
def test_a_clone_holds_the_whole_history(
    transport: str, bare_remote: BareRemote, tmp_path: Path, run: Run
) -> None:
    first = make_registry(run, tmp_path / "first", bare_remote.urls["git"])
    ok(run, "--repo", first, "push")
    clone = tmp_path / "clone"
    ok(run, "clone", bare_remote.urls[transport], clone)
    assert git_out(clone, "rev-parse", "--is-shallow-repository") == "false\n"
    assert git_out(clone, "rev-list", "--count", "main") == git_out(
        first, "rev-list", "--count", "main") == "4\n"
    git_out(clone, "fsck", "--no-progress", "--no-dangling")
    assert_clean(clone)
    assert ok(run, "--repo", clone, "log", YOLO).out == ok(run, "--repo", first, "log", YOLO).out


def test_an_interrupted_clone_leaves_nothing_behind(
    bare_remote: BareRemote, tmp_path: Path, run: Run
) -> None:
    from modelbox import ModelBoxClient

    first = make_registry(run, tmp_path / "first", bare_remote.urls["git"])
    client = ModelBoxClient(str(first))
    with client.batch():  # enough history that a clone takes a moment
        model = client.new_model("many", "ml@example.com", "ai")
        for i in range(600):
            model.new_model_version(f"v{i}")
    client.close()
    ok(run, "--repo", first, "push")
    argv = [sys.executable, "-c", "import sys; from modelbox.cli import main; sys.exit(main())",
            "clone", bare_remote.urls["git"]]
    interrupted = 0
    for i, delay in enumerate((0.2, 0.3, 0.4, 0.5, 0.7)):
        dest = tmp_path / f"clone{i}"
        proc = subprocess.Popen([*argv, str(dest)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        time.sleep(delay)
        proc.send_signal(signal.SIGINT)  # to modelbox alone, as Ctrl-C reaches it
        out, err = proc.communicate(timeout=60)
        time.sleep(0.3)  # a git process left running would write on meanwhile
        left = sorted(p.name for p in tmp_path.iterdir() if f"clone{i}" in p.name)
        if b"Cloned" in out:  # it was done before the signal came (or as Python exited)
            assert left == [f"clone{i}"]
            assert git_out(dest, "rev-parse", "--is-shallow-repository") == "false\n"
            assert_clean(dest)
        else:
            assert left == [], (delay, err)
            interrupted += 1
    assert interrupted, "every clone ended before its Ctrl-C: the test proved nothing"


def _shallow_clone(url: str, dest: Path) -> Path:
    git_out(dest.parent, "clone", "-q", "--depth=1", "--no-checkout", url, str(dest))
    return dest


def test_history_cloned_after_the_remote_moved_on_completes_a_shallow_clone(
    bare_remote: BareRemote, tmp_path: Path, run: Run
) -> None:
    first = make_registry(run, tmp_path / "first", bare_remote.urls["git"])
    ok(run, "--repo", first, "push")
    shallow = _shallow_clone(bare_remote.urls["git"], tmp_path / "shallow")
    tip = git_out(shallow, "rev-parse", "main")
    ok(run, "--repo", first, "version", "create", YOLO, "v3")  # the remote moves on
    ok(run, "--repo", first, "push")
    side = tmp_path / "side.git"
    git_out(tmp_path, "clone", "-q", "--bare", bare_remote.urls["git"], str(side))

    assert gitcli.adopt_history("git", shallow / ".git", side)
    assert git_out(shallow, "rev-parse", "--is-shallow-repository") == "false\n"
    assert git_out(shallow, "rev-parse", "main") == tip  # no ref moved
    assert git_out(shallow, "rev-list", "--count", "main") == "4\n"
    git_out(shallow, "fsck", "--no-progress", "--connectivity-only")


def test_history_the_remote_no_longer_has_cannot_complete_a_shallow_clone(
    bare_remote: BareRemote, tmp_path: Path, run: Run
) -> None:
    first = make_registry(run, tmp_path / "first", bare_remote.urls["git"])
    ok(run, "--repo", first, "push")
    shallow = _shallow_clone(bare_remote.urls["git"], tmp_path / "shallow")
    # Between the two clones, main is rewritten and the old tip pruned.
    git_out(first, "commit", "-q", "--amend", "-m", "rewritten")
    git_out(first, "push", "-q", "--force", bare_remote.urls["file"], "main")
    git_out(bare_remote.path, "reflog", "expire", "--expire=now", "--all")
    git_out(bare_remote.path, "gc", "-q", "--prune=now")
    side = tmp_path / "side.git"
    git_out(tmp_path, "clone", "-q", "--bare", bare_remote.urls["git"], str(side))
    packs = sorted((shallow / ".git/objects/pack").iterdir())
    boundary = (shallow / ".git/shallow").read_text()

    assert not gitcli.adopt_history("git", shallow / ".git", side)  # nothing changes
    assert sorted((shallow / ".git/objects/pack").iterdir()) == packs
    assert (shallow / ".git/shallow").read_text() == boundary
    # What `modelbox clone` then tries, and why it gives up: the commit stays shallow.
    res = gitcli.unshallow("git", shallow / ".git", bare_remote.urls["git"], ["refs/heads/main"])
    assert res.code == 0, res.err
    assert (shallow / ".git/shallow").read_text() == boundary


# -- tag refs a push skips computing -----------------------------------------------------
def test_a_push_with_nothing_new_is_quick_and_sends_nothing(
    bare_remote: BareRemote, tmp_path: Path, run: Run
) -> None:
    first = make_registry(run, tmp_path / "first", bare_remote.urls["file"])
    ok(run, "--repo", first, "push")
    before = _refs(bare_remote.path)
    start = time.perf_counter()
    assert "Everything up to date" in ok(run, "--repo", first, "push").out
    assert time.perf_counter() - start < 0.5
    assert _refs(bare_remote.path) == before


def test_a_tag_ref_deleted_by_hand_is_rebuilt_before_a_push(
    bare_remote: BareRemote, tmp_path: Path, run: Run
) -> None:
    first = make_registry(run, tmp_path / "first", bare_remote.urls["file"])
    ok(run, "--repo", first, "push")
    expected = tag_refs(first)
    git_out(first, "update-ref", "-d", f"refs/modelbox/tags/{YOLO}/prod")
    ok(run, "--repo", first, "push")
    assert tag_refs(first) == tag_refs(bare_remote.path) == expected


def test_a_tag_moved_by_a_plain_git_commit_reaches_the_remote(
    bare_remote: BareRemote, tmp_path: Path, run: Run
) -> None:
    first = make_registry(run, tmp_path / "first", bare_remote.urls["file"])
    ok(run, "--repo", first, "push")
    tags = first / "models/ai/vision/yolo/_tags.json"
    doc = json.loads(tags.read_text())
    doc["tags"]["prod"] = "v2"
    tags.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    git_out(first, "commit", "-qam", "move prod by hand")
    ok(run, "--repo", first, "push")
    assert ok(run, "--repo", first, "resolve", f"{YOLO}:prod").out == "v2\n"
    assert tag_refs(bare_remote.path) == tag_refs(first)
    assert f"{YOLO}@v2" in git_out(bare_remote.path, "cat-file", "-p",
                                   f"refs/modelbox/tags/{YOLO}/prod")


# -- bad remotes: one line, exit 1 -------------------------------------------------------
def _dead_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("kind", ["missing path", "plain folder", "git port", "http port",
                                  "http no repo", "git no repo"])
@pytest.mark.smoke
@pytest.mark.usefixtures("git_transport")
def test_a_bad_remote_is_one_clear_line(
    kind: str, git_servers: Servers, tmp_path: Path, run: Run
) -> None:
    (tmp_path / "plain").mkdir()
    url, words = {
        "missing path": (str(tmp_path / "nowhere.git"), "not a Git repository"),
        "plain folder": (str(tmp_path / "plain"), "not a Git repository"),
        "git port": (f"git://127.0.0.1:{_dead_port()}/x.git", "cannot reach"),
        "http port": (f"http://127.0.0.1:{_dead_port()}/x.git", "cannot reach"),
        "http no repo": (f"http://127.0.0.1:{git_servers.http_port}/none.git", "none.git"),
        "git no repo": (f"git://127.0.0.1:{git_servers.git_port}/none.git", "none.git"),
    }[kind]
    reg = make_registry(run, tmp_path / "reg")
    before = _refs(reg)
    for argv in (("--repo", reg, "push", url), ("--repo", reg, "pull", url),
                 ("--repo", reg, "status", url), ("clone", url, tmp_path / "c")):
        one_error_line(run(*argv), words)
        assert not (tmp_path / "c").exists()
    assert _refs(reg) == before


def test_a_url_that_looks_like_an_option_is_refused(tmp_path: Path, run: Run) -> None:
    reg = make_registry(run, tmp_path / "reg")
    one_error_line(run("--repo", reg, "push", "--", "--upload-pack=/bin/touch"),
                   "not a repository URL")


def test_an_unknown_transport_switch_is_one_line(
    tmp_path: Path, run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    reg = make_registry(run, tmp_path / "reg")
    monkeypatch.setenv("MODELBOX_GIT_TRANSPORT", "svn")
    one_error_line(run("--repo", reg, "push", str(tmp_path)), "MODELBOX_GIT_TRANSPORT",
                   "auto, git, dulwich")


def test_without_git_on_path_dulwich_does_the_work_unless_git_is_demanded(
    bare_remote: BareRemote, tmp_path: Path, run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    reg = make_registry(run, tmp_path / "reg")
    with_git = os.environ["PATH"]
    empty = tmp_path / "empty-path"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.setenv("MODELBOX_GIT_TRANSPORT", "git")
    one_error_line(run("--repo", reg, "push", bare_remote.urls["file"]),
                   "MODELBOX_GIT_TRANSPORT=git", "PATH")
    monkeypatch.delenv("MODELBOX_GIT_TRANSPORT")
    ok(run, "--repo", reg, "push", bare_remote.urls["file"])
    ok(run, "clone", bare_remote.urls["file"], tmp_path / "c")
    assert ok(run, "--repo", tmp_path / "c", "resolve", f"{YOLO}:prod").out == "v1\n"
    monkeypatch.setenv("PATH", with_git)  # git_out needs git again
    assert tag_refs(tmp_path / "c") == tag_refs(reg) != ""
    assert_clean(tmp_path / "c")


@pytest.mark.usefixtures("git_transport")
def test_a_pointer_committed_with_plain_git_has_its_object_pushed(
    bare_remote: BareRemote, tmp_path: Path, run: Run
) -> None:
    first = make_registry(run, tmp_path / "first", bare_remote.urls["file"])
    ok(run, "--repo", first, "push")
    donor = make_registry(run, tmp_path / "donor")
    (tmp_path / "model.pt").write_bytes(os.urandom(3000))
    ok(run, "--repo", donor, "artifact", "add", f"{YOLO}@v2", tmp_path / "model.pt")
    for pointer in donor.glob("models/**/_artifacts/*.json"):
        target = first / pointer.relative_to(donor)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(pointer.read_bytes())
    git_out(first, "add", "-A")
    git_out(first, "commit", "-qm", "add a pointer by hand")
    before = _refs(bare_remote.path)
    one_error_line(run("--repo", first, "push"), "nothing was pushed", "1 object(s)")
    assert _refs(bare_remote.path) == before

    shutil.copytree(donor / ".git/modelbox/store", first / ".git/modelbox/store",
                    dirs_exist_ok=True)
    result = json.loads(ok(run, "--repo", first, "push", "--json").out)
    assert result["objects_uploaded"] == 1
    other = tmp_path / "other"
    ok(run, "clone", bare_remote.urls["file"], other)
    ok(run, "--repo", other, "get", f"{YOLO}@v2", "-o", tmp_path / "out")
    assert (tmp_path / "out" / "model.pt").read_bytes() == (tmp_path / "model.pt").read_bytes()


def test_a_conflict_on_a_later_attempt_undoes_the_earlier_merge(
    bare_remote: BareRemote, tmp_path: Path, run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The remote moves twice during one push: the first move merges cleanly, the second
    conflicts. The push stops and takes back its first merge too.

    The second move is made by the remote itself, by a pack-objects hook (honoured from
    the global config, which the tests own) that moves main once the first fetch is
    served. Only git's transport runs upload-pack, and with it the hook.
    """
    monkeypatch.setenv("MODELBOX_GIT_TRANSPORT", "git")
    url = bare_remote.urls["file"]
    first = make_registry(run, tmp_path / "first", url)
    ok(run, "--repo", first, "push")
    second, third = tmp_path / "second", tmp_path / "third"
    ok(run, "clone", url, second)
    ok(run, "--repo", first, "tag", f"{YOLO}@v2", "staging")
    ok(run, "--repo", first, "push")  # the first move
    ok(run, "clone", url, third)
    ok(run, "--repo", third, "version", "create", YOLO, "v3")
    ok(run, "--repo", third, "tag", f"{YOLO}@v3", "prod")
    git_out(third, "push", "-q", url, "main:refs/heads/side")
    conflicting = git_out(third, "rev-parse", "main").strip()

    hook = tmp_path / "pack-objects-hook"
    hook.write_text(
        '#!/bin/sh\n"$@"\nstatus=$?\n'
        f'if [ ! -e "{tmp_path}/moved" ]; then touch "{tmp_path}/moved"; '
        f"git update-ref refs/heads/main {conflicting}; fi\nexit $status\n"
    )
    hook.chmod(hook.stat().st_mode | stat.S_IXUSR)
    git_out(tmp_path, "config", "--global", "uploadpack.packObjectsHook", str(hook))

    ok(run, "--repo", second, "tag", f"{YOLO}@v2", "prod")
    before = _state(second)
    one_error_line(run("--repo", second, "push"), "_tags.json", "git pull")
    assert (tmp_path / "moved").exists()  # the remote did move a second time
    assert _state(second) == before
    assert_clean(second)
    assert git_out(bare_remote.path, "rev-parse", "main").strip() == conflicting


@pytest.mark.usefixtures("git_transport")
def test_pull_rebuilds_tag_refs_that_are_missing_even_when_packed_away(
    bare_remote: BareRemote, tmp_path: Path, run: Run
) -> None:
    first = make_registry(run, tmp_path / "first", bare_remote.urls["file"])
    ok(run, "--repo", first, "push")
    expected = tag_refs(first)
    git_out(first, "pack-refs", "--all")  # packed refs count as present
    assert "Already up to date" in ok(run, "--repo", first, "pull").out
    assert tag_refs(first) == expected
    git_out(first, "update-ref", "-d", f"refs/modelbox/tags/{YOLO}/prod")
    assert tag_refs(first) == ""
    ok(run, "--repo", first, "pull")
    assert tag_refs(first) == expected
