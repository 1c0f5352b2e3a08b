"""Durable metrics (issue 14, item 6): a logged point survives SIGTERM and SIGKILL.

Every trainer here is a real Python process using the public API; the signals are real
(``os.kill``). The journal is ``.git/modelbox/journal/metrics-*.jsonl``
(:mod:`modelbox.recovery`).
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hostile import modelbox

from modelbox import recovery
from modelbox.client import ModelBoxClient
from modelbox.errors import InvalidValueError

MODEL, VERSION = "ai/yolo", "ai/yolo@v1"

PREAMBLE = """
import os, signal, sys, time
from modelbox.client import ModelBoxClient
client = ModelBoxClient(sys.argv[1])
mv = client.model_version("ai/yolo@v1")
"""

LOG_50 = """
for step in range(50):
    mv.log_metrics({"loss": 1.0 / (step + 1)}, step=step)
print("logged", flush=True)
"""


def _registry(tmp_path: Path) -> Path:
    path = tmp_path / "registry"
    with ModelBoxClient(path, create=True) as client:
        client.new_model(MODEL).new_model_version("v1")
    return path


def _trainer(path: Path, *parts: str, extra: list[str] | None = None) -> subprocess.Popen[str]:
    """Start a trainer and wait until it printed ``logged`` (its points are logged)."""
    body = "".join(textwrap.dedent(part) for part in (PREAMBLE, *parts))
    proc = subprocess.Popen(
        [sys.executable, "-c", body, str(path), *(extra or [])],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.strip() == "logged", (line, proc.stderr.read() if proc.stderr else "")
    return proc


def _signal(proc: subprocess.Popen[str], signum: int) -> tuple[str, str]:
    """Send a real signal; wait for the process; return what it printed."""
    os.kill(proc.pid, signum)
    return proc.communicate(timeout=30)


def _running(pid: int) -> bool:
    """Not yet exited (a zombie has exited: its descriptors and locks are gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


def _head(path: Path) -> str:
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=path, capture_output=True,
                          text=True, check=True).stdout.strip()


def _journals(path: Path) -> list[Path]:
    return sorted((path / ".git" / recovery.JOURNAL_DIR).glob("metrics-*.jsonl"))


def _losses(path: Path) -> list[dict[str, object]]:
    with ModelBoxClient(path) as client:
        return client.model_version(VERSION).metrics().get("loss", [])


def test_sigkill_keeps_every_point_and_the_next_write_commits_them(tmp_path: Path) -> None:
    path = _registry(tmp_path)
    proc = _trainer(path, LOG_50, "time.sleep(60)\n")
    _signal(proc, signal.SIGKILL)
    assert proc.returncode == -signal.SIGKILL
    head = _head(path)
    assert len(_journals(path)) == 1

    # Read commands never commit: the history and the journal stay as they are.
    shown = modelbox("metrics", "show", VERSION, "--json", cwd=path)
    assert shown.code == 0 and json.loads(shown.out) == {}, shown
    assert modelbox("log", cwd=path).code == 0
    checked = modelbox("check", cwd=path)  # reports them, commits nothing
    assert checked.code == 0 and "50 metric point(s) logged by a process that ended" in (
        checked.out + checked.err), checked
    assert _head(path) == head and len(_journals(path)) == 1

    # The next write of the same user commits them, in order, once.
    assert modelbox("meta", "set", VERSION, "owner", "\"me\"", cwd=path).code == 0
    losses = _losses(path)
    assert [p["step"] for p in losses] == list(range(50))
    assert losses[-1]["value"] == pytest.approx(1 / 50)
    assert _journals(path) == []
    assert modelbox("meta", "set", VERSION, "owner", "\"you\"", cwd=path).code == 0
    assert len(_losses(path)) == 50
    assert modelbox("check", cwd=path).code == 0


def test_a_live_writers_journal_is_never_taken(tmp_path: Path) -> None:
    path = _registry(tmp_path)
    proc = _trainer(path, LOG_50, "time.sleep(60)\n")
    try:
        assert modelbox("meta", "set", VERSION, "owner", "\"me\"", cwd=path).code == 0
        assert _losses(path) == []
        assert len(_journals(path)) == 1
    finally:
        _signal(proc, signal.SIGKILL)
    assert modelbox("meta", "set", VERSION, "owner", "\"you\"", cwd=path).code == 0
    assert len(_losses(path)) == 50


def test_sigterm_commits_then_runs_the_trainers_handler(tmp_path: Path) -> None:
    path = _registry(tmp_path)
    proc = _trainer(path, """
        def on_term(signum, frame):
            print("trainer handler", flush=True)
            os._exit(3)  # no atexit: only the commit before the chain saves the points
        signal.signal(signal.SIGTERM, on_term)
        """ , LOG_50, "time.sleep(60)\n")
    out, err = _signal(proc, signal.SIGTERM)
    assert "trainer handler" in out, err
    assert proc.returncode == 3, err
    assert len(_losses(path)) == 50  # committed by the process itself
    # Its handler may let it go on: the journal stays open, emptied (the next write
    # removes it).
    assert [j.stat().st_size for j in _journals(path)] == [0]


def test_sigterm_with_the_default_handler_commits_and_dies_of_sigterm(tmp_path: Path) -> None:
    path = _registry(tmp_path)
    proc = _trainer(path, LOG_50, "time.sleep(60)\n")
    head = _head(path)
    _, err = _signal(proc, signal.SIGTERM)
    assert proc.returncode == -signal.SIGTERM, err
    assert _head(path) != head  # the process committed before it died
    assert len(_losses(path)) == 50
    assert _journals(path) == []


def test_a_handler_installed_after_the_first_point_still_loses_nothing(tmp_path: Path) -> None:
    # Ours is replaced (the trainer did not chain to it): its exit commits at atexit.
    path = _registry(tmp_path)
    proc = _trainer(path, LOG_50, """
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        print("logged", flush=True)
        time.sleep(60)
        """)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "logged"
    _, err = _signal(proc, signal.SIGTERM)
    assert proc.returncode == 0, err
    assert len(_losses(path)) == 50


def test_points_are_in_the_journal_before_log_metrics_returns(tmp_path: Path) -> None:
    path = _registry(tmp_path)
    with ModelBoxClient(path) as client:
        mv = client.model_version(VERSION)
        mv.log_metrics({"loss": 0.5, "acc": 0.9}, step=1)
        journal = client._metrics.journal
        assert journal is not None and journal.exists()
        line = json.loads(journal.read_text().splitlines()[0])
        assert line["ref"] == "ai/yolo@v1" and len(line["points"]) == 2
        head = _head(path)
    assert _head(path) != head  # close() committed
    assert _journals(path) == []


def _flush_killed_at(path: Path, step: str) -> None:
    """A trainer logs 50 points, then is killed at ``step`` of the write its flush makes."""
    proc = _trainer(path, LOG_50, f"""
        os.environ["MODELBOX_FAULT"] = "{step}"
        client.flush()
        """)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 137, err


def test_a_commit_that_landed_before_the_kill_is_not_counted_twice(tmp_path: Path) -> None:
    # The writer died after its branch moved and before it emptied its journal: the
    # branch-move record names the lines the commit holds; recovery skips them.
    path = _registry(tmp_path)
    _flush_killed_at(path, "before-tag-refs")
    assert len(_losses(path)) == 50  # committed; the journal still holds the same lines
    assert len(_journals(path)) == 1
    assert modelbox("meta", "set", VERSION, "owner", "\"me\"", cwd=path).code == 0
    assert len(_losses(path)) == 50
    assert _journals(path) == []
    assert modelbox("check", cwd=path).code == 0


def test_a_kill_before_the_branch_moved_commits_everything_once(tmp_path: Path) -> None:
    path = _registry(tmp_path)
    _flush_killed_at(path, "after-journal")
    assert _losses(path) == []
    assert modelbox("meta", "set", VERSION, "owner", "\"me\"", cwd=path).code == 0
    assert len(_losses(path)) == 50
    assert _journals(path) == []


def test_a_journal_naming_a_commit_never_written_does_not_stop_every_write(
        tmp_path: Path) -> None:
    # A branch-move record whose commit does not exist (a hand edit, or a writer killed
    # between its journal and its objects): git refuses to compare that commit, and every
    # later write failed with that error. It did not land: nothing it names is absorbed.
    path = _registry(tmp_path)
    _flush_killed_at(path, "after-journal")
    record = path / ".git" / recovery.JOURNAL_DIR / "branch-move.json"
    data = json.loads(record.read_text())
    assert data["absorbs"]
    data["new"] = "0123456789abcdef0123456789abcdef01234567"
    record.write_text(json.dumps(data))
    proc2 = modelbox("meta", "set", VERSION, "owner", "\"me\"", cwd=path)
    assert proc2.code == 0, proc2.err
    assert len(_losses(path)) == 50
    assert _journals(path) == []
    assert not record.exists()
    assert modelbox("check", cwd=path).code == 0


def test_points_for_a_deleted_target_are_kept_aside_not_retried_forever(
    tmp_path: Path,
) -> None:
    path = _registry(tmp_path)
    proc = _trainer(path, """
        mv2 = client.model("ai/yolo").new_model_version("v2")
        mv2.log_metrics({"loss": 1.0}, step=1)
        """ , LOG_50, "time.sleep(60)\n")
    _signal(proc, signal.SIGKILL)
    # Removed by a plain git commit (a modelbox write would commit the points first).
    for args in (["rm", "-rq", "models/ai/yolo/_versions/v2"], ["commit", "-qm", "drop v2"]):
        subprocess.run(["git", *args], cwd=path, check=True)
    write = modelbox("meta", "set", VERSION, "owner", "\"me\"", cwd=path)
    assert write.code == 0, write
    assert len(_losses(path)) == 50  # v1's points landed
    assert "ai/yolo@v2" in write.err and ".rejected" in write.err
    assert _journals(path) == []
    rejected = list((path / ".git" / recovery.JOURNAL_DIR).glob("*.rejected"))
    assert len(rejected) == 1 and '"ai/yolo@v2"' in rejected[0].read_text()
    checked = modelbox("check", cwd=path)
    assert checked.code == 0 and rejected[0].name in checked.out + checked.err, checked
    assert modelbox("meta", "set", VERSION, "owner", "\"you\"", cwd=path).code == 0


def test_bytes_values_and_datetime_wallclocks_round_trip(tmp_path: Path) -> None:
    path = _registry(tmp_path)
    raw = bytes(range(256))
    aware = datetime(2026, 11, 23, 14, 0, tzinfo=timezone(timedelta(hours=2)))
    naive = datetime(2026, 11, 23, 12, 0)  # read as UTC
    with ModelBoxClient(path) as client:
        mv = client.model_version(VERSION)
        mv.log_metrics({"attention": raw, "acc": 0.5}, step=1, wallclock=aware)
        mv.log_metrics({"acc": 0.6}, step=2, wallclock=naive)
    with ModelBoxClient(path) as client:
        mv = client.model_version(VERSION)
        series = mv.metrics()
        assert series["attention"][0]["value"] == {"bytes": base64.b64encode(raw).decode()}
        assert base64.b64decode(series["attention"][0]["value"]["bytes"]) == raw
        stamp = aware.timestamp()
        assert [p["wallclock"] for p in series["acc"]] == [stamp, stamp]
        assert mv.metrics_summary == {"acc": 0.6}  # bytes stay out of summaries
    assert modelbox("check", cwd=path).code == 0
    shown = modelbox("metrics", "show", VERSION, "--json", cwd=path)
    assert json.loads(shown.out)["attention"][0]["value"]["bytes"] == base64.b64encode(
        raw).decode()
    table = modelbox("metrics", "show", VERSION, cwd=path)
    assert "attention\t1 point(s)\tlast=<256 bytes> (step 1)" in table.out, table


@pytest.mark.parametrize(("metrics", "wallclock", "needle"), [
    ({"x": b"\0" * (1024 * 1024 + 1)}, None, "'x' holds 1048577 bytes"),
    ({"x": [1]}, None, "'x' must be a number, a string or bytes"),
    ({"x": 1.0}, "yesterday", "wallclock must be seconds"),
    ({"x": 1.0}, float("inf"), "wallclock is inf"),
])
def test_bad_values_are_refused_before_the_journal(
    tmp_path: Path, metrics: dict[str, object], wallclock: object, needle: str,
) -> None:
    path = _registry(tmp_path)
    with ModelBoxClient(path) as client:
        mv = client.model_version(VERSION)
        with pytest.raises(InvalidValueError, match=needle.replace("(", r"\(")):
            mv.log_metrics(metrics, wallclock=wallclock)  # type: ignore[arg-type]  # bad on purpose
        assert client._metrics.journal is None
    assert _journals(path) == []


def test_another_users_journal_is_left_alone(tmp_path: Path) -> None:
    # Simulated by ownership: a journal file not owned by us is never opened for taking.
    path = _registry(tmp_path)
    proc = _trainer(path, LOG_50, "time.sleep(60)\n")
    _signal(proc, signal.SIGKILL)
    journal = _journals(path)[0]
    if os.geteuid() != 0:
        pytest.skip("changing a file's owner needs root")
    os.chown(journal, 4321, 4321)
    assert modelbox("meta", "set", VERSION, "owner", "\"me\"", cwd=path).code == 0
    assert _losses(path) == [] and journal.exists()


def test_metrics_log_on_the_cli_still_commits_at_once(tmp_path: Path) -> None:
    path = _registry(tmp_path)
    assert modelbox("metrics", "log", VERSION, "acc=0.5", cwd=path).code == 0
    with ModelBoxClient(path) as client:
        assert client.model_version(VERSION).metrics_summary == {"acc": 0.5}
    assert _journals(path) == []


def test_a_forked_worker_does_not_keep_its_dead_parents_journal(tmp_path: Path) -> None:
    # A DataLoader-style worker forked after logging inherits the journal's descriptor;
    # the parent's death must still free the journal for the next write.
    path = _registry(tmp_path)
    child_pid = tmp_path / "child.pid"
    proc = _trainer(path, """
        for step in range(50):
            mv.log_metrics({"loss": 1.0 / (step + 1)}, step=step)
        child = os.fork()
        if child == 0:
            open(sys.argv[2], "w").write(str(os.getpid()))
            time.sleep(60)
            os._exit(0)
        while not os.path.exists(sys.argv[2]) or not open(sys.argv[2]).read():
            time.sleep(0.01)
        print("logged", flush=True)
        time.sleep(60)
        """, extra=[str(child_pid)])
    worker = int(child_pid.read_text())
    try:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)  # (its pipes stay open while the child lives)
        assert _running(worker)
        assert modelbox("meta", "set", VERSION, "owner", '"me"', cwd=path).code == 0
        assert len(_losses(path)) == 50
        assert _journals(path) == []
    finally:
        os.kill(worker, signal.SIGKILL)
        proc.communicate(timeout=10)


def test_a_write_killed_after_committing_a_dead_journal_does_not_commit_it_twice(
    tmp_path: Path,
) -> None:
    path = _registry(tmp_path)
    proc = _trainer(path, LOG_50, "time.sleep(60)\n")
    _signal(proc, signal.SIGKILL)
    killed = modelbox("meta", "set", VERSION, "owner", '"me"', cwd=path,
                      env={"MODELBOX_FAULT": "before-tag-refs"})
    assert killed.code == 137, killed
    assert len(_losses(path)) == 50 and len(_journals(path)) == 1
    assert modelbox("meta", "set", VERSION, "owner", '"you"', cwd=path).code == 0
    assert len(_losses(path)) == 50
    assert _journals(path) == []
    assert modelbox("check", cwd=path).code == 0


@pytest.mark.stress
def test_sigkill_at_random_points_keeps_every_returned_point_exactly_once(
    tmp_path: Path,
) -> None:
    # The trainer logs and commits (every 7 points) in a loop, printing each step once
    # log_metrics returned; a SIGKILL lands anywhere, including inside a commit. After the
    # next write, every printed step is there exactly once (the step being logged when the
    # signal came may be there too, once).
    import random

    rng = random.Random(14)
    path = _registry(tmp_path)
    logged: list[int] = []
    for attempt in range(10):
        done = tmp_path / f"steps-{attempt}"
        proc = _trainer(path, f"""
            client._metrics.MAX_POINTS = 7
            out = os.open(sys.argv[2], os.O_WRONLY | os.O_CREAT | os.O_APPEND)
            print("logged", flush=True)
            for step in range({attempt * 1000}, {attempt * 1000 + 1000}):
                mv.log_metrics({{"loss": float(step)}}, step=step)
                os.write(out, b"%d\\n" % step)
            """, extra=[str(done)])
        time.sleep(rng.uniform(0.05, 0.4))
        _signal(proc, signal.SIGKILL)
        logged += [int(line) for line in done.read_text().split()]
        assert modelbox("meta", "set", VERSION, "owner", f'"{attempt}"', cwd=path).code == 0
        steps = [p["step"] for p in _losses(path)]
        assert len(steps) == len(set(steps)), "a point was committed twice"
        assert set(logged) <= set(steps), "a point log_metrics returned is lost"
        assert len(steps) - len(logged) <= attempt + 1
        # Nothing left behind: no journal, no record, no temporary file of a dead writer.
        assert list((path / ".git" / recovery.JOURNAL_DIR).iterdir()) == []
    assert modelbox("check", cwd=path).code == 0


def test_an_object_lock_left_by_a_killed_write_does_not_block_the_same_object(
    tmp_path: Path,
) -> None:
    # A kill while dulwich wrote a loose object leaves `<object>.lock`; the recovery that
    # re-commits the same points writes the very same object and must not be refused.
    from dulwich.objects import Blob

    from modelbox.registry import Registry

    path = _registry(tmp_path)
    content = b'{"kind": "metrics"}\n'
    sha = Blob.from_string(content).id.decode()
    lock = path / ".git" / "objects" / sha[:2] / f"{sha[2:]}.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    lock.write_bytes(b"x\x9c")  # a torn start of the object
    registry = Registry.open(path)
    try:
        registry.repo.build_tree(None, {"f.json": content})
    finally:
        registry.close()
    assert subprocess.run(["git", "cat-file", "-p", sha], cwd=path, capture_output=True,
                          check=True).stdout == content


def test_sigterm_while_another_writer_holds_the_lock_still_dies_and_loses_nothing(
    tmp_path: Path,
) -> None:
    from modelbox.refs import locked

    path = _registry(tmp_path)
    proc = _trainer(path, 'os.environ["MODELBOX_LOCK_TIMEOUT"] = "0.3"\n', LOG_50,
                    "time.sleep(60)\n")
    with locked(path / ".git"):
        _, err = _signal(proc, signal.SIGTERM)
    assert proc.returncode == -signal.SIGTERM, err
    assert "not committed on SIGTERM" in err and "next modelbox write" in err
    assert _losses(path) == []
    assert modelbox("meta", "set", VERSION, "owner", '"me"', cwd=path).code == 0
    assert len(_losses(path)) == 50


def test_the_journal_is_committed_by_size_and_by_age(tmp_path: Path) -> None:
    path = _registry(tmp_path)
    with ModelBoxClient(path) as client:
        client._metrics.MAX_POINTS, client._metrics.MAX_AGE = 3, 0.2
        mv = client.model_version(VERSION)
        head = _head(path)
        mv.log_metrics({"a": 1.0, "b": 2.0}, step=1)
        assert _head(path) == head
        mv.log_metrics({"a": 1.5}, step=2)  # the third point: committed by size
        assert _head(path) != head and client._metrics.pending == 0
        head = _head(path)
        mv.log_metrics({"a": 2.0}, step=3)
        time.sleep(0.25)
        mv.log_metrics({"a": 3.0}, step=4)  # the oldest point is 0.25 s old: by age
        assert _head(path) != head and client._metrics.pending == 0
