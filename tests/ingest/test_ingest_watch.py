"""``modelbox experiment watch`` and ``Experiment.watch``: each whole checkpoint once, with
its metrics deduplicated, on real folders (issue 17 item 1 and its faults)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from hostile import MODELBOX
from tasks import nice

from modelbox import ModelBoxClient
from modelbox.ingest import MARKER
from modelbox.registry import Registry

from .trainers import hf_checkpoint, keras_file, safetensors_bytes, torch_ckpt

if TYPE_CHECKING:
    from conftest import Run
    from s3server import S3Server

EXP = "ai/run-1"


def commits(path: Path) -> int:
    return int(subprocess.run(["git", "rev-list", "--count", "HEAD"], cwd=path, check=True,
                              capture_output=True, text=True).stdout)


def checkpoints(registry_path: Path) -> dict[str, dict[str, object]]:
    with ModelBoxClient(registry_path) as client:
        return {c.id: {"step": c.step, "epoch": c.epoch, "metadata": c.metadata,
                       "artifacts": sorted(a.path for a in c.artifacts()),
                       "metrics": c._manifest.metrics}
                for c in client.experiment(EXP).checkpoints()}


def test_huggingface_checkpoints_are_ingested_once_with_deduplicated_metrics(
    registry_path: Path, tmp_path: Path, run: Run
) -> None:
    out = tmp_path / "out"
    hf_checkpoint(out, 10)
    hf_checkpoint(out, 20, state=b'{"global_step": 20, "log_hist')  # still being written
    result = run("--repo", registry_path, "experiment", "watch", EXP, out, "--once")
    assert result.code == 0, result.err
    assert result.out.startswith(f"Ingested {EXP}@checkpoint-10 from checkpoint-10 ")
    (out / "checkpoint-20" / "trainer_state.json").write_text(json.dumps({
        "global_step": 20, "epoch": 2.0, "log_history": [
            {"loss": 0.1, "epoch": 1.0, "step": 10}, {"loss": 0.05, "epoch": 2.0, "step": 20},
            {"eval_acc": 0.9, "step": 20}]}))
    head = commits(registry_path)
    again = run("--repo", registry_path, "experiment", "watch", EXP, out, "--once", "--json")
    assert again.code == 0, again.err
    (line,) = again.out.splitlines()
    assert json.loads(line)["checkpoint"] == f"{EXP}@checkpoint-20"
    assert json.loads(line)["points"] == 2  # loss@20, eval_acc@20; loss@10 was there
    assert commits(registry_path) - head == 1  # one commit: manifest, files, metrics, event
    found = checkpoints(registry_path)
    assert set(found) == {f"{EXP}@checkpoint-10", f"{EXP}@checkpoint-20"}
    assert found[f"{EXP}@checkpoint-20"]["artifacts"] == [
        "config.json", "model.safetensors", "optimizer.pt", "trainer_state.json"]
    assert found[f"{EXP}@checkpoint-20"]["metrics"] == {"loss": 0.05, "eval_acc": 0.9}
    assert found[f"{EXP}@checkpoint-20"]["step"] == 20
    with ModelBoxClient(registry_path) as client:
        series = client.experiment(EXP).metrics()
        assert [(p["step"], p["value"]) for p in series["loss"]] == [(10, 0.1), (20, 0.05)]
        events = client.experiment(EXP).checkpoints()[1].events()
        assert [e.name for e in events] == ["checkpoint.ingested"]
    third = run("--repo", registry_path, "experiment", "watch", EXP, out, "--once")
    assert (third.code, third.out) == (0, "")  # nothing new: nothing done
    assert commits(registry_path) == head + 1  # and no more


def test_points_a_callback_logged_already_are_not_logged_twice(
    registry_path: Path, tmp_path: Path, run: Run
) -> None:
    with ModelBoxClient(registry_path) as client:
        exp = client.new_experiment(EXP)
        exp.log_metrics({"loss": 0.1}, step=10)  # the callback's point
    hf_checkpoint(tmp_path / "out", 20, [{"loss": 0.1, "step": 10}, {"loss": 0.2, "step": 20}])
    assert run("--repo", registry_path, "experiment", "watch", EXP, tmp_path / "out",
               "--once").code == 0
    with ModelBoxClient(registry_path) as client:
        assert [p["step"] for p in client.experiment(EXP).metrics()["loss"]] == [10, 20]


def test_malformed_metric_files_warn_once_and_the_checkpoint_is_ingested(
    registry_path: Path, tmp_path: Path, run: Run
) -> None:
    out = tmp_path / "out"
    hf_checkpoint(out, 10, state=json.dumps({"log_history": "oops"}).encode())
    torch_ckpt(out / "epoch=0-step=5.ckpt")
    (out / "logs").mkdir()
    (out / "logs" / "metrics.csv").write_text("loss,acc\n1,2\n")  # no step column
    result = run("--repo", registry_path, "experiment", "watch", EXP, out, "--once")
    assert result.code == 0
    assert len(result.out.splitlines()) == 2
    warnings = result.err.splitlines()
    assert len(warnings) == 2, result.err  # one per bad file
    assert all(w.startswith("modelbox: warning: ") for w in warnings)
    assert "log_history is not a list" in result.err and "no step or epoch column" in result.err
    assert set(checkpoints(registry_path)) == {f"{EXP}@checkpoint-10", f"{EXP}@epoch-0-step-5"}


def test_lightning_keras_safetensors_and_plain_layouts(
    registry_path: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    torch_ckpt(out / "ckpts" / "epoch=0-step=10.ckpt")
    (out / "logs").mkdir(parents=True)
    (out / "logs" / "metrics.csv").write_text(
        "epoch,step,train_loss,val_acc\n0,4,0.9,\n0,9,0.5,\n0,9,,0.6\n1,14,0.3,\n")
    keras_file(out / "model.01-0.50.keras")
    (out / "head.safetensors").write_bytes(safetensors_bytes({"w": 8}))
    plain = out / "export-step-3"
    plain.mkdir()
    (plain / "weights.bin").write_bytes(b"\x01" * 10)
    (plain / "metrics.json").write_text(json.dumps({"acc": 0.8}))
    (plain / MARKER).write_text("")
    with ModelBoxClient(registry_path) as client, client.new_experiment(EXP).watch(
            out, interval=0.05) as watcher:
        deadline = time.monotonic() + 30
        while len(watcher.ingested) < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
    assert not watcher.running and len(watcher.ingested) == 4, watcher.warnings
    found = checkpoints(registry_path)
    ckpt = found[f"{EXP}@epoch-0-step-10"]
    assert ckpt["metrics"] == {"train_loss": 0.5, "val_acc": 0.6}  # at or before step 10
    assert ckpt["artifacts"] == ["epoch=0-step=10.ckpt"]
    assert (ckpt["epoch"], ckpt["step"]) == (0, 10)
    assert found[f"{EXP}@export-step-3"]["artifacts"] == ["metrics.json", "weights.bin"]
    assert found[f"{EXP}@export-step-3"]["metrics"] == {"acc": 0.8}
    assert found[f"{EXP}@model.01-0.50"]["epoch"] == 1
    assert f"{EXP}@head" in found
    with ModelBoxClient(registry_path) as client:
        series = client.experiment(EXP).metrics()
    assert [p["step"] for p in series["train_loss"]] == [4, 9, 14]  # once, not per checkpoint


def test_a_checkpoint_rewritten_under_its_name_is_a_new_checkpoint(
    registry_path: Path, tmp_path: Path, run: Run
) -> None:
    out = tmp_path / "out"
    keras_file(out / "best.keras")
    run("--repo", registry_path, "experiment", "watch", EXP, out, "--once")
    time.sleep(0.01)
    (out / "best.keras").unlink()
    keras_file(out / "best.keras")  # ModelCheckpoint(save_best_only) overwrites it
    second = run("--repo", registry_path, "experiment", "watch", EXP, out, "--once")
    assert second.code == 0 and "@best-" in second.out
    assert len(checkpoints(registry_path)) == 2


def test_experiment_watch_stop_takes_one_last_look(registry_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    with ModelBoxClient(registry_path) as client:
        watcher = client.new_experiment(EXP).watch(out, interval=3600)
        time.sleep(0.3)
        torch_ckpt(out / "last-epoch=4.ckpt")  # written after the first look
        watcher.stop(timeout=60)
    assert [i.source for i in watcher.ingested] == ["last-epoch=4.ckpt"]


def test_a_symlink_pointing_outside_is_never_ingested(
    registry_path: Path, tmp_path: Path, run: Run
) -> None:
    secret = torch_ckpt(tmp_path / "elsewhere" / "secret.ckpt")
    out = tmp_path / "out"
    out.mkdir()
    (out / "stolen.ckpt").symlink_to(secret)
    folder = hf_checkpoint(out, 10)
    (folder / "extra.ckpt").symlink_to(secret)
    result = run("--repo", registry_path, "experiment", "watch", EXP, out, "--once")
    assert result.code == 0 and result.out == ""
    assert "stolen.ckpt: a symbolic link; skipped, never followed" in result.err
    assert "checkpoint-10: not ingested: extra.ckpt inside is a symbolic link" in result.err
    assert checkpoints(registry_path) == {}


def test_bad_input_is_one_line_and_leaves_the_registry_as_it_was(
    registry_path: Path, tmp_path: Path, run: Run
) -> None:
    head = commits(registry_path)
    missing = run("--repo", registry_path, "experiment", "watch", EXP, tmp_path / "nope",
                  "--once")
    assert missing.code == 1 and missing.err.startswith("modelbox: error: ")
    assert len(missing.err.strip().splitlines()) == 1
    with ModelBoxClient(registry_path) as client:
        client.new_model("ai/model-1")
    head = commits(registry_path)
    model = run("--repo", registry_path, "experiment", "watch", "ai/model-1", tmp_path,
                "--once")
    assert model.code == 1 and "is a model" in model.err
    assert commits(registry_path) == head


def test_ingest_uploads_to_an_s3_store(
    s3_server: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run: Run
) -> None:
    bucket = "modelbox-ingest"
    s3_server.create_bucket(bucket)
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    store = f"s3://{bucket}/{uuid.uuid4().hex}"
    path = tmp_path / "reg"
    Registry.init(path, store=store).close()
    out = tmp_path / "out"
    hf_checkpoint(out, 10)
    result = run("--repo", path, "experiment", "watch", EXP, out, "--once")
    assert result.code == 0, result.err
    assert s3_server.client().find(f"{bucket}/")  # the objects went to SeaweedFS
    got = run("--repo", path, "get", f"{EXP}@checkpoint-10", "-o", tmp_path / "resume")
    assert got.code == 0, got.err
    assert (tmp_path / "resume" / "trainer_state.json").read_bytes() == (
        out / "checkpoint-10" / "trainer_state.json").read_bytes()
    again = run("--repo", path, "experiment", "watch", EXP, out, "--once")
    assert (again.code, again.out) == (0, "")
    with ModelBoxClient(path) as client:
        assert len(client.experiment(EXP).checkpoints()) == 1


def test_an_ingested_checkpoint_meeting_the_policy_is_promoted_in_the_same_write(
    registry_path: Path, tmp_path: Path, run: Run
) -> None:
    with ModelBoxClient(registry_path) as client:
        client.new_experiment(EXP)
        client.new_model("ai/detector")
    made = run("--repo", registry_path, "policy", "set", EXP, "--promote-to", "ai/detector",
               "--when", "eval_acc>=0.9")
    assert made.code == 0, made.err
    out = tmp_path / "out"
    hf_checkpoint(out, 10, [{"eval_acc": 0.5, "step": 10}])
    hf_checkpoint(out, 20, [{"eval_acc": 0.5, "step": 10}, {"eval_acc": 0.95, "step": 20}])
    result = run("--repo", registry_path, "experiment", "watch", EXP, out, "--once", "--json")
    assert result.code == 0, result.err
    lines = [json.loads(line) for line in result.out.splitlines()]
    assert [line["decisions"] for line in lines] == [[], [{
        "action": "promote", "checkpoint": f"{EXP}@checkpoint-20",
        "target": "ai/detector@v0", "policy": lines[1]["decisions"][0]["policy"]}]]
    with ModelBoxClient(registry_path) as client:
        version = client.model_version("ai/detector@v0")
        assert version.metadata["source_checkpoint"] == f"{EXP}@checkpoint-20"
        assert sorted(a.path for a in version.artifacts()) == [
            "config.json", "model.safetensors", "optimizer.pt", "trainer_state.json"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice is Linux's")
@pytest.mark.parametrize("niceness", [None, "0", "7"])
def test_the_watch_command_yields_the_cpu_to_the_trainer(
    registry_path: Path, tmp_path: Path, niceness: str | None
) -> None:
    """By default ``nice -n 10``, as nice(1) does: a trainer beside it on saturated cores
    keeps the CPU (bench 14); every thread that works (the watching one, its uploads) is
    as nice."""
    out = tmp_path / "out"
    out.mkdir()
    base = os.getpriority(os.PRIO_PROCESS, 0)
    option = [] if niceness is None else ["--nice", niceness]
    with subprocess.Popen(
            [MODELBOX, "--repo", str(registry_path), "experiment", "watch", EXP, str(out),
             "--interval", "0.05", "--json", *option], stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True) as proc:
        try:
            torch_ckpt(out / "epoch=0-step=1.ckpt")
            assert proc.stdout is not None
            assert json.loads(proc.stdout.readline())["source"] == "epoch=0-step=1.ckpt"
            threads = [int(t) for t in os.listdir(f"/proc/{proc.pid}/task")]
            nices = {nice(proc.pid, t) for t in threads if t != proc.pid}
            main = nice(proc.pid)
        finally:
            proc.terminate()
            proc.wait(timeout=60)
    assert nices == {min(19, base + int(niceness or 10))}  # the watching thread and its own
    assert main == base  # only waits for it and takes the signals


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice is Linux's")
def test_a_watch_thread_yields_only_its_own_cpu(registry_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    base = nice(os.getpid(), threading.get_native_id())
    with ModelBoxClient(registry_path) as client:
        watcher = client.new_experiment(EXP).watch(out, interval=0.05, nice=5)
        try:
            torch_ckpt(out / "epoch=0-step=1.ckpt")
            deadline = time.monotonic() + 60
            while not watcher.ingested and time.monotonic() < deadline:
                time.sleep(0.05)
            native = watcher._thread.native_id
            assert native is not None
            assert nice(os.getpid(), native) == min(19, base + 5)
        finally:
            watcher.stop(timeout=60)
    assert nice(os.getpid(), threading.get_native_id()) == base  # the caller's is its own
    assert [i.source for i in watcher.ingested] == ["epoch=0-step=1.ckpt"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice is Linux's")
def test_the_command_run_in_process_leaves_its_callers_priority_alone(
    registry_path: Path, tmp_path: Path, run: Run
) -> None:
    """Nice cannot be undone without privilege: run in-process (a script, a test worker),
    the command renices only its own thread (it once reniced the caller, whose later
    children all ran at nice 19)."""
    out = tmp_path / "out"
    out.mkdir()
    torch_ckpt(out / "epoch=0-step=1.ckpt")
    before = nice(os.getpid(), threading.get_native_id())
    result = run("--repo", registry_path, "experiment", "watch", EXP, out, "--once")
    assert result.code == 0, result.err
    assert "epoch=0-step=1.ckpt" in result.out
    assert nice(os.getpid(), threading.get_native_id()) == before
