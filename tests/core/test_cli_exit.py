"""The console scripts end without Python's teardown (``modelbox.exiting.exit_now``), and
nothing anyone can see changes: the output (click flushes its own; anything else printed
waits in a buffer), the exit code, the exit handlers, a thread still at work."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import Run
from hostile import modelbox

# A process that registers what a normal exit must honour, then runs the console entry.
_ENTRY = """
import atexit, sys, threading, time, weakref
from pathlib import Path
out = Path(sys.argv[1])
class Held: pass
held = Held()
weakref.finalize(held, lambda: (out / "finalized").write_text("yes"))
atexit.register(lambda: (out / "atexit").write_text("yes"))
# printed after click's last flush, into stdout's buffer (a pipe's is not line-buffered)
atexit.register(lambda: print("printed at exit", end=""))
if sys.argv[2] == "thread":
    def late():
        time.sleep(0.5)
        (out / "thread").write_text("yes")
    threading.Thread(target=late).start()
from modelbox.cli import entry
sys.argv = ["modelbox", *sys.argv[3:]]
entry()
"""


def _entry(tmp_path: Path, thread: str, *argv: str) -> subprocess.CompletedProcess[str]:
    # Buffered as a user's shell runs it: PYTHONUNBUFFERED (set on some CI machines) would
    # hide a missing flush.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    return subprocess.run([sys.executable, "-c", _ENTRY, str(tmp_path), thread, *argv],
                          capture_output=True, text=True, timeout=60, check=False, env=env)


def test_exit_handlers_and_finalizers_run_and_the_code_is_kept(tmp_path: Path) -> None:
    done = _entry(tmp_path, "-", "resolve", "--help")
    assert done.returncode == 0 and "Usage: modelbox resolve" in done.stdout
    assert done.stdout.endswith("printed at exit")  # output left in a buffer arrives
    assert (tmp_path / "atexit").read_text() == "yes"
    assert (tmp_path / "finalized").read_text() == "yes"
    done = _entry(tmp_path, "-", "--no-such-option")
    assert done.returncode == 2 and "No such option" in done.stderr


def test_a_thread_still_at_work_is_waited_for(tmp_path: Path) -> None:
    # A normal exit joins the threads that are not daemons; ending the process at once
    # would cut this one off before it writes.
    done = _entry(tmp_path, "thread", "--version")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "thread").read_text() == "yes"


def test_long_output_and_errors_arrive_whole(registry_path: Path, run: Run) -> None:
    for i in range(120):  # JSON far past stdout's 8 KiB buffer
        assert run("--repo", registry_path, "model", "create", f"ns{i % 7}/model-{i:03d}",
                   "--description", "x" * 200).code == 0
    expected = run("--repo", registry_path, "model", "list", "--json").out
    proc = modelbox("--repo", registry_path, "model", "list", "--json")
    assert proc.code == 0 and proc.out == expected and len(proc.out) > 8192
    assert len(json.loads(proc.out)) == 120
    proc = modelbox("--repo", registry_path, "resolve", "ns0/nope:prod")
    assert proc.code == 1 and proc.out == ""
    assert proc.err.startswith("modelbox: error: ") and len(proc.err.splitlines()) == 1
