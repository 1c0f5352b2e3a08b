"""Faults with real processes: a trainer killed mid-write, the watcher killed with
SIGKILL (at each named step of a write, and at random points) and restarted, SIGTERM."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import pytest
from hostile import MODELBOX, modelbox
from kill9 import git

from modelbox.faults import STEPS

from .trainers import hf_checkpoint, torch_ckpt

EXP = "ai/run-1"
TRAINER = textwrap.dedent("""
    import json, struct, sys, time, zipfile
    from pathlib import Path
    out = Path(sys.argv[1])
    chunk = b"\\x07" * 65536
    (out / "checkpoint-10").mkdir(parents=True)
    header = json.dumps({"w": {"dtype": "F32", "shape": [1 << 20],
                               "data_offsets": [0, 4 << 20]}}).encode()
    weights = open(out / "checkpoint-10" / "model.safetensors", "wb")
    weights.write(struct.pack("<Q", len(header)) + header)
    archive = zipfile.ZipFile(out / "epoch=0-step=10.ckpt", "w")
    entry = archive.open("epoch=0-step=10/data.pkl", "w")
    single = open(out / "head.safetensors", "wb")
    single.write(struct.pack("<Q", len(header)) + header)
    for i in range(10_000):  # far more than it gets to write
        for f in (weights, entry, single):
            f.write(chunk)
            f.flush()
        if i == 4:
            print("writing", flush=True)
        time.sleep(0.01)
""")


def ingested(repo: Path) -> Counter[str]:
    """How many checkpoints each source became, read from the manifests on the branch."""
    listing = git("ls-tree", "-r", "--name-only", "HEAD", cwd=repo).splitlines()
    found: Counter[str] = Counter()
    for path in listing:
        if path.endswith("/_checkpoint.json"):
            manifest = json.loads(git("show", f"HEAD:{path}", cwd=repo))
            found[manifest["metadata"]["ingest"]["source"]] += 1
    return found


def clean(repo: Path) -> None:
    assert git("status", "--porcelain", cwd=repo) == ""
    result = modelbox("--repo", repo, "check")
    assert result.code == 0, result.err + result.out


def test_a_trainer_killed_mid_write_leaves_nothing_ingested(
    registry_path: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    with subprocess.Popen([sys.executable, "-c", TRAINER, str(out)],
                          stdout=subprocess.PIPE, text=True) as trainer:
        assert trainer.stdout is not None and trainer.stdout.readline() == "writing\n"
        trainer.send_signal(signal.SIGKILL)
    sizes = {p.name: p.stat().st_size for p in out.rglob("*") if p.is_file()}
    assert len(sizes) == 3 and all(size > 65536 for size in sizes.values())
    for _ in range(2):  # the partial files stay as they are: still nothing
        result = modelbox("--repo", registry_path, "experiment", "watch", EXP, out, "--once")
        assert (result.code, result.out, result.err) == (0, "", "")
    assert ingested(registry_path) == Counter()


def _run_dir(tmp_path: Path, count: int = 6) -> Path:
    out = tmp_path / "out"
    for i in range(1, count + 1):
        hf_checkpoint(out, 10 * i)
        torch_ckpt(out / f"epoch={i}-step={10 * i}.ckpt", os.urandom(256 * 1024))
    return out


@pytest.mark.parametrize("step", STEPS)
def test_a_watcher_killed_at_each_step_of_a_write_ingests_each_checkpoint_once(
    registry_path: Path, tmp_path: Path, step: str
) -> None:
    out = _run_dir(tmp_path, 2)
    killed = modelbox("--repo", registry_path, "experiment", "watch", EXP, out, "--once",
                      env={"MODELBOX_FAULT": step})
    assert killed.code == 137
    again = modelbox("--repo", registry_path, "experiment", "watch", EXP, out, "--once")
    assert again.code == 0, again.err
    assert ingested(registry_path) == Counter({s: 1 for s in (
        "checkpoint-10", "checkpoint-20", "epoch=1-step=10.ckpt", "epoch=2-step=20.ckpt")})
    clean(registry_path)


def _kill_and_restart(registry_path: Path, out: Path, delays: list[float]) -> None:
    for delay in delays:
        proc = subprocess.Popen(
            [MODELBOX, "--repo", str(registry_path), "experiment", "watch", EXP, str(out),
             "--interval", "0.05"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
        time.sleep(delay)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    final = modelbox("--repo", registry_path, "experiment", "watch", EXP, out, "--once")
    assert final.code == 0, final.err
    counts = ingested(registry_path)
    assert set(counts) == {p.name for p in out.iterdir()} and set(counts.values()) == {1}
    points = json.loads(modelbox("--repo", registry_path, "metrics", "show", EXP,
                                 "--json").out)
    for key, series in points.items():  # every (key, step) once, however many restarts
        assert len({p["step"] for p in series}) == len(series), key
    clean(registry_path)


def test_a_watcher_killed_with_sigkill_and_restarted_ingests_each_checkpoint_once(
    registry_path: Path, tmp_path: Path
) -> None:
    _kill_and_restart(registry_path, _run_dir(tmp_path), [0.8, 1.2, 1.6])


@pytest.mark.stress
def test_a_watcher_killed_at_random_points_twenty_times(
    registry_path: Path, tmp_path: Path
) -> None:
    rng = random.Random(17)
    _kill_and_restart(registry_path, _run_dir(tmp_path, 12),
                      [0.4 + 1.5 * rng.random() for _ in range(20)])


def test_sigterm_and_ctrl_c_stop_the_watcher_cleanly(registry_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with subprocess.Popen(
                [MODELBOX, "--repo", str(registry_path), "experiment", "watch", EXP, str(out),
                 "--interval", "0.05", "--json"], stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, text=True) as proc:
            torch_ckpt(out / f"epoch=0-step={sig.value}.ckpt")
            assert proc.stdout is not None
            line = json.loads(proc.stdout.readline())
            assert line["source"] == f"epoch=0-step={sig.value}.ckpt"
            proc.send_signal(sig)
            assert proc.wait(timeout=60) == 0
            assert proc.stderr is not None and proc.stderr.read() == ""
    clean(registry_path)
