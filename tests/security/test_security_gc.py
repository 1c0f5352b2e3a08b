"""gc never deletes what someone still needs (issue 13, "Data loss"): another registry's
objects in a shared store, what git itself keeps (plain tags, linked worktrees, reflogs),
another clone's unpushed commits, and an ``artifact add`` racing gc."""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from hostile import MODELBOX, assert_refused, fingerprint, modelbox

if TYPE_CHECKING:
    from conftest import Git, Run
    from s3server import S3Server

MONTH = 30 * 86400


def objects(store: Path) -> set[str]:
    """The digests in a local store."""
    return {p.parent.name + p.name for p in (store / "sha256").glob("*/*") if p.is_file()}


def backdate(store: Path, seconds: float, *, notes: bool = True) -> None:
    """Pretend the objects (and, with ``notes``, gc's notes) were written ``seconds`` ago."""
    then = time.time() - seconds
    for path in store.rglob("*"):
        if path.is_file() and (notes or path.relative_to(store).parts[0] == "sha256"):
            os.utime(path, (then, then))


def orphan(store: Path, data: bytes) -> str:
    """An unreferenced object in ``store`` (an upload whose commit never came)."""
    from modelbox.objects import open_store

    return open_store(str(store)).put_bytes(data)


def registry(run: Run, path: Path, store: Path | None = None) -> Path:
    """A registry with model ai/m and version v1, on ``store`` if given."""
    assert run("init", path).code == 0
    if store is not None:
        subprocess.run(["git", "-C", str(path), "config", "modelbox.store", str(store)],
                       check=True)
    for argv in (("model", "create", "ai/m"), ("version", "create", "ai/m", "v1")):
        assert run("--repo", path, *argv).code == 0
    return path


def add(run: Run, reg: Path, tmp_path: Path, data: bytes, name: str = "w.pt") -> str:
    source = tmp_path / f"src-{uuid.uuid4().hex[:8]}" / name
    source.parent.mkdir()
    source.write_bytes(data)
    # --replace: several tests put new bytes under one name on purpose (issue 14 item 2).
    result = run("--repo", reg, "artifact", "add", "ai/m@v1", source, "--replace")
    assert result.code == 0, result.err
    import hashlib

    return hashlib.sha256(data).hexdigest()


# -- two registries, one store ------------------------------------------------------------
def test_gc_refuses_a_store_that_another_registry_writes_to(
    run: Run, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    ours = registry(run, tmp_path / "ours", store)
    theirs = registry(run, tmp_path / "theirs", store)
    their_object = add(run, theirs, tmp_path, b"the other team's weights")
    add(run, ours, tmp_path, b"our weights")
    backdate(store, MONTH)  # their claim expired too: only the clone notes tell
    cache = tmp_path / "cache"
    before = fingerprint(store, ours, cache)
    for extra in ((), ("--dry-run",)):
        result = run("--repo", ours, "gc", "--grace", "24", *extra)
        assert_refused(result.code, result.err, str(store), "another registry",
                       "--i-own-this-store")
        assert fingerprint(store, ours, cache) == before
    assert their_object in objects(store)


def test_i_own_this_store_collects_another_registrys_objects_and_says_so(
    run: Run, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    ours = registry(run, tmp_path / "ours", store)
    theirs = registry(run, tmp_path / "theirs", store)
    their_object = add(run, theirs, tmp_path, b"a registry that is gone")
    kept = add(run, ours, tmp_path, b"our weights")
    backdate(store, MONTH)
    result = run("--repo", ours, "gc", "--grace", "24", "--i-own-this-store")
    assert result.code == 0, result.err
    assert "another registry" in result.err
    assert objects(store) == {kept}
    assert their_object not in objects(store)


def test_a_registry_pulled_naming_another_teams_store_cannot_gc_it(
    run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = tmp_path / "store"
    theirs = registry(run, tmp_path / "theirs", store)
    their_object = add(run, theirs, tmp_path, b"theirs")
    monkeypatch.setenv("MODELBOX_STORE", str(store))  # however the store is named
    ours = registry(run, tmp_path / "ours")
    backdate(store, MONTH)
    result = run("--repo", ours, "gc", "--grace", "24")
    assert_refused(result.code, result.err, "another registry")
    assert their_object in objects(store)


@pytest.mark.parametrize("folder", ["claims", "clones"])
def test_a_damaged_note_in_the_store_makes_gc_refuse_rather_than_guess(
    run: Run, tmp_path: Path, folder: str
) -> None:
    store = tmp_path / "store"
    reg = registry(run, tmp_path / "reg", store)
    add(run, reg, tmp_path, b"weights")
    orphan(store, b"an old orphan")
    backdate(store, MONTH)
    (store / folder).mkdir(exist_ok=True)
    (store / folder / "x.json").write_bytes(b"\x1b]0;not json\x07")  # young, unreadable
    before = fingerprint(store, reg)
    result = run("--repo", reg, "gc", "--grace", "24")
    assert_refused(result.code, result.err, f"{folder}/x.json", "delete the file")
    assert fingerprint(store, reg) == before


@pytest.mark.parametrize("setting", [
    ("gc.reflogExpire", "1.year"),
    ("gc.refs/heads/main.reflogExpire", "1.year"),  # git keeps main's log, not HEAD's
    ("gc.reflogExpire", "in a while"),  # unreadable: keep everything
])
def test_gc_keeps_a_reflog_entry_git_would_keep_under_any_expiry_setting(
    run: Run, git: Git, tmp_path: Path, setting: tuple[str, str]
) -> None:
    reg = registry(run, tmp_path / "reg")
    store = reg / ".git" / "modelbox" / "store"
    digest = add(run, reg, tmp_path, b"dropped 100 days ago")
    git("reset", "-q", "--hard", "HEAD~1", cwd=reg)
    git("config", "gc.reflogExpire", "now", cwd=reg)
    git("config", *setting, cwd=reg)
    _age_reflogs(reg, 100 * 86400)  # older than git's default 90 days
    backdate(store, MONTH)
    assert run("--repo", reg, "gc", "--grace", "24").code == 0
    assert digest in objects(store)


def _age_reflogs(reg: Path, seconds: float) -> None:
    """Rewrite every reflog entry's time ``seconds`` earlier."""
    for log in (reg / ".git" / "logs").rglob("*"):
        if log.is_file():
            lines = []
            for line in log.read_text().splitlines():
                head, tab, message = line.partition("\t")
                parts = head.split(" ")
                parts[-2] = str(int(parts[-2]) - int(seconds))
                lines.append(" ".join(parts) + tab + message)
            log.write_text("\n".join(lines) + "\n")


def test_a_note_writer_killed_mid_write_leaves_a_temp_file_that_breaks_nothing(
    run: Run, tmp_path: Path
) -> None:
    """A local store writes each note to ``.mbtmp-*`` beside it, then renames: a writer
    killed in between (or one caught mid-write by a listing) leaves such a file."""
    store = tmp_path / "store"
    reg = registry(run, tmp_path / "reg", store)
    add(run, reg, tmp_path, b"weights")
    old = orphan(store, b"an old orphan")
    for folder in ("claims", "clones", "gc"):
        (store / folder).mkdir(exist_ok=True)
        (store / folder / f".mbtmp-host-1-abcd-{folder}.json").write_bytes(b"{")
    backdate(store, MONTH)
    add(run, reg, tmp_path, b"more weights", "more.pt")  # does not wait for a dead gc
    result = run("--repo", reg, "gc", "--grace", "24")
    assert result.code == 0, result.err
    assert old not in objects(store)


@pytest.mark.parametrize(("value", "seconds"), [
    ("90.days.ago", 90 * 86400), ("2 weeks", 14 * 86400), ("1.hour", 3600), ("now", 0.0),
    ("never", None), ("false", None), ("yesterday", None), ("", None),
])
def test_reflog_expiry_is_read_like_git_and_anything_unclear_keeps_everything(
    value: str, seconds: float | None
) -> None:
    from modelbox.refs.roots import parse_expiry

    assert parse_expiry(value) == seconds


# -- what git keeps -------------------------------------------------------------------------
def _drop_last_commit(git: Git, reg: Path) -> None:
    """Move the branch back one commit and forget every reflog entry."""
    git("reset", "-q", "--hard", "HEAD~1", cwd=reg)
    git("reflog", "expire", "--expire=now", "--expire-unreachable=now", "--all", cwd=reg)


@pytest.mark.parametrize("walk", ["git", "python"])
@pytest.mark.parametrize("annotated", [False, True], ids=["lightweight", "annotated"])
def test_gc_keeps_what_a_plain_git_tag_reaches(
    run: Run, git: Git, tmp_path: Path, annotated: bool, walk: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reg = registry(run, tmp_path / "reg")
    store = reg / ".git" / "modelbox" / "store"
    digest = add(run, reg, tmp_path, b"release 1 weights")
    git("tag", *(["-a", "-m", "release"] if annotated else []), "release-1", cwd=reg)
    _drop_last_commit(git, reg)
    backdate(store, MONTH)
    if walk == "python":  # no git CLI: gc walks the history itself
        monkeypatch.setenv("PATH", str(tmp_path / "no-git-here"))
    result = run("--repo", reg, "gc", "--grace", "24")
    assert result.code == 0, result.err
    assert digest in objects(store)


def test_gc_keeps_what_a_linked_worktrees_detached_head_reaches(
    run: Run, git: Git, tmp_path: Path
) -> None:
    reg = registry(run, tmp_path / "reg")
    store = reg / ".git" / "modelbox" / "store"
    digest = add(run, reg, tmp_path, b"checked out elsewhere")
    git("worktree", "add", "-q", "--detach", tmp_path / "side", "HEAD", cwd=reg)
    _drop_last_commit(git, reg)
    backdate(store, MONTH)
    dry = run("--repo", reg, "gc", "--grace", "24", "--dry-run")
    assert "1 of linked worktrees" in dry.out
    assert run("--repo", reg, "gc", "--grace", "24").code == 0
    assert digest in objects(store)


def test_gc_without_history_still_keeps_the_tips_of_plain_tags_and_worktrees(
    run: Run, git: Git, tmp_path: Path
) -> None:
    reg = registry(run, tmp_path / "reg")
    store = reg / ".git" / "modelbox" / "store"
    tagged = add(run, reg, tmp_path, b"tagged", "t.pt")
    git("tag", "release-1", cwd=reg)
    _drop_last_commit(git, reg)
    checked_out = add(run, reg, tmp_path, b"checked out", "c.pt")
    git("worktree", "add", "-q", "--detach", tmp_path / "side", "HEAD", cwd=reg)
    _drop_last_commit(git, reg)
    backdate(store, MONTH)
    assert run("--repo", reg, "gc", "--grace", "24", "--no-history").code == 0
    assert {tagged, checked_out} <= objects(store)


def test_gc_keeps_what_the_reflog_reaches_after_reset_hard(
    run: Run, git: Git, tmp_path: Path
) -> None:
    reg = registry(run, tmp_path / "reg")
    store = reg / ".git" / "modelbox" / "store"
    first = add(run, reg, tmp_path, b"first")
    second = add(run, reg, tmp_path, b"second")
    git("reset", "-q", "--hard", "HEAD~2", cwd=reg)  # both adds only in the reflog now
    backdate(store, MONTH)
    dry = run("--repo", reg, "gc", "--grace", "24", "--dry-run")
    assert "reflog" in dry.out and "90 days" in dry.out and "(24 hours)" in dry.out
    assert run("--repo", reg, "gc", "--grace", "24").code == 0
    assert {first, second} <= objects(store)
    git("reset", "-q", "--hard", "HEAD@{1}", cwd=reg)  # what git promises: the undo works
    out = tmp_path / "out"
    assert run("--repo", reg, "get", "ai/m@v1", "-o", out).code == 0


def test_gc_honours_an_expired_reflog_like_git(run: Run, git: Git, tmp_path: Path) -> None:
    reg = registry(run, tmp_path / "reg")
    store = reg / ".git" / "modelbox" / "store"
    digest = add(run, reg, tmp_path, b"dropped long ago")
    git("reset", "-q", "--hard", "HEAD~1", cwd=reg)
    git("config", "gc.reflogExpire", "now", cwd=reg)
    backdate(store, MONTH)
    assert run("--repo", reg, "gc", "--grace", "24").code == 0
    assert digest not in objects(store)  # what git gc would drop, modelbox gc drops


def test_gc_keeps_what_a_staged_pointer_names(run: Run, git: Git, tmp_path: Path) -> None:
    """git gc keeps the blobs of the index: a pointer staged by hand for a plain git commit
    (here, one restored from an old commit) keeps its object too."""
    reg = registry(run, tmp_path / "reg")
    store = reg / ".git" / "modelbox" / "store"
    digest = add(run, reg, tmp_path, b"restored by hand")
    pointer = "models/ai/m/_versions/v1/_artifacts/w.pt.json"
    assert (reg / pointer).is_file()
    _drop_last_commit(git, reg)
    git("checkout", "ORIG_HEAD", "--", pointer, cwd=reg)  # staged, not committed yet
    git("reflog", "expire", "--expire=now", "--all", cwd=reg)
    backdate(store, MONTH)
    assert run("--repo", reg, "gc", "--grace", "24").code == 0
    assert digest in objects(store)


# -- another clone's unpushed commit --------------------------------------------------------
@pytest.fixture
def clones(run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path, Path]:
    """Clones A and B of one bare remote, sharing a folder store: (A, B, store)."""
    store = tmp_path / "shared-store"
    monkeypatch.setenv("MODELBOX_STORE", str(store))
    seed = registry(run, tmp_path / "seed")
    subprocess.run(["git", "clone", "-q", "--bare", str(seed), str(tmp_path / "remote.git")],
                   check=True)
    a, b = tmp_path / "a", tmp_path / "b"
    for clone in (a, b):
        assert run("clone", tmp_path / "remote.git", clone).code == 0
    return a, b, store


def test_an_unpushed_commit_in_another_clone_keeps_its_old_object(
    run: Run, tmp_path: Path, clones: tuple[Path, Path, Path]
) -> None:
    a, b, store = clones
    digest = orphan(store, b"uploaded last month, committed today")
    backdate(store, MONTH)
    assert add(run, b, tmp_path, b"uploaded last month, committed today") == digest
    backdate(store, MONTH, notes=False)  # the object is old; B's claim is today's
    dry = run("--repo", a, "gc", "--grace", "24", "--dry-run")
    assert "1 claimed" in dry.out and "other clone" in dry.out
    assert run("--repo", a, "gc", "--grace", "24").code == 0
    assert digest in objects(store)
    pushed = run("--repo", b, "push")
    assert pushed.code == 0, pushed.err


def test_a_pushed_commit_another_clone_has_not_fetched_keeps_its_object(
    run: Run, tmp_path: Path, clones: tuple[Path, Path, Path]
) -> None:
    a, b, store = clones
    digest = add(run, b, tmp_path, b"added last month, pushed today")
    backdate(store, MONTH)  # the add's claim expired while B sat on the commit
    assert run("--repo", b, "push").code == 0  # the push claims it afresh
    assert run("--repo", a, "gc", "--grace", "24").code == 0  # A has not fetched it
    assert digest in objects(store)
    assert run("--repo", a, "pull").code == 0
    assert run("--repo", a, "get", "ai/m@v1", "-o", tmp_path / "out").code == 0


# -- gc racing artifact add -----------------------------------------------------------------
def _race(reg: Path, tmp_path: Path, env: dict[str, str], offsets: list[float],
          grace_hours: float, settle: Callable[[], None]) -> list[str]:
    """Start ``artifact add`` and ``gc`` as two processes ``offset`` seconds apart (add
    first when positive), once per offset, each time re-adding a different unreferenced
    object older than the grace period (``settle`` ages them); return the digests the
    branch names but the store lacks."""
    import hashlib

    from modelbox.objects import open_store

    store = open_store(env["MODELBOX_STORE"])
    sources = []
    for n in range(len(offsets)):
        data = f"race {n} {uuid.uuid4().hex}".encode()
        source = tmp_path / f"race-{n}" / f"w{n}.pt"
        source.parent.mkdir()
        source.write_bytes(data)
        assert store.put_bytes(data) == hashlib.sha256(data).hexdigest()
        sources.append((source, hashlib.sha256(data).hexdigest()))
    settle()
    for (source, _), offset in zip(sources, offsets, strict=True):
        adding = [MODELBOX, "--repo", str(reg), "artifact", "add", "ai/m@v1", str(source)]
        collecting = [MODELBOX, "--repo", str(reg), "gc", "--grace", str(grace_hours)]
        first, second = (adding, collecting) if offset >= 0 else (collecting, adding)
        procs = [subprocess.Popen(first, env=env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE)]
        time.sleep(abs(offset))
        procs.append(subprocess.Popen(second, env=env, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.PIPE))
        errors = [proc.communicate(timeout=120)[1].decode() for proc in procs]
        assert [proc.returncode for proc in procs] == [0, 0], errors
    listed = modelbox("--repo", reg, "artifact", "list", "ai/m@v1", env=env)
    assert listed.code == 0, listed.err
    named = [digest for _, digest in sources if digest in listed.out]
    assert len(named) == len(offsets)  # every add committed its pointer
    return sorted(store.missing(named))


OFFSETS = [round(-0.1 + 0.025 * n, 3) for n in range(12)]  # where the window was seen


@pytest.mark.stress
def test_a_committed_pointer_never_names_an_object_a_racing_gc_deleted(
    run: Run, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    reg = registry(run, tmp_path / "reg", store)
    env = {**os.environ, "MODELBOX_STORE": str(store)}
    assert _race(reg, tmp_path, env, OFFSETS, 24, lambda: backdate(store, MONTH)) == []


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_add_and_gc_queued_behind_another_writer_leave_no_dangling_pointer(
    tmp_path: Path, kind: str, request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The race made certain: a third writer holds the registry's lock while the add has
    found its object present and waits to commit, and gc, its references read, waits to
    archive; then both go."""
    import hashlib

    from modelbox.objects import open_store
    from modelbox.refs import locked

    if kind == "s3":
        server: S3Server = request.getfixturevalue("s3_server")
        server.create_bucket("gc-race")
        for name, value in server.env().items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("MODELBOX_STORE", f"s3://gc-race/{uuid.uuid4().hex}")
    else:
        monkeypatch.setenv("MODELBOX_STORE", str(tmp_path / "store"))
    env = dict(os.environ)
    reg = tmp_path / "reg"
    for argv in (("init", reg), ("--repo", reg, "model", "create", "ai/m"),
                 ("--repo", reg, "version", "create", "ai/m", "v1")):
        assert modelbox(*argv, env=env).code == 0
    store = open_store(env["MODELBOX_STORE"])
    grace = 6.0  # seconds, for S3: its objects age for real
    sources = []
    for n in range(2):
        source = tmp_path / f"w{n}.pt"
        source.write_bytes(f"queued {n} {uuid.uuid4().hex}".encode())
        sources.append((source, store.put_bytes(source.read_bytes())))
    if kind == "s3":
        time.sleep(grace + 0.5)
    else:
        backdate(tmp_path / "store", MONTH)
    for n, (source, _) in enumerate(sources):
        adding = [MODELBOX, "--repo", str(reg), "artifact", "add", "ai/m@v1", str(source)]
        collecting = [MODELBOX, "--repo", str(reg), "gc", "--grace", str(grace / 3600)]
        procs = []
        with locked(reg / ".git"):
            for command in (adding, collecting) if n == 0 else (collecting, adding):
                procs.append(subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                                              stderr=subprocess.PIPE))
                time.sleep(0.3)
            time.sleep(2.5)  # both have started: the add checked the store, gc planned
        errors = [proc.communicate(timeout=120)[1].decode() for proc in procs]
        assert [proc.returncode for proc in procs] == [0, 0], errors
    listed = modelbox("--repo", reg, "artifact", "list", "ai/m@v1", env=env).out
    assert all(digest in listed for _, digest in sources)
    assert store.missing([digest for _, digest in sources]) == set()
    assert hashlib.sha256(sources[0][0].read_bytes()).hexdigest() == sources[0][1]


def test_an_add_waits_for_the_gc_batch_in_flight_and_puts_back_what_it_deleted(
    run: Run, tmp_path: Path
) -> None:
    """The other half of the race: a gc batch that read the claims just before the add
    wrote its own deletes the object right after the add committed. The add sees that
    batch's ``gc/`` note, waits for the batch to end, and uploads the object again."""
    import threading

    from modelbox import claims
    from modelbox.objects import open_store
    from modelbox.refs import GitRepo

    store_path = tmp_path / "store"
    reg = registry(run, tmp_path / "reg", store_path)
    store = open_store(str(store_path))
    data = b"deleted by a batch in flight"
    digest = orphan(store_path, data)
    backdate(store_path, MONTH)
    repo = GitRepo.open(reg)
    head = repo.ref("refs/heads/main")
    gc_clone = claims.Clone("0" * 32, "", "elsewhere:/gc")
    done = threading.Event()

    def batch_in_flight() -> None:
        with claims.Deleting(store, gc_clone) as note:
            note.next_batch()  # its claims were read: the add's claim is not among them
            deadline = time.monotonic() + 60
            while GitRepo.open(reg).ref("refs/heads/main") == head:  # the add committed
                assert time.monotonic() < deadline
                time.sleep(0.005)
            time.sleep(0.3)  # a slow batch: the add is done with its commit by now
            store.delete([digest])
        done.set()

    gc_side = threading.Thread(target=batch_in_flight)
    gc_side.start()
    try:
        assert add(run, reg, tmp_path, data) == digest
    finally:
        gc_side.join(timeout=60)
    assert done.is_set()
    assert digest in objects(store_path)
