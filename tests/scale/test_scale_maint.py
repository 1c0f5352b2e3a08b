"""The repository's background maintenance (modelbox/refs/maintenance.py): git's own gc,
started by a write once git's thresholds are passed, run under the modelbox lock, yielding
to writers, and harmless when killed.

Real registries, the real git CLI (its ``pre-auto-gc`` hook holds a gc at a known point),
real detached processes.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from modelbox import ModelBoxClient
from modelbox.refs.lock import open_lock, try_lock

_CLI = [sys.executable, "-c", "import sys; from modelbox.cli import main; sys.exit(main())"]

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX locks and signals")


@pytest.fixture(autouse=True)
def _short_quiet(monkeypatch: pytest.MonkeyPatch) -> None:
    # The detached maintenance inherits this: a quiet spell of 0.2 s instead of 2 s.
    monkeypatch.setenv("MODELBOX_MAINTENANCE_QUIET", "0.2")


def _packs(path: Path) -> list[str]:
    return sorted(n for n in os.listdir(path / ".git" / "objects" / "pack") if n.endswith(".pack"))


def _state(path: Path) -> dict[str, object] | None:
    try:
        data = json.loads((path / ".git" / "modelbox" / "maintenance.json").read_text())
    except FileNotFoundError:
        return None
    assert isinstance(data, dict)
    return data


def _wait_for(path: Path, outcome: str, timeout: float = 20.0) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = _state(path)
        if state is not None and state.get("outcome") == outcome:
            return state
        time.sleep(0.05)
    raise AssertionError(f"maintenance never reached {outcome!r}: {_state(path)}")


def _wait_file(path: Path, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def _batches(client: ModelBoxClient, count: int, start: int = 0) -> None:
    """``count`` batches of 10 versions each: one pack (no deltas) per batch."""
    model = client.model("team/m")
    for b in range(start, start + count):
        with client.batch():
            for i in range(10):
                model.new_model_version(f"v{b}-{i}")


@pytest.fixture
def reg(tmp_path: Path) -> Path:
    path = tmp_path / "registry"
    client = ModelBoxClient(path, create=True)
    client.new_model("m", "me@example.com", "team", "t")
    client.close()
    return path


def _config(git: object, path: Path, *pairs: str) -> None:
    for pair in pairs:
        key, value = pair.split("=")
        subprocess.run(["git", "-C", str(path), "config", key, value], check=True)


def test_maintenance_runs_once_the_pack_limit_is_passed_and_not_before(reg: Path) -> None:
    _config(None, reg, "gc.autoPackLimit=4")
    client = ModelBoxClient(reg)
    before = len(_packs(reg))
    _batches(client, 4 - before)
    time.sleep(1.0)  # what a started maintenance would have needed to show itself
    assert _state(reg) is None
    assert len(_packs(reg)) == 4
    _batches(client, 1, start=10)  # the fifth pack: more than gc.autoPackLimit
    _wait_for(reg, "done")
    assert len(_packs(reg)) == 1
    assert not list((reg / ".git" / "objects").glob("[0-9a-f][0-9a-f]/*"))  # loose ones too
    assert client.model("team/m").version("v10-9").id.endswith("v10-9")
    client.close()
    subprocess.run(["git", "-C", str(reg), "fsck", "--no-dangling"], check=True,
                   capture_output=True)


def test_maintenance_runs_once_loose_objects_pass_gc_auto(reg: Path) -> None:
    # gc.auto=1: git's estimate says "too many" at the second loose object in objects/17.
    _config(None, reg, "gc.auto=1", "gc.autoPackLimit=0")
    client = ModelBoxClient(reg)
    model = client.model("team/m")
    sample = reg / ".git" / "objects" / "17"
    n = 0
    while len(os.listdir(sample)) < 2 if sample.exists() else True:
        assert _state(reg) is None  # below the threshold: nothing ran
        model.new_model_version(f"s{n}")  # one publish each: loose objects
        n += 1
        assert n < 400
    _wait_for(reg, "done")
    assert not sample.exists() or not os.listdir(sample)
    client.close()


def test_gc_auto_zero_is_respected(reg: Path) -> None:
    _config(None, reg, "gc.auto=0", "gc.autoPackLimit=1")
    client = ModelBoxClient(reg)
    _batches(client, 3)
    time.sleep(1.0)
    assert _state(reg) is None
    assert len(_packs(reg)) >= 3
    client.close()


def _blocking_hook(path: Path, entered: Path, once: bool = True) -> None:
    """A ``pre-auto-gc`` hook: git's gc --auto stops there (for 60 s) the first time."""
    hook = path / ".git" / "hooks" / "pre-auto-gc"
    hook.parent.mkdir(exist_ok=True)
    guard = f'[ -e "{entered}" ] && exit 0\n' if once else ""
    hook.write_text(f'#!/bin/sh\n{guard}touch "{entered}"\nsleep 60\nexit 0\n')
    hook.chmod(0o755)


def test_a_write_during_maintenance_does_not_wait_for_it_and_is_kept(
    reg: Path, tmp_path: Path
) -> None:
    entered = tmp_path / "entered"
    _blocking_hook(reg, entered)
    _config(None, reg, "gc.autoPackLimit=2")
    client = ModelBoxClient(reg)
    _batches(client, 3)
    _wait_file(entered)  # git's gc runs (held in its hook) under the modelbox lock
    fd = open_lock(reg / ".git")
    try:
        assert not try_lock(fd), "the maintenance repacks without the modelbox lock"
    finally:
        os.close(fd)
    started = time.monotonic()
    proc = subprocess.run(
        [*_CLI, "--repo", str(reg), "version", "create",
         "team/m", "during"],
        capture_output=True, text=True, check=False,
        env={**os.environ, "MODELBOX_LOCK_TIMEOUT": "30"},
    )
    waited = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr
    assert waited < 15, f"the write waited {waited:.1f} s for the maintenance"
    state = _wait_for(reg, "done")  # it tried again once the registry was quiet
    assert state["outcome"] == "done"
    assert len(_packs(reg)) == 1
    client.close()
    client = ModelBoxClient(reg)
    assert client.model("team/m").version("during").id.endswith("during")
    client.close()
    check = subprocess.run([*_CLI, "--repo", str(reg), "check"],
                           capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stdout + check.stderr


def test_a_killed_maintenance_leaves_a_usable_repository(reg: Path, tmp_path: Path) -> None:
    entered = tmp_path / "entered"
    _blocking_hook(reg, entered)
    _config(None, reg, "gc.autoPackLimit=2")
    pack_dir = reg / ".git" / "objects" / "pack"
    # What a repack killed inside pack-objects leaves, long ago.
    stale = pack_dir / "tmp_pack_Xa1b2c"
    stale.write_bytes(b"PACK partial")
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    client = ModelBoxClient(reg)
    _batches(client, 3)
    _wait_file(entered)
    state = _wait_for(reg, "running")
    for _ in range(100):
        if "worker" in state:
            break
        time.sleep(0.05)
        state = _state(reg) or {}
    os.killpg(int(str(state["worker"])), signal.SIGKILL)  # git gc and its hook
    os.kill(int(str(state["pid"])), signal.SIGKILL)  # the maintenance process
    # Usable at once: the lock died with its holders, a write goes through.
    started = time.monotonic()
    model = client.model("team/m")
    model.new_model_version("after-kill")
    assert time.monotonic() - started < 10
    subprocess.run(["git", "-C", str(reg), "fsck", "--no-dangling"], check=True,
                   capture_output=True)
    # The next maintenance (started by that write) completes and clears the leftovers.
    _wait_for(reg, "done")
    assert not stale.exists()
    assert len(_packs(reg)) == 1
    assert model.version("after-kill").id.endswith("after-kill")
    client.close()


@pytest.mark.parametrize("whose", ["our-killed-worker", "someone-else"])
def test_a_gc_pid_a_killed_worker_left_does_not_hold_back_the_next_gc(
    reg: Path, whose: str
) -> None:
    # git trusts gc.pid for 12 hours while the pid it names is alive, and pids come round
    # again (32,768 of them here): the file a killed `git gc` left, naming a pid some
    # other process now has, made every later `gc --auto` quietly do nothing. Only the
    # file naming our own dead run's worker goes; a live gc of someone else's stays.
    git_dir = reg / ".git"
    _config(None, reg, "gc.autoPackLimit=2")
    dead = subprocess.Popen(["true"])
    dead.wait()
    alive = subprocess.Popen(["sleep", "60"])  # holds the pid the worker had
    try:
        pid_file = f"{alive.pid} {socket.gethostname()}"
        (git_dir / "gc.pid").write_text(pid_file)
        worker = alive.pid if whose == "our-killed-worker" else dead.pid
        (git_dir / "modelbox" / "maintenance.json").write_text(json.dumps(
            {"outcome": "running", "reason": "packs", "pid": dead.pid, "worker": worker,
             "started": time.time() - 60}))
        client = ModelBoxClient(reg)
        _batches(client, 3)
        _wait_for(reg, "done")
        if whose == "our-killed-worker":
            assert len(_packs(reg)) == 1
            assert not (git_dir / "gc.pid").exists()  # git removes its own at the end
        else:
            assert len(_packs(reg)) > 1  # git held back, as it must for a live gc
            assert (git_dir / "gc.pid").read_text() == pid_file
        client.close()
    finally:
        alive.kill()
        alive.wait()


def test_the_history_check_of_a_long_history_finds_a_bad_commit_in_every_part(
    tmp_path: Path,
) -> None:
    """A history long enough to be diffed in parts (one git diff-tree per core): a symbolic
    link added by an old commit (the last part, newest first) is still refused."""
    from modelbox.errors import UnsafePathError
    from modelbox.refs import GitRepo, incoming

    path = tmp_path / "long.git"
    subprocess.run(["git", "init", "-q", "--bare", str(path)], check=True)
    lines = []
    for i in range(10_200):
        lines += ["commit refs/heads/main", f"mark :{i + 1}",
                  f"committer T <t@e> {1_700_000_000 + i} +0000", "data 1", "c"]
        if i:
            lines.append(f"from :{i}")
        lines += [f"M 100644 inline models/f{i % 50}.json", f"data {len(str(i))}", str(i)]
        if i == 10:
            lines += ["M 120000 inline models/evil", "data 4", "/etc"]
        if i == 11:
            lines.append("D models/evil")  # gone from the tip: only the history holds it
    subprocess.run(["git", "--git-dir", str(path), "fast-import", "--quiet"],
                   input="\n".join(lines) + "\n", text=True, check=True)
    repo = GitRepo.open(path)
    try:
        head = repo.ref("refs/heads/main")
        assert head is not None
        with pytest.raises(UnsafePathError, match="models/evil"):
            incoming.check_commits(repo, [head], [], "the remote")
    finally:
        repo.close()


def test_a_threshold_gc_cannot_clear_does_not_restart_it_after_every_write(reg: Path) -> None:
    """Young unreachable loose objects stay loose through git's gc (two weeks' grace):
    the maintenance that found them says so, and the next writes start no other."""
    import hashlib

    _config(None, reg, "gc.auto=1", "gc.autoPackLimit=0")
    made, n = 0, 0
    while made < 3:  # three unreachable blobs whose ids start with 17
        data = f"orphan {n}".encode()
        n += 1
        if hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest().startswith("17"):
            subprocess.run(["git", "-C", str(reg), "hash-object", "-w", "--stdin"],
                           input=data, check=True, capture_output=True)
            made += 1
    client = ModelBoxClient(reg)
    model = client.model("team/m")
    model.new_model_version("first")
    first = _wait_for(reg, "done")
    assert first["still_due"] == "loose"
    model.new_model_version("second")
    model.new_model_version("third")
    time.sleep(1.0)
    assert _state(reg) == first  # no maintenance ran again
    client.close()


def test_without_git_dulwich_joins_the_packs(reg: Path, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    _config(None, reg, "gc.autoPackLimit=2")
    empty = tmp_path / "no-git-here"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))  # the maintenance inherits it: no git CLI
    client = ModelBoxClient(reg)
    _batches(client, 3)
    _wait_for(reg, "done")
    assert len(_packs(reg)) == 1
    assert client.model("team/m").version("v2-9").id.endswith("v2-9")
    client.close()
