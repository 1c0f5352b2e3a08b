"""Keeping the repository compact: git's own gc, in the background, under the modelbox lock.

modelbox writes a batch as one pack without deltas (dulwich) and a single write as loose
objects, and nothing used to repack them: a registry of 100,000 versions took 1.4 GB in 21
packs. Now every write that published checks git's thresholds (:func:`due`, ~1 ms: two
folder listings and the config) and, when one is passed, starts a detached maintenance
process (:func:`start`) and returns without waiting for it.

When (git's ``gc --auto`` semantics, with the user's own settings of git's keys):

* ``gc.auto`` <= 0: never (default 6700);
* loose objects: more than ``ceil(gc.auto / 256)`` in ``objects/17`` (git's estimate);
* packs: more than ``gc.autoPackLimit`` packs without a ``.keep`` (default 50), or, since
  modelbox's own packs carry no deltas, the packs other than the largest hold more bytes
  than the largest (and at least 8 MiB); ``gc.autoPackLimit`` <= 0 turns both off.

How (:func:`run`, the process ``python -m modelbox.refs.maintenance GIT_DIR``): at most one
lives per repository (it holds ``.git/modelbox/maintenance.lock``). It waits for a quiet
spell (no writer took or wanted the modelbox lock for :data:`QUIET_SECONDS`), takes the
modelbox lock, looks again (a write journal pending, or nothing due any more: it stops),
removes temporary packs a killed repack left (over an hour old), and runs ``git gc --auto
--aggressive`` with git's default window and depth (``-f``: objects stored whole in one
pack are never tried as deltas of each other otherwise, and modelbox's packs are all
whole). The git processes inherit the lock's descriptor, so the lock is held for as long as
any of them lives, even if this process is killed: git never repacks beside a modelbox
write. A writer that wants the lock meanwhile touches the lock file
(:mod:`modelbox.refs.lock`); within 50 ms the maintenance stops git with SIGTERM (git
removes its own lock and temporary files on it), lets the writer in, and waits for a quiet
spell again, twice as long each time. Without the git CLI, dulwich packs the loose objects
or joins the packs (no deltas: fewer files, not fewer bytes).

Readers take no lock; a pack that a repack removes under a dulwich reader is found again
in the new pack (dulwich rescans the pack folder, as git's readers do).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from dulwich.config import StackedConfig
from dulwich.repo import Repo

from modelbox.refs.lock import lock_path, open_lock, try_lock
from modelbox.refs.repo import GitRepo

DEFAULT_AUTO = 6700
DEFAULT_PACK_LIMIT = 50
QUIET_SECONDS = float(os.environ.get("MODELBOX_MAINTENANCE_QUIET", "2"))
_MIN_UNDELTIFIED = 8 << 20
_POLL = 0.05
_LIFETIME = 3600.0
_STALE_TEMP = 3600.0
_STATE = "modelbox/maintenance.json"
_MARKER = "modelbox/maintenance.lock"
_JOURNAL = "modelbox/journal"
_STARTED: list[subprocess.Popen[bytes]] = []


def _int(config: StackedConfig, section: str, key: str, default: int) -> int:
    """A git integer setting (``10k`` and friends included); a bad value is the default."""
    try:
        raw = config.get((section.encode(),), key.encode()).decode().strip().lower()
    except KeyError:
        return default
    scale = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}.get(raw[-1:], 1)
    try:
        return int(raw[:-1] if scale > 1 else raw) * scale
    except ValueError:
        return default


def _has(config: StackedConfig, section: str, key: str) -> bool:
    try:
        config.get((section.encode(),), key.encode())
    except KeyError:
        return False
    return True


def due(git_dir: Path, config: StackedConfig) -> str | None:
    """Why maintenance should run now (``loose`` or ``packs``), or None."""
    auto = _int(config, "gc", "auto", DEFAULT_AUTO)
    if auto <= 0:
        return None
    limit = _int(config, "gc", "autoPackLimit", DEFAULT_PACK_LIMIT)
    if limit > 0 and _packs_due(git_dir / "objects" / "pack", limit):
        return "packs"
    try:
        names = os.listdir(git_dir / "objects" / "17")
    except OSError:
        return None
    loose = sum(1 for n in names if len(n) == 38 and all(c in "0123456789abcdef" for c in n))
    return "loose" if loose > (auto + 255) // 256 else None


def _packs_due(pack_dir: Path, limit: int) -> bool:
    try:
        names = set(os.listdir(pack_dir))
    except OSError:
        return False
    sizes = []
    for name in names:
        stem = name[: -len(".pack")]
        if name.endswith(".pack") and f"{stem}.idx" in names and f"{stem}.keep" not in names:
            with contextlib.suppress(OSError):
                sizes.append((pack_dir / name).stat().st_size)
    if len(sizes) > limit:
        return True
    rest = sum(sizes) - max(sizes, default=0)
    return rest >= _MIN_UNDELTIFIED and rest > max(sizes, default=0)


def after_write(repo: GitRepo) -> None:
    """Start the background maintenance if a threshold is passed and none runs yet.
    Called by a write once it has published and let go of the lock; never waits."""
    git_dir = repo.common_dir
    if (due(git_dir, repo.config_stack()) is not None and not _backing_off(git_dir)
            and not running(git_dir)):
        start(git_dir)


def _backing_off(git_dir: Path) -> bool:
    """Whether the last maintenance, within the hour, left a threshold still passed (young
    unreachable loose objects git may not prune yet, a pack git keeps): running it again
    after every write would repack for nothing. (git's detached gc waits a day then.)"""
    try:
        state = json.loads((git_dir / _STATE).read_text(encoding="utf-8"))
        return bool(state.get("still_due")) and time.time() - float(state["finished"]) < 3600
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False


def running(git_dir: Path) -> bool:
    """Whether a maintenance process lives for this repository."""
    marker = git_dir / _MARKER
    try:
        fd = os.open(marker, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        return True  # a git dir we cannot write to: nothing to start either
    try:
        return not try_lock(fd)
    finally:
        os.close(fd)


def start(git_dir: Path) -> None:
    """Start :func:`run` for ``git_dir`` as a detached process (its own session, no
    terminal, no output), as git's ``gc --auto`` detaches."""
    # Kept, and reaped by the next start: a long-lived process (a training script writing
    # versions) collects no zombies, and no handle is dropped while its child runs.
    _STARTED[:] = [p for p in _STARTED if p.poll() is None]
    with contextlib.suppress(OSError):  # no process to spare: the next write tries again
        _STARTED.append(subprocess.Popen(
            [sys.executable, "-m", "modelbox.refs.maintenance", str(git_dir)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True, close_fds=True,
        ))


def _mtime(git_dir: Path) -> int:
    try:
        return lock_path(git_dir).stat().st_mtime_ns
    except OSError:
        return 0


def _write_state(git_dir: Path, state: dict[str, object]) -> None:
    path = git_dir / _STATE
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    with contextlib.suppress(OSError):
        tmp.write_text(json.dumps(state, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(tmp, path)


def clear_stale_temporaries(git_dir: Path, age: float = _STALE_TEMP) -> list[str]:
    """Remove the temporary packs a killed repack left in ``objects/pack`` (git's
    ``tmp_pack_*``/``.tmp-*``, dulwich's ``tmp*``) once they are ``age`` seconds old: a live
    writer of one keeps its mtime fresh. Returns the names removed."""
    pack_dir = git_dir / "objects" / "pack"
    removed = []
    try:
        names = os.listdir(pack_dir)
    except OSError:
        return []
    now = time.time()
    for name in names:
        if not (name.startswith("tmp") or name.startswith(".tmp-")):
            continue
        path = pack_dir / name
        with contextlib.suppress(OSError):
            if now - path.stat().st_mtime >= age:
                path.unlink()
                removed.append(name)
    return removed


def _clear_left_gc_pid(git_dir: Path) -> None:
    """Remove the ``gc.pid`` a killed worker of ours left behind. git trusts that file for
    12 hours whenever the pid it names is alive, and pids come round again (32,768 of them
    by default on Linux): its ``gc --auto`` would then quietly do nothing. Only ours: the
    state still says running (the maintenance that wrote it died: this one holds its
    lock) and the file names that run's worker, the ``git gc`` process itself."""
    try:
        state = json.loads((git_dir / _STATE).read_text(encoding="utf-8"))
        worker = int(state["worker"]) if state.get("outcome") == "running" else None
        named = (git_dir / "gc.pid").read_text(encoding="utf-8", errors="replace")
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return
    pid = named.split(" ", 1)[0]
    if worker is not None and pid.isdigit() and int(pid) == worker:
        with contextlib.suppress(OSError):
            (git_dir / "gc.pid").unlink()


def _command(git_dir: Path, reason: str, config: StackedConfig) -> list[str] | None:
    git = shutil.which("git")
    if git is None:
        return None
    overrides = ["-c", "gc.autoDetach=false"]
    if reason == "packs":
        # modelbox's own pack test may be what passed: let git's gc --auto see it too.
        overrides += ["-c", "gc.autoPackLimit=1"]
    if not _has(config, "gc", "aggressiveWindow"):
        overrides += ["-c", "gc.aggressiveWindow=10"]  # git's default pack.window
    if not _has(config, "gc", "aggressiveDepth"):
        overrides += ["-c", "gc.aggressiveDepth=50"]  # git's default pack.depth
    return [git, "--git-dir", str(git_dir), *overrides, "gc", "--auto", "--aggressive",
            "--quiet"]


def _dulwich_work(git_dir: Path, reason: str) -> None:
    """The no-git fallback, run in the worker process: dulwich has no deltas to compute."""
    repo = Repo(str(git_dir))
    try:
        if reason == "packs":
            repo.object_store.repack()
        else:
            repo.object_store.pack_loose_objects()
    finally:
        repo.close()


def _worker(git_dir: Path, reason: str, config: StackedConfig, lock_fd: int,
            log: Path) -> subprocess.Popen[bytes]:
    command = _command(git_dir, reason, config) or [
        sys.executable, "-m", "modelbox.refs.maintenance", "--dulwich", reason, str(git_dir)]
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("GIT_") or k in ("GIT_CONFIG_NOSYSTEM", "GIT_CONFIG_GLOBAL")}
    with open(log, "wb") as out:
        return subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            pass_fds=(lock_fd,), start_new_session=True, env=env, cwd=str(git_dir),
        )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the worker's whole process group (git's repack, pack-objects, a hook),
    SIGKILL if it has not gone in 5 s."""
    for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _config(git_dir: Path) -> StackedConfig:
    repo = Repo(str(git_dir))
    try:
        return repo.get_config_stack()
    finally:
        repo.close()


def run(git_dir: Path, *, quiet: float = QUIET_SECONDS, lifetime: float = _LIFETIME) -> str:
    """The maintenance process's work; returns what happened (``done``, ``not due``,
    ``busy``, ``journal``, ``failed``, ``gave up``) and records it in
    ``.git/modelbox/maintenance.json``."""
    marker_fd = os.open(git_dir / _MARKER, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if not try_lock(marker_fd):
            return "busy"  # another maintenance of this repository lives
        outcome = _run_locked(git_dir, quiet, lifetime)
        still = due(git_dir, _config(git_dir)) if outcome in ("done", "failed") else None
        _write_state(git_dir, {"outcome": outcome, "finished": time.time(),
                               "pid": os.getpid(), "still_due": still})
        return outcome
    finally:
        os.close(marker_fd)


def _run_locked(git_dir: Path, quiet: float, lifetime: float) -> str:
    deadline = time.monotonic() + lifetime
    pause = quiet
    while time.monotonic() < deadline:
        if time.time() - _mtime(git_dir) / 1e9 < pause:
            time.sleep(_POLL)
            continue
        fd = open_lock(git_dir)
        try:
            if not try_lock(fd):
                time.sleep(_POLL)
                continue
            taken = _mtime(git_dir)
            if time.time() - taken / 1e9 < pause:
                continue  # a writer came between the look and the lock
            outcome = _work(git_dir, fd, taken)
        finally:
            os.close(fd)
        if outcome != "yielded":
            return outcome
        pause = min(pause * 2, 300.0)
    return "gave up"


def _work(git_dir: Path, lock_fd: int, taken: int) -> str:
    """Under the modelbox lock: check again, then run the worker until it ends or a writer
    wants the lock (``yielded``)."""
    try:
        if os.listdir(git_dir / _JOURNAL):
            return "journal"  # a write cut short: the next write finishes it first
    except OSError:
        pass
    config = _config(git_dir)
    reason = due(git_dir, config)
    if reason is None:
        return "not due"
    clear_stale_temporaries(git_dir)
    _clear_left_gc_pid(git_dir)
    _write_state(git_dir, {"outcome": "running", "reason": reason, "pid": os.getpid(),
                           "started": time.time()})
    proc = _worker(git_dir, reason, config, lock_fd, git_dir / "modelbox" / "maintenance.log")
    _write_state(git_dir, {"outcome": "running", "reason": reason, "pid": os.getpid(),
                           "worker": proc.pid, "started": time.time()})
    while True:
        try:
            code = proc.wait(_POLL)
            break
        except subprocess.TimeoutExpired:
            pass
        if _mtime(git_dir) != taken:  # a writer is waiting for the lock
            _stop(proc)
            return "yielded"
    return "done" if code == 0 else "failed"


def main(argv: list[str]) -> int:
    if argv[:1] == ["--dulwich"]:
        _dulwich_work(Path(argv[2]), argv[1])
        return 0
    run(Path(argv[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
