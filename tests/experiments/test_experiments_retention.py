"""Checkpoint retention (issue 17, item 3): --keep-last / --keep-best archive an
experiment's other checkpoints, never the newest, one audited commit each; gc --no-history
frees archived checkpoints' objects but never one a live version, checkpoint or promoted
version still references (promotion shares objects)."""

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
from modelbox.autopromote import edit_policy
from modelbox.names import parse_model

if TYPE_CHECKING:
    from conftest import Run

EXP = "ai/run-1"
MODEL = "ai/yolo"



@pytest.fixture
def client(registry_path: Path) -> Iterator[ModelBoxClient]:
    with ModelBoxClient(registry_path) as made:
        made.new_model(MODEL)
        made.new_experiment(EXP)
        yield made


def files(tmp_path: Path, epoch: int, **content: bytes) -> list[Path]:
    folder = tmp_path / f"e{epoch}"
    folder.mkdir()
    out = []
    for name, data in content.items():
        (folder / f"{name}.pt").write_bytes(data)
        out.append(folder / f"{name}.pt")
    return out


def archived(client: ModelBoxClient) -> list[str]:
    from modelbox import lifecycle

    return [c.checkpoint for c in lifecycle.list_checkpoints(client.registry, parse_model(EXP))
            if c.archived]


def test_keep_last_archives_the_older_checkpoints_one_audited_commit_each(
    client: ModelBoxClient, registry_path: Path, tmp_path: Path,
) -> None:
    edit_policy(client.registry, parse_model(EXP), keep_last=2)
    exp = client.experiment(EXP)
    for epoch in range(5):
        exp.new_checkpoint(epoch, metrics={"val_loss": 1.0},
                           files=files(tmp_path, epoch, w=b"%d" % epoch))
        time.sleep(0.01)
    client.flush()
    assert archived(client) == ["epoch-0", "epoch-1", "epoch-2"]
    log = git(registry_path, "log", "--format=%B%x00", "--grep=checkpoint.archive")
    messages = [m for m in log.split("\0") if m.strip()]
    assert len(messages) == 3
    assert all("Modelbox-Policy: checkpoint retention: keep the newest 2" in m
               for m in messages)
    # archived checkpoints keep their files and stay addressable
    assert [a.path for a in exp.checkpoint("epoch-0").artifacts()] == ["w.pt"]
    client.close()
    assert modelbox("check", cwd=registry_path).code == 0  # the policy file is known


def test_keep_best_keeps_the_best_and_always_the_newest(
    client: ModelBoxClient, tmp_path: Path,
) -> None:
    edit_policy(client.registry, parse_model(EXP), keep_best=1, by="val_loss", minimize=True)
    exp = client.experiment(EXP)
    for epoch, loss in enumerate([0.5, 0.1, 0.4, 0.9]):
        exp.new_checkpoint(epoch, metrics={"val_loss": loss},
                           files=files(tmp_path, epoch, w=b"%d" % epoch))
        time.sleep(0.01)
    client.flush()
    # epoch-3 is the worst but the newest: resume needs it
    assert archived(client) == ["epoch-0", "epoch-2"]
    assert exp.checkpoint().id == f"{EXP}@epoch-3"  # EXP:latest


def test_setting_retention_applies_it_at_once_and_reports_it(
    client: ModelBoxClient, registry_path: Path, run: Run, tmp_path: Path,
) -> None:
    exp = client.experiment(EXP)
    for epoch, acc in enumerate([0.9, 0.5, 0.7]):
        exp.new_checkpoint(epoch, metrics={"acc": acc},
                           files=files(tmp_path, epoch, w=b"%d" % epoch))
        time.sleep(0.01)
    client.close()
    os.chdir(registry_path)
    done = run("policy", "set", EXP, "--keep-best", "1", "--by", "acc", "--max", "--json")
    assert done.code == 0, done.err
    assert json.loads(done.out)["checkpoints"] == {"keep_last": None, "keep_best": 1,
                                                   "by": "acc", "minimize": False}
    listed = run("checkpoint", "list", EXP)
    lines = {line.split("\t")[0]: line for line in listed.out.splitlines()}
    assert lines["epoch-1"].endswith("\tarchived")
    assert not lines["epoch-0"].endswith("archived") and not lines["epoch-2"].endswith(
        "archived")
    text = run("policy", "show", EXP)
    assert "keep the newest and the best 1 by acc (highest first)" in text.out


def test_gc_frees_archived_checkpoints_objects_but_never_shared_ones(
    client: ModelBoxClient, registry_path: Path, run: Run, tmp_path: Path,
) -> None:
    """epoch-0's a.pt is promoted (the version shares the object); epoch-1 and epoch-2 share
    s.pt; retention archives epoch-0 and epoch-1. gc --no-history frees b.pt only."""
    edit_policy(client.registry, parse_model(EXP), promote_to=MODEL, when=["acc>=0.9"])
    exp = client.experiment(EXP)
    exp.new_checkpoint(0, metrics={"acc": 0.95}, files=files(tmp_path, 0, a=b"A" * 64))
    time.sleep(0.01)
    exp.new_checkpoint(1, metrics={"acc": 0.5},
                       files=files(tmp_path, 1, b=b"B" * 64, s=b"S" * 64))
    time.sleep(0.01)
    exp.new_checkpoint(2, metrics={"acc": 0.5},
                       files=files(tmp_path, 2, c=b"C" * 64, s=b"S" * 64))
    client.flush()
    assert [v.version for v in client.model(MODEL).versions()] == ["v0"]
    edit_policy(client.registry, parse_model(EXP), keep_last=1)
    assert archived(client) == ["epoch-0", "epoch-1"]
    digests = {a.path: a.checksum for c in exp.checkpoints() for a in c.artifacts()}
    client.close()
    age_store(registry_path, 24 * 30)
    os.chdir(registry_path)
    with_history = json.loads(run("gc", "--dry-run", "--json").out)
    assert with_history["delete"] == []
    # the dry runs list what checkpoint retention archived, and what gc would free of it
    assert with_history["archived_checkpoints"] == [
        {"checkpoint": f"{EXP}@epoch-0", "objects": 1, "bytes": 64, "freed": 0,
         "freed_bytes": 0},
        {"checkpoint": f"{EXP}@epoch-1", "objects": 2, "bytes": 128, "freed": 0,
         "freed_bytes": 0}]
    shown = run("gc", "--dry-run").out
    assert f"archived checkpoint {EXP}@epoch-1 keeps 2 object(s), 128 bytes (old commits" \
        in shown, shown
    no_history = json.loads(run("gc", "--dry-run", "--no-history", "--json").out)
    assert [(c["checkpoint"], c["freed"], c["freed_bytes"])
            for c in no_history["archived_checkpoints"]] == [
        (f"{EXP}@epoch-0", 0, 0), (f"{EXP}@epoch-1", 1, 64)]  # b.pt; a.pt and s.pt shared
    shown = run("gc", "--dry-run", "--no-history").out
    assert f"would free archived checkpoint {EXP}@epoch-1: 1 of 2 object(s), 64 of 128 " \
        "bytes" in shown, shown
    assert run("gc", "--no-history", "--json").code == 0
    store = registry_path / ".git" / "modelbox" / "store" / "sha256"
    left = {p.name for p in store.rglob("*") if p.is_file()}

    def kept(name: str) -> bool:
        return any(digests[name].removeprefix("sha256:").endswith(n) for n in left)

    assert not kept("b.pt")
    assert kept("a.pt") and kept("s.pt") and kept("c.pt")
    for ref, name in ((f"{MODEL}@v0", "a.pt"), (f"{EXP}:latest", "s.pt")):
        out = tmp_path / "out" / name
        got = run("get", ref, "-o", out)
        assert got.code == 0, got.err
        assert (out / name).exists()


def test_a_broken_checkpoint_file_from_a_co_user_skips_retention_with_one_warning(
    client: ModelBoxClient, registry_path: Path, tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    edit_policy(client.registry, parse_model(EXP), keep_last=1)
    exp = client.experiment(EXP)
    exp.new_checkpoint(0, files=files(tmp_path, 0, w=b"0"))
    broken = registry_path / "experiments/ai/run-1/_checkpoints/epoch-0/_checkpoint.json"
    broken.write_text('{"kind": "checkpoint", "experiment": 5}')
    git(registry_path, "commit", "-qam", "a co-user's hand edit")
    exp.new_checkpoint(1, files=files(tmp_path, 1, w=b"1"))
    client.flush()
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("checkpoint retention not applied" in w for w in warnings), warnings
    assert all("\n" not in w for w in warnings)
    assert (registry_path / "experiments/ai/run-1/_checkpoints/epoch-1").is_dir()


def test_a_checkpoint_restored_by_hand_stays_until_the_next_checkpoint(
    client: ModelBoxClient, registry_path: Path, run: Run, tmp_path: Path,
) -> None:
    edit_policy(client.registry, parse_model(EXP), keep_last=1)
    exp = client.experiment(EXP)
    for epoch in range(3):
        exp.new_checkpoint(epoch, files=files(tmp_path, epoch, w=b"%d" % epoch))
        time.sleep(0.01)
    client.close()
    os.chdir(registry_path)
    restored = run("checkpoint", "archive", f"{EXP}@epoch-0", "--restore", "--json")
    assert json.loads(restored.out) == {"checkpoint": f"{EXP}@epoch-0", "archived": False,
                                        "changed": True}
    with ModelBoxClient(registry_path) as again:
        assert archived(again) == ["epoch-1"]  # the restore was not undone by the policy
    assert run("checkpoint", "create", EXP, "epoch-3").code == 0
    with ModelBoxClient(registry_path) as again:
        assert archived(again) == ["epoch-0", "epoch-1", "epoch-2"]
    assert run("checkpoint", "archive", f"{EXP}:latest").out.startswith(
        f"Archived {EXP}@epoch-3")
    head = git(registry_path, "rev-parse", "HEAD")
    for bad in (MODEL + "@v9", f"{EXP}@nope", EXP):
        done = run("checkpoint", "archive", bad)
        assert done.code in (1, 2) and done.err.count("\n") == 1, done
    assert git(registry_path, "rev-parse", "HEAD") == head
