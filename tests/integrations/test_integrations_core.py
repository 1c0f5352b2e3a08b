"""The framework-free part of the training callbacks (modelbox.integrations._run): what
every framework's callback relies on, tested without any framework installed."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from tasks import nice

from modelbox import ModelBoxClient
from modelbox.errors import InvalidNameError, ModelboxError
from modelbox.integrations._run import TrainingRun, hyperparameter_values, metric_values
from modelbox.refs.lock import locked

FRAMEWORKS = ("keras", "jax", "torch", "lightning", "transformers", "tensorflow")


def test_importing_modelbox_and_its_integrations_package_imports_no_framework() -> None:
    code = ("import sys, modelbox, modelbox.integrations, modelbox.integrations._run; "
            "modelbox.ModelBoxClient; "
            f"print([m for m in {FRAMEWORKS!r} if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True).stdout
    assert out.strip() == "[]"


def _hold_lock(registry: Path) -> tuple[threading.Event, threading.Event, threading.Thread]:
    """Hold the registry's write lock in a thread until ``release`` is set: the upload
    thread waits, so the test can act between a save and its upload."""
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with locked(registry / ".git"):
            holding.set()
            release.wait(30)

    thread = threading.Thread(target=hold)
    thread.start()
    assert holding.wait(10)
    return holding, release, thread


def test_a_checkpoint_the_framework_deletes_before_its_upload_is_still_ingested(
    registry_path: Path, tmp_path: Path,
) -> None:
    # save_top_k / save_total_limit delete older checkpoints while the newest uploads.
    run = TrainingRun("exp/rotating", registry_path, framework="pytorch", source="test")
    run.start({"lr": 0.1})
    saved = tmp_path / "out" / "epoch=0-step=4.ckpt"
    saved.parent.mkdir()
    saved.write_bytes(b"weights of epoch 0")
    _, release, holder = _hold_lock(registry_path)
    run.checkpoint([saved], "epoch-0-step-4", epoch=0, step=4, metrics={"loss": 0.5})
    saved.unlink()  # the framework's rotation, before the upload began
    release.set()
    holder.join()
    run.close()
    with ModelBoxClient(registry_path) as client:
        (checkpoint,) = client.experiment("exp/rotating").checkpoints()
        checkpoint.download_artifacts(tmp_path / "got")
        assert (checkpoint.epoch, checkpoint.step) == (0, 4)
        assert checkpoint.metrics()["loss"][0]["step"] == 4
    assert (tmp_path / "got" / "epoch=0-step=4.ckpt").read_bytes() == b"weights of epoch 0"
    assert not list((registry_path / ".git" / "modelbox" / "callbacks").iterdir())


def test_a_checkpoint_rewritten_in_place_while_it_uploads_is_not_recorded_half_old(
    registry_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    # A fixed file name (model.keras, last.ckpt) is truncated and rewritten by the next
    # save: the bytes staged by a hard link change under the upload. Nothing is recorded
    # for the torn checkpoint, training is not interrupted, and close() says so.
    run = TrainingRun("exp/rewritten", registry_path, framework="keras", source="test")
    run.start()
    saved = tmp_path / "model.keras"
    saved.write_bytes(b"epoch 1" * 100)
    _, release, holder = _hold_lock(registry_path)
    run.checkpoint([saved], "epoch-1", epoch=1, step=10)
    with open(saved, "r+b") as f:  # in place: same inode, as a framework's save does
        f.write(b"epoch 2" * 200)
    release.set()
    holder.join()
    with pytest.raises(ModelboxError, match="rewritten in place"):
        run.close()
    assert "modelbox: warning: checkpoint exp/rewritten@epoch-1 not ingested" in (
        capsys.readouterr().err)
    with ModelBoxClient(registry_path) as client:
        experiment = client.experiment("exp/rewritten")
        assert experiment.checkpoints() == []
        assert [e.name for e in experiment.events()] == ["checkpoint_written"]
    assert run.stats.failed == ["exp/rewritten@epoch-1"]


def test_a_resumed_run_reuses_the_experiment_and_records_changed_hyperparameters_once(
    registry_path: Path,
) -> None:
    first = TrainingRun("exp/resumed", registry_path, framework="keras", source="test")
    first.start({"lr": 0.1, "epochs": 3})
    first.log_metrics({"loss": 1.0}, step=1)
    first.close()
    with ModelBoxClient(registry_path) as client:
        commits = len(client.log())
    second = TrainingRun("exp/resumed", registry_path, framework="keras", source="test")
    second.start({"lr": 0.1, "epochs": 6})
    second.log_metrics({"loss": 0.5}, step=2)
    second.close()
    with ModelBoxClient(registry_path) as client:
        experiment = client.experiment("exp/resumed")
        assert experiment.metadata == {"lr": 0.1, "epochs": 6}
        assert [p["step"] for p in experiment.metrics()["loss"]] == [1, 2]
        new = client.log()[: len(client.log()) - commits]
    assert [e.operation for e in new if e.operation == "experiment.update"] == [
        "experiment.update"]


def test_metrics_keep_numbers_and_text_and_log_a_key_once_per_step(
    registry_path: Path,
) -> None:
    class Scalar:  # a framework's 0-d tensor
        size = 1

        def item(self) -> float:
            return 0.25

    assert metric_values({"a": 1, "b": float("nan"), "c": None, "d": Scalar(), "e": "x",
                          "f": True, "": 2.0}) == {"a": 1.0, "d": 0.25, "e": "x"}
    assert hyperparameter_values({"lr": 0.1, "layers": [8, 8], "fn": print, "none": None,
                                  "opt": {"a": 1}}) == {"lr": 0.1, "layers": [8, 8]}
    run = TrainingRun("exp/dedupe", registry_path, framework="keras", source="test")
    run.start()
    run.log_metrics({"loss": 0.9}, step=3)  # the batch's value
    run.log_metrics({"loss": 0.8, "val_loss": 1.0}, step=3)  # the epoch's logs repeat it
    run.close()
    with ModelBoxClient(registry_path) as client:
        series = client.experiment("exp/dedupe").metrics()
    assert [(p["step"], p["value"]) for p in series["loss"]] == [(3, 0.9)]
    assert [p["step"] for p in series["val_loss"]] == [3]


def test_bad_names_fail_before_training_with_a_clear_error_and_write_nothing(
    registry_path: Path, tmp_path: Path,
) -> None:
    with ModelBoxClient(registry_path) as client:
        before = len(client.log())
    with pytest.raises(InvalidNameError):
        TrainingRun("exp/../etc", registry_path, framework="keras", source="test")
    with ModelBoxClient(registry_path) as client:
        assert len(client.log()) == before
    run = TrainingRun("exp/ok", registry_path, framework="keras", source="test")
    run.start()
    saved = tmp_path / "x.ckpt"
    saved.write_bytes(b"x")
    with pytest.raises(InvalidNameError):
        run.checkpoint([saved], "../escape")
    run.close()
    with ModelBoxClient(registry_path) as client:
        assert client.experiment("exp/ok").checkpoints() == []


def test_events_survive_kill_9_like_metric_points_and_the_next_write_commits_them(
    registry_path: Path,
) -> None:
    """Epoch and checkpoint events were kept in a list until a flush: a ``kill -9`` lost
    them. They are journal lines now, as durable as the metric points beside them."""
    import json
    import os
    import signal

    from hostile import modelbox

    code = f"""
import sys, time
from modelbox.integrations._run import TrainingRun
run = TrainingRun("exp/killed", {str(registry_path)!r}, framework="other", source="test",
                  flush_every=3600)
run.start()
for epoch in range(3):
    run.event("epoch_start", epoch=epoch)
    run.log_metrics({{"loss": 1.0 / (epoch + 1)}}, step=epoch)
    run.event("epoch_end", epoch=epoch)
print("ready", flush=True)
time.sleep(60)
"""
    with subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                          text=True) as proc:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    # the next write of the same user commits what the journal holds
    assert modelbox("meta", "set", "exp/killed", "owner", '"me"', cwd=registry_path).code == 0
    with ModelBoxClient(registry_path) as client:
        experiment = client.experiment("exp/killed")
        events = [(e.name, e.metadata.get("epoch")) for e in experiment.events()]
        assert [p["step"] for p in experiment.metrics()["loss"]] == [0, 1, 2]
    assert events == [(name, epoch) for epoch in range(3)
                      for name in ("epoch_start", "epoch_end")]
    shown = modelbox("event", "list", "exp/killed", "--json", cwd=registry_path)
    assert shown.code == 0 and len(json.loads(shown.out)) == 6, shown


def test_the_training_thread_never_commits_its_journal_by_age(
    registry_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A plain client commits its journal from log_metrics once it is MAX_AGE old; in a
    training run that commit would stall the loop: the background thread does it."""
    from modelbox.client import _MetricBuffer

    def head() -> str:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=registry_path, check=True,
                              capture_output=True, text=True).stdout

    monkeypatch.setattr(_MetricBuffer, "MAX_AGE", 0.0)  # every point is "old"
    run = TrainingRun("exp/aged", registry_path, framework="other", source="test",
                      flush_every=3600)
    run.start()
    before = head()
    for step in range(5):
        run.log_metrics({"loss": 1.0 / (step + 1)}, step)
    assert head() == before  # nothing committed by the training thread
    run.close()
    with ModelBoxClient(registry_path) as client:
        assert len(client.experiment("exp/aged").metrics()["loss"]) == 5
        after = head()
        client.new_model("ai/plain")
        made = head()
        client.model("ai/plain").log_metrics({"x": 1.0})  # a plain client commits by age
        assert head() != made != after


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice is Linux's")
def test_the_upload_thread_runs_ten_nicer_than_training_and_training_keeps_its_own(
    registry_path: Path,
) -> None:
    # Hashing and committing take the CPU training leaves over (bench 14); the nice is
    # added to the trainer's own, as nice(1) does (modelbox.processes.yield_cpu).
    training = nice(os.getpid(), threading.get_native_id())
    run = TrainingRun("exp/nice", registry_path, framework="pytorch", source="nicetest")
    run.start()
    try:
        (worker,) = [t for t in threading.enumerate() if t.name == "modelbox-nicetest"]
        assert worker.native_id is not None
        deadline = time.monotonic() + 30
        while nice(os.getpid(), worker.native_id) == training and time.monotonic() < deadline:
            time.sleep(0.01)
        assert nice(os.getpid(), worker.native_id) == min(19, training + 10)
        assert nice(os.getpid(), threading.get_native_id()) == training
    finally:
        run.close()
