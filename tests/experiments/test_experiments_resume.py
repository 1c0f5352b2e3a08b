"""Resume (issue 17, item 4): EXP:latest and EXP:best name checkpoints in the one resolver,
for `get`, `artifact list`, `resolve` and the Python API; `best` and `latest` are reserved
checkpoint names."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from experiments_helpers import git
from hostile import age_store, modelbox

from modelbox import ModelBoxClient
from modelbox.autopromote import archive_checkpoint
from modelbox.errors import InvalidValueError, NotFoundError
from modelbox.names import parse_model

if TYPE_CHECKING:
    from conftest import Run

EXP = "ai/run-1"


@pytest.fixture
def client(registry_path: Path) -> Iterator[ModelBoxClient]:
    with ModelBoxClient(registry_path) as made:
        made.new_experiment(EXP)
        yield made


def file(tmp_path: Path, name: str, content: bytes) -> Path:
    path = tmp_path / "src" / name
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(content)
    return path


def test_a_preempted_job_resumes_from_the_newest_checkpoint_with_the_real_cli(
    client: ModelBoxClient, registry_path: Path, tmp_path: Path,
) -> None:
    """End to end, as a job script runs it: a real `modelbox` process downloads
    EXP:latest, archived or not, and the bytes are the newest checkpoint's."""
    exp = client.experiment(EXP)
    for epoch in range(3):
        exp.new_checkpoint(epoch, metrics={"val_loss": 1.0 - epoch / 10},
                           files=[file(tmp_path, "state.pt", b"epoch %d" % epoch)])
        time.sleep(0.01)  # creation times in order even on a coarse clock
    client.flush()
    archive_checkpoint(client.registry, parse_model(EXP), "epoch-2")  # latest ignores it
    out = tmp_path / "ckpt"
    got = modelbox("get", f"{EXP}:latest", "-o", out, "--json", cwd=registry_path)
    assert got.code == 0, got.err
    assert (out / "state.pt").read_bytes() == b"epoch 2"
    resolved = modelbox("resolve", f"{EXP}:latest", "--json", cwd=registry_path)
    assert json.loads(resolved.out) == {"ref": f"{EXP}:latest", "model": EXP,
                                           "version": "epoch-2", "experiment": True}


def test_best_follows_the_experiment_metric_and_direction(
    client: ModelBoxClient, registry_path: Path, run: Run, tmp_path: Path,
) -> None:
    exp = client.experiment(EXP)
    for epoch, loss in enumerate([0.9, 0.2, 0.5]):
        exp.new_checkpoint(epoch, metrics={"val_loss": loss},
                           files=[file(tmp_path, "w.pt", b"w%d" % epoch)])
    client.flush()
    client.close()
    os.chdir(registry_path)
    unset = run("resolve", f"{EXP}:best")
    assert unset.code == 1 and "has no best metric" in unset.err
    assert "experiment update ai/run-1 --best-by METRIC --min" in unset.err
    assert run("experiment", "update", EXP, "--best-by", "val_loss", "--min").code == 0
    assert run("resolve", f"{EXP}:best").out.strip() == "epoch-1"
    listed = run("artifact", "list", f"{EXP}:best", "--json")
    assert listed.code == 0, listed.err
    assert [a["path"] for a in json.loads(listed.out)] == ["w.pt"]
    updated = run("experiment", "update", EXP, "--best-by", "val_loss", "--max", "--json")
    assert json.loads(updated.out)["best_direction"] == "max"
    assert run("resolve", f"{EXP}:best").out.strip() == "epoch-0"
    # an archived checkpoint is never best (gc --no-history may free its objects)
    with ModelBoxClient(registry_path) as again:
        archive_checkpoint(again.registry, parse_model(EXP), "epoch-0")
        assert again.experiment(EXP).checkpoint("best").id == f"{EXP}@epoch-2"
        assert again.resolve(f"{EXP}:latest") == "epoch-2"
    missing = run("experiment", "update", EXP, "--best-by", "val_acc", "--min")
    assert missing.code == 0
    none = run("get", f"{EXP}:best", "-o", tmp_path / "x")
    assert none.code == 1 and "has the metric 'val_acc'" in none.err
    assert none.err.count("\n") == 1


def test_the_python_api_resumes_from_latest_and_best(
    client: ModelBoxClient, tmp_path: Path,
) -> None:
    exp = client.experiment(EXP)
    with pytest.raises(NotFoundError, match="has no checkpoint yet"):
        exp.checkpoint()
    exp.new_checkpoint(1, metrics={"acc": 0.7}, files=[file(tmp_path, "a.pt", b"one")])
    exp.new_checkpoint(2, metrics={"acc": 0.6}, files=[file(tmp_path, "a.pt", b"two")])
    exp.set_best("acc", "max")
    assert exp.checkpoint().id == f"{EXP}@epoch-2"
    best = exp.checkpoint("best")
    assert best.id == f"{EXP}@epoch-1"
    [placed] = best.download_artifacts(tmp_path / "resume")
    assert placed.read_bytes() == b"one"
    assert exp.checkpoint("epoch-2").id == f"{EXP}@epoch-2"


@pytest.mark.parametrize("name", ["best", "latest"])
def test_a_checkpoint_cannot_take_a_computed_name(
    client: ModelBoxClient, registry_path: Path, run: Run, name: str,
) -> None:
    with pytest.raises(InvalidValueError, match="reserved"):
        client.experiment(EXP).new_checkpoint(name)
    client.close()
    head = git(registry_path, "rev-parse", "HEAD")
    os.chdir(registry_path)
    done = run("checkpoint", "create", EXP, name)
    assert done.code == 1 and done.err.count("\n") == 1 and "reserved" in done.err
    assert git(registry_path, "rev-parse", "HEAD") == head


def test_best_is_reserved_on_experiments_only(
    client: ModelBoxClient, registry_path: Path, run: Run,
) -> None:
    """A model may have a tag `best`; an experiment has no other tag than its aliases."""
    client.new_model("ai/m").new_model_version("v1", unique_tags=["best"])
    client.close()
    os.chdir(registry_path)
    assert run("resolve", "ai/m:best").out.strip() == "v1"
    other = run("resolve", f"{EXP}:prod")
    assert other.code == 1 and "experiments have no tags, only" in other.err


def test_bad_update_options_are_one_line_and_change_nothing(
    client: ModelBoxClient, registry_path: Path, run: Run,
) -> None:
    client.close()
    head = git(registry_path, "rev-parse", "HEAD")
    os.chdir(registry_path)
    for args in (["--best-by", "val_loss"], [], ["--clear-best", "--min"]):
        done = run("experiment", "update", EXP, *args)
        assert done.code == 1 and done.err.startswith("modelbox: error:"), done.err
        assert done.err.count("\n") == 1
    assert run("experiment", "update", "ai/nope", "--best-by", "x", "--min").code == 1
    assert git(registry_path, "rev-parse", "HEAD") == head


def test_a_checkpoint_links_into_a_collection_with_everything_collections_do(
    client: ModelBoxClient, registry_path: Path, run: Run, tmp_path: Path,
) -> None:
    exp = client.experiment(EXP)
    exp.new_checkpoint(0, metrics={"acc": 0.9}, files=[file(tmp_path, "w.pt", b"zero")])
    exp.new_checkpoint(1, metrics={"acc": 0.8}, files=[file(tmp_path, "w.pt", b"one")])
    exp.new_checkpoint(2)  # no files
    client.new_collection("ai/picks")
    client.close()
    os.chdir(registry_path)
    made = run("link", f"{EXP}@epoch-0", "ai/picks", "--tag", "first", "--json")
    assert made.code == 0, made.err
    assert json.loads(made.out)["link"] == f"{EXP}@epoch-0"
    listed = json.loads(run("artifact", "list", "ai/picks:first", "--json").out)
    assert [(a["path"], a["parent"]) for a in listed] == [("w.pt", f"{EXP}@epoch-0")]
    assert run("get", "ai/picks@v0", "-o", tmp_path / "got").code == 0
    assert (tmp_path / "got" / "w.pt").read_bytes() == b"zero"
    steps = json.loads(run("lineage", "ai/picks@v0", "--json").out)["lineage"]
    assert [(s["kind"], s["name"]) for s in steps] == [
        ("link", "ai/picks@v0"), ("checkpoint", f"{EXP}@epoch-0"), ("experiment", EXP)]
    assert run("experiment", "update", EXP, "--best-by", "acc", "--max").code == 0
    twice = run("link", f"{EXP}:best", "ai/picks")  # EXP:best is epoch-0: linked already
    assert twice.code == 1 and "linked into ai/picks already" in twice.err
    empty = run("link", f"{EXP}@epoch-2", "ai/picks")
    assert empty.code == 1 and "has no artifacts" in empty.err
    # the link keeps an archived checkpoint's objects through gc --no-history
    with ModelBoxClient(registry_path) as again:
        archive_checkpoint(again.registry, parse_model(EXP), "epoch-0")
    refused = run("link", f"{EXP}@epoch-0", "ai/other")
    assert refused.code == 1
    age_store(registry_path, 24 * 30)
    assert run("gc", "--no-history").code == 0
    assert run("get", "ai/picks@v0", "-o", tmp_path / "after").code == 0
    assert (tmp_path / "after" / "w.pt").read_bytes() == b"zero"
    unlinked = run("unlink", "ai/picks@v0", "--force", "--json")
    assert json.loads(unlinked.out)["source"] == f"{EXP}@epoch-0"



def test_an_experiment_whose_checkpoint_is_linked_is_not_deleted_without_force(
    client: ModelBoxClient, registry_path: Path, run: Run, tmp_path: Path,
) -> None:
    client.experiment(EXP).new_checkpoint(0, files=[file(tmp_path, "w.pt", b"w")])
    client.new_collection("ai/picks")
    client.close()
    os.chdir(registry_path)
    assert run("link", f"{EXP}@epoch-0", "ai/picks").code == 0
    head = git(registry_path, "rev-parse", "HEAD")
    refused = run("experiment", "delete", EXP)
    assert refused.code == 1 and "unlink the collection links" in refused.err
    assert refused.err.count("\n") == 1
    assert git(registry_path, "rev-parse", "HEAD") == head
    assert run("experiment", "delete", EXP, "--force").code == 0
