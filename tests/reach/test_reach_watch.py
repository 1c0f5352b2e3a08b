"""Issue 16, item 4: ``modelbox --repo URL watch M:TAG --exec CMD`` runs CMD when the tag
moves. Real processes against a real bare remote (``file://``, ``git://`` through the
collaboration tests' ``git daemon``)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from collab.collab_helpers import ok
from collab.collab_servers import BareRemote, bare_remote, git_servers
from hostile import MODELBOX, assert_refused

if TYPE_CHECKING:
    from conftest import Run

__all__ = ["bare_remote", "git_servers"]  # fixtures, imported to be used here

M = "team/m"
# Each call writes one line per variable it was given, then exits with $1 (0 by default).
RECORD = ("sh -c 'echo \"$MODELBOX_REF $MODELBOX_VERSION $MODELBOX_PREVIOUS_VERSION "
          "$MODELBOX_MODEL $MODELBOX_TAG $MODELBOX_COMMIT\" >> {log}; exit {code}'")


@pytest.fixture
def source(tmp_path: Path, run: Run, bare_remote: BareRemote) -> Path:
    """``team/m@v1`` tagged ``staging``, ``@v2`` and ``@v3`` untagged, pushed."""
    reg = tmp_path / "source"
    ok(run, "init", reg)
    ok(run, "--repo", reg, "model", "create", M)
    for version in ("v1", "v2", "v3"):
        ok(run, "--repo", reg, "version", "create", M, version)
    ok(run, "--repo", reg, "tag", f"{M}@v1", "staging")
    ok(run, "--repo", reg, "push", bare_remote.urls["file"])
    return reg


def start(tmp_path: Path, *argv: str) -> tuple[subprocess.Popen[str], Path, Path]:
    """The watcher as a process of its own; its stdout and stderr go to files."""
    stem = tmp_path / f"watch-{time.monotonic_ns()}"
    out, err = stem.with_suffix(".out"), stem.with_suffix(".err")
    with out.open("w") as stdout, err.open("w") as stderr:
        process = subprocess.Popen([MODELBOX, *argv], stdout=stdout, stderr=stderr,
                                   text=True, env=dict(os.environ))
    return process, out, err


def wait_for(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def move(run: Run, clone: Path, version: str, url: str) -> None:
    ok(run, "--repo", clone, "tag", f"{M}@{version}", "staging")
    ok(run, "--repo", clone, "push", url)


@pytest.mark.parametrize("transport", ["file", "git"])
def test_a_tag_moved_in_a_clone_and_pushed_fires_cmd_once_with_its_environment(
    transport: str, tmp_path: Path, source: Path, bare_remote: BareRemote, run: Run,
) -> None:
    url = bare_remote.urls[transport]
    log = tmp_path / "calls.log"
    clone = tmp_path / "clone"
    ok(run, "clone", bare_remote.urls["file"], clone)
    watcher, out, err = start(tmp_path, "--repo", url, "watch", f"{M}:staging", "--once",
                              "--interval", "0.1", "--exec", RECORD.format(log=log, code=7))
    wait_for(lambda: lines(out) == [f"watching {M}:staging: v1"])  # recorded, not run
    assert lines(log) == []
    move(run, clone, "v2", bare_remote.urls["file"])

    assert watcher.wait(20) == 7  # --once: CMD's exit code
    assert lines(out) == [f"watching {M}:staging: v1", f"{M}:staging -> v2 (was v1)"]
    commit = subprocess.run(["git", "-C", str(bare_remote.path), "rev-parse", "main"],
                            capture_output=True, text=True, check=True).stdout.strip()
    assert lines(log) == [f"{M}:staging v2 v1 {M} staging {commit}"]
    assert "Traceback" not in err.read_text()


def test_a_failing_cmd_is_one_line_and_watching_goes_on_until_sigterm(
    tmp_path: Path, source: Path, run: Run,
) -> None:
    log = tmp_path / "calls.log"
    watcher, out, err = start(tmp_path, "--repo", str(source), "watch", f"{M}:staging",
                              "--json", "--interval", "0.1",
                              "--exec", RECORD.format(log=log, code=5))
    wait_for(lambda: len(lines(out)) == 1)
    ok(run, "--repo", source, "tag", f"{M}@v2", "staging")
    wait_for(lambda: len(lines(log)) == 1)
    ok(run, "--repo", source, "tag", f"{M}@v3", "staging")
    wait_for(lambda: len(lines(log)) == 2)
    ok(run, "--repo", source, "untag", M, "staging")
    wait_for(lambda: '"removed"' in out.read_text())

    watcher.send_signal(signal.SIGTERM)
    assert watcher.wait(10) == 0
    assert "Traceback" not in err.read_text()
    assert [line.split()[:3] for line in lines(log)] == [
        [f"{M}:staging", "v2", "v1"], [f"{M}:staging", "v3", "v2"]]
    events = [json.loads(line) for line in lines(out)]  # one JSON object per line
    assert [(e["event"], e["version"]) for e in events] == [
        ("watching", "v1"), ("moved", "v2"), ("exec-failed", "v2"), ("moved", "v3"),
        ("exec-failed", "v3"), ("removed", None)]
    assert {e.get("exit_code") for e in events if e["event"] == "exec-failed"} == {5}


def test_an_unreachable_url_backs_off_with_warnings_and_recovers(
    tmp_path: Path, source: Path, bare_remote: BareRemote,
) -> None:
    later = tmp_path / "later.git"
    log = tmp_path / "calls.log"
    watcher, _, err = start(tmp_path, "--repo", later.as_uri(), "watch", f"{M}:staging",
                         "--once", "--exec-now", "--interval", "0.1", "--max-backoff", "0.4",
                         "--exec", RECORD.format(log=log, code=0))
    wait_for(lambda: err.read_text().count("retrying in") >= 4)
    shutil.copytree(bare_remote.path, later)  # the remote answers again

    assert watcher.wait(20) == 0
    warnings = [line for line in err.read_text().splitlines() if "retrying in" in line]
    delays = [line.rsplit("retrying in ", 1)[1] for line in warnings]
    assert delays[:4] == ["0.2 s", "0.4 s", "0.4 s", "0.4 s"]  # doubling up to the cap
    assert all(line.startswith("modelbox: warning: ") for line in warnings)
    assert "reached the registry again" in err.read_text()
    assert lines(log)[0].split()[:2] == [f"{M}:staging", "v1"]  # --exec-now ran it once
    assert len(lines(log)) == 1


@pytest.mark.parametrize("ref", ["team/nope:staging", f"{M}", "Bad Name:staging"])
def test_a_bad_ref_is_one_line_and_exit_1(ref: str, source: Path, tmp_path: Path) -> None:
    watcher, _, err = start(tmp_path, "--repo", str(source), "watch", ref, "--exec", "true")
    assert watcher.wait(20) == 1
    assert_refused(watcher.returncode, err.read_text(), "")
