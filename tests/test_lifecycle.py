"""Experiments, checkpoints, promotion, buffered metrics and events (issue 6, first part)."""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from modelbox import Event, MLFramework, ModelBoxClient
from modelbox.errors import InvalidValueError, ModelboxError

if TYPE_CHECKING:
    from conftest import Run


def commits(path: Path) -> int:
    out = subprocess.run(["git", "rev-list", "--count", "HEAD"], cwd=path, check=True,
                         capture_output=True, text=True).stdout
    return int(out)


@pytest.fixture
def client(registry_path: Path) -> ModelBoxClient:
    return ModelBoxClient(registry_path)


def test_a_training_loop_logs_thousands_of_points_in_a_handful_of_commits(
    client: ModelBoxClient, registry_path: Path
) -> None:
    exp = client.new_experiment("run-1", "me", "ai/vision", framework=MLFramework.PYTORCH,
                                metadata={"lr": 3e-4, "batch": 64})
    before = commits(registry_path)
    for epoch in range(200):
        exp.log_metrics({"loss": 1 / (epoch + 1), "acc": epoch / 200}, step=epoch)
    assert commits(registry_path) == before  # buffered, nothing written yet
    series = exp.metrics()  # a read commits the buffer first
    assert commits(registry_path) == before + 1
    assert [p["step"] for p in series["loss"]][:3] == [0, 1, 2]
    assert len(series["acc"]) == 200
    client.close()


def test_closing_the_client_commits_buffered_points(registry_path: Path) -> None:
    with ModelBoxClient(registry_path) as client:
        client.new_experiment("ns/run").log_metrics({"loss": 0.5}, step=1)
    with ModelBoxClient(registry_path) as again:
        assert again.experiment("ns/run").metrics()["loss"][0]["value"] == 0.5


def test_bad_metric_values_are_refused_when_logged(client: ModelBoxClient) -> None:
    exp = client.new_experiment("ns/run")
    with pytest.raises(InvalidValueError, match="'loss'"):
        exp.log_metrics({"loss": math.nan}, step=1)
    with pytest.raises(InvalidValueError, match="step"):
        exp.log_metrics({"loss": 1.0}, step="one")  # type: ignore[arg-type]  # the bad type is the test
    with pytest.raises(InvalidValueError, match="'raw'"):
        exp.log_metrics({"raw": [0, 1]})  # type: ignore[dict-item]  # a list: not a metric value
    assert exp.metrics() == {}


def test_creating_an_experiment_or_checkpoint_twice_returns_the_first(
    client: ModelBoxClient, registry_path: Path
) -> None:
    first = client.new_experiment("ns/run", owner="a", metadata={"lr": 1})
    ckpt = first.new_checkpoint(3, metrics={"acc": 0.5})
    client.flush()
    head = commits(registry_path)
    again = client.new_experiment("ns/run", owner="b", metadata={"lr": 2})
    assert again.owner == "a" and again.metadata == {"lr": 1}
    assert again.new_checkpoint(3).id == ckpt.id == "ns/run@epoch-3"
    assert commits(registry_path) == head


def test_a_promoted_checkpoint_shares_its_objects_and_records_lineage(
    client: ModelBoxClient, registry_path: Path, tmp_path: Path
) -> None:
    weights = tmp_path / "ckpt.pt"
    weights.write_bytes(b"w" * 4096)
    model = client.new_model("ai/vision/yolo")
    exp = client.new_experiment("ai/vision/run-17", framework="pytorch")
    ckpt = exp.new_checkpoint(7, metrics={"acc": 0.93}, files=[weights])
    store = registry_path / ".git" / "modelbox" / "store"
    objects_before = sorted(p.name for p in store.rglob("*") if p.is_file())
    mv = ckpt.promote(model, "v3", unique_tags=["candidate"])
    assert sorted(p.name for p in store.rglob("*") if p.is_file()) == objects_before
    assert [a.checksum for a in mv.artifacts()] == [a.checksum for a in ckpt.artifacts()]
    assert mv.metrics_summary == {"acc": 0.93}
    assert mv.metadata["source_checkpoint"] == "ai/vision/run-17@epoch-7"
    assert mv.framework == MLFramework.PYTORCH
    assert client.resolve("ai/vision/yolo:candidate") == "v3"
    [promoted] = [c for c in exp.checkpoints() if c.id == ckpt.id]
    assert client.log("ai/vision/yolo@v3")[0].operation == "checkpoint.promote"
    assert promoted.epoch == 7


def test_events_are_listed_in_order_and_filtered_by_date(
    client: ModelBoxClient, run: Run, registry_path: Path
) -> None:
    mv = client.new_model("m").new_model_version("v1")
    mv.log_event(Event("benchmarked", source="ci", wallclock=1_700_000_000.0))
    mv.log_event(Event("deployed", source="k8s/prod", metadata={"replicas": 3}))
    assert [e.name for e in mv.events()] == ["benchmarked", "deployed"]
    result = run("--repo", registry_path, "event", "list", "m@v1", "--since", "2024-01-01",
                 "--json")
    assert [e["name"] for e in json.loads(result.out)] == ["deployed"]
    with pytest.raises(ModelboxError, match="event name"):
        mv.log_event(Event(""))


def test_a_name_is_a_model_or_an_experiment_never_both(client: ModelBoxClient) -> None:
    client.new_model("ns/x")
    with pytest.raises(ModelboxError, match="is a model"):
        client.new_experiment("ns/x")
    client.new_experiment("ns/y")
    with pytest.raises(ModelboxError, match="is an experiment"):
        client.new_model("ns/y")


def test_the_cli_lists_experiments_and_checkpoints_and_shows_metrics(
    run: Run, registry_path: Path, tmp_path: Path
) -> None:
    repo = ("--repo", str(registry_path))
    assert run(*repo, "experiment", "create", "ai/vision/run-1", "--meta", "lr=0.1").code == 0
    ckpt = "ai/vision/run-1@epoch-0"
    made = run(*repo, "checkpoint", "create", "ai/vision/run-1", "epoch-0", "--epoch", "0")
    assert made.code == 0
    assert run(*repo, "metrics", "log", ckpt, "acc=0.5", "--step", "0").code == 0
    listed = json.loads(run(*repo, "experiment", "list", "ai", "--json").out)
    assert [e["name"] for e in listed] == ["run-1"]
    ckpts = json.loads(run(*repo, "checkpoint", "list", "ai/vision/run-1", "--json").out)
    assert ckpts[0]["metrics"] == {"acc": 0.5}
    shown = json.loads(run(*repo, "metrics", "show", "ai/vision/run-1@epoch-0", "--json").out)
    assert shown["acc"][0]["step"] == 0
    png = tmp_path / "acc.png"
    assert run(*repo, "metrics", "show", "ai/vision/run-1@epoch-0", "--plot", str(png)).code == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert run(*repo, "model", "create", "ai/vision/yolo").code == 0
    promoted = run(*repo, "checkpoint", "promote", "ai/vision/run-1@epoch-0",
                   "ai/vision/yolo@v1", "--tag", "staging")
    assert promoted.code == 0, promoted.err
    assert run(*repo, "resolve", "ai/vision/yolo:staging").out.strip() == "v1"
    missing = run(*repo, "checkpoint", "list", "ai/vision/nope")
    assert missing.code == 1 and "ai/vision/nope" in missing.err
