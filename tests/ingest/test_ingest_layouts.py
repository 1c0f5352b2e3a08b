"""Which checkpoints are whole, per layout, on real files (issue 17 item 1)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from modelbox.errors import MetricsFileError
from modelbox.ingest import formats, layouts, metrics

from .trainers import hf_checkpoint, keras_file, safetensors_bytes, torch_ckpt


def test_a_torch_checkpoint_is_whole_only_with_its_central_directory(tmp_path: Path) -> None:
    whole = torch_ckpt(tmp_path / "epoch=1-step=20.ckpt", b"\x07" * 50_000)
    assert formats.torch_complete(whole)
    data = whole.read_bytes()
    for cut in (10, len(data) // 2, len(data) - 1):  # a trainer killed mid-write
        (tmp_path / "cut.ckpt").write_bytes(data[:cut])
        assert not formats.torch_complete(tmp_path / "cut.ckpt")
    keras = keras_file(tmp_path / "model.keras")
    assert not formats.torch_complete(keras)  # a zip, but not torch's


def test_a_keras_file_needs_its_config_and_metadata(tmp_path: Path) -> None:
    assert formats.keras_complete(keras_file(tmp_path / "m.keras"))
    assert not formats.keras_complete(torch_ckpt(tmp_path / "x.ckpt"))
    data = (tmp_path / "m.keras").read_bytes()
    (tmp_path / "cut.keras").write_bytes(data[:-5])
    assert not formats.keras_complete(tmp_path / "cut.keras")


def test_safetensors_size_must_equal_header_plus_data(tmp_path: Path) -> None:
    data = safetensors_bytes({"w": 100, "b": 10})
    path = tmp_path / "model.safetensors"
    path.write_bytes(data)
    assert formats.safetensors_complete(path)
    for bad in (data[:-1], data + b"\x00", data[:4], b"\xff" * 8 + b"{}",
                (2**40).to_bytes(8, "little") + b"{}"):
        path.write_bytes(bad)
        assert not formats.safetensors_complete(path), bad[:12]


def test_hdf5_is_whole_when_the_superblock_end_matches_the_size(tmp_path: Path) -> None:
    h5py = pytest.importorskip("h5py", reason="h5py (not a dependency) writes the real file")
    import numpy as np

    for libver in ("earliest", "latest"):  # superblock versions 0 and 3
        path = tmp_path / f"{libver}.weights.h5"
        with h5py.File(path, "w", libver=libver) as f:
            f["dense/kernel"] = np.ones((64, 64))
        assert formats.hdf5_complete(path)
        data = path.read_bytes()
        (tmp_path / "cut.h5").write_bytes(data[:-1])
        assert not formats.hdf5_complete(tmp_path / "cut.h5")
    writing = h5py.File(tmp_path / "open.h5", "w", libver="latest")
    writing["x"] = np.ones(1000)
    writing.flush()
    assert not formats.hdf5_complete(tmp_path / "open.h5")  # the writer still has it open
    writing.close()
    assert formats.hdf5_complete(tmp_path / "open.h5")
    (tmp_path / "not.h5").write_bytes(b"garbage" * 20)
    assert not formats.hdf5_complete(tmp_path / "not.h5")


def test_a_huggingface_checkpoint_is_whole_once_trainer_state_parses(tmp_path: Path) -> None:
    hf_checkpoint(tmp_path, 10)
    hf_checkpoint(tmp_path, 20, state=b'{"global_step": 20, "log_hist')  # mid-write
    hf_checkpoint(tmp_path, 30, weights=safetensors_bytes({"w": 64})[:-3])
    (tmp_path / "checkpoint-40").mkdir()  # started, nothing written yet
    hf_checkpoint(tmp_path, 50, state=b'["not", "an", "object"]')  # malformed but whole
    found = {c.source: c for c in layouts.scan(tmp_path).candidates}
    assert {s: c.complete for s, c in found.items()} == {
        "checkpoint-10": True, "checkpoint-20": False, "checkpoint-30": False,
        "checkpoint-40": False, "checkpoint-50": True}
    assert (found["checkpoint-10"].step, found["checkpoint-10"].epoch) == (10, 1)
    assert [p.name for p in found["checkpoint-10"].files] == [
        "config.json", "model.safetensors", "optimizer.pt", "trainer_state.json"]


def test_file_layouts_and_their_numbers_and_names(tmp_path: Path) -> None:
    torch_ckpt(tmp_path / "lightning_logs/version_0/checkpoints/epoch=2-step=300.ckpt")
    keras_file(tmp_path / "model.03-0.45.keras")
    (tmp_path / "weights.safetensors").write_bytes(safetensors_bytes({"w": 4}))
    (tmp_path / "lightning_logs/version_0/metrics.csv").write_text("epoch,step,loss\n")
    plain = tmp_path / "export-step-7"
    plain.mkdir()
    (plain / "weights.bin").write_bytes(b"w")
    (plain / layouts.MARKER).write_text("")
    (tmp_path / "unmarked").mkdir()
    (tmp_path / "unmarked" / "weights.bin").write_bytes(b"w")
    found = layouts.scan(tmp_path)
    by = {c.source: c for c in found.candidates}
    assert set(by) == {"lightning_logs/version_0/checkpoints/epoch=2-step=300.ckpt",
                       "model.03-0.45.keras", "weights.safetensors", "export-step-7"}
    ckpt = by["lightning_logs/version_0/checkpoints/epoch=2-step=300.ckpt"]
    assert (ckpt.layout, ckpt.epoch, ckpt.step) == ("lightning", 2, 300)
    assert layouts.checkpoint_id(ckpt) == "epoch-2-step-300"
    assert (by["model.03-0.45.keras"].layout, by["model.03-0.45.keras"].epoch) == ("keras", 3)
    assert [p.name for p in by["export-step-7"].files] == ["weights.bin"]  # marker left out
    assert by["export-step-7"].step == 7
    assert [p.name for p in found.metric_files] == ["metrics.csv"]


def test_checkpoint_names_from_hostile_file_names_are_valid(tmp_path: Path) -> None:
    from modelbox.names import check_segment

    for name in ("..x.ckpt", "-.ckpt", "a b;rm -rf.ckpt", "x.lock.ckpt",
                 "é" * 120 + "x" * 10 + ".ckpt", "...ckpt.ckpt"):
        path = torch_ckpt(tmp_path / name)
        (candidate,) = [c for c in layouts.scan(tmp_path).candidates if c.path == path]
        check_segment("checkpoint", layouts.checkpoint_id(candidate))
        path.unlink()


def test_symbolic_links_are_reported_and_never_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    torch_ckpt(outside / "secret.ckpt")
    watched = tmp_path / "run"
    watched.mkdir()
    (watched / "stolen.ckpt").symlink_to(outside / "secret.ckpt")
    (watched / "linked-dir").symlink_to(outside)
    folder = hf_checkpoint(watched, 10)
    (folder / "extra.bin").symlink_to(outside / "secret.ckpt")
    found = layouts.scan(watched)
    assert sorted(found.links) == ["linked-dir", "stolen.ckpt"]  # inside one: its problem
    (only,) = found.candidates
    assert only.problem == "extra.bin inside is a symbolic link" and only.files == ()


def test_metric_files_parse_and_malformed_ones_say_why(tmp_path: Path) -> None:
    csv = tmp_path / "metrics.csv"
    csv.write_text("epoch,step,train_loss,val_acc\n0,9,0.5,\n0,9,,0.7\n1,19,0.25,\n1,2")
    assert metrics.csv_log(csv) == ("step", [("train_loss", 9, 0.5), ("val_acc", 9, 0.7),
                                             ("train_loss", 19, 0.25)])
    keras = tmp_path / "training.csv"
    keras.write_text("epoch,accuracy,loss\n0,0.5,1.2\n1,0.75,0.8\n")
    assert metrics.csv_log(keras)[0] == "epoch"
    (tmp_path / "bad.csv").write_text("loss,acc\n1,2\n")
    with pytest.raises(MetricsFileError, match="no step or epoch column"):
        metrics.csv_log(tmp_path / "bad.csv")
    (tmp_path / "bin.csv").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(MetricsFileError, match="cannot be read"):
        metrics.csv_log(tmp_path / "bin.csv")
    state = tmp_path / "trainer_state.json"
    state.write_text(json.dumps({"log_history": {"loss": 1}}))
    with pytest.raises(MetricsFileError, match="log_history is not a list"):
        metrics.trainer_state(state)
    state.write_text(json.dumps({"log_history": [{"step": 1, "bad\nkey": 1.0}]}))
    with pytest.raises(MetricsFileError, match="key rules"):
        metrics.trainer_state(state)
    plain = tmp_path / "metrics.json"
    plain.write_text(json.dumps({"acc": 0.9, "note": "text", "nan": "NaN"}))
    assert metrics.metrics_json(plain, 7) == [("acc", 7, 0.9)]


def test_a_checkpoint_known_as_it_is_now_is_not_looked_into(tmp_path: Path) -> None:
    """A watcher passes what it ingested: those are left out without opening them, so a
    poll of a folder of many checkpoints costs stats, not reads."""
    ckpt = torch_ckpt(tmp_path / "epoch=0-step=10.ckpt")
    hf = hf_checkpoint(tmp_path, 10)
    known = {("epoch=0-step=10.ckpt", layouts.fingerprint(ckpt)),
             ("checkpoint-10", layouts.fingerprint(hf))}
    # Same sizes and times, unreadable inside: opening them would find them broken.
    for path in (ckpt, hf / layouts.HF_STATE):
        held = path.stat()
        path.write_bytes(b"\0" * held.st_size)
        os.utime(path, ns=(held.st_atime_ns, held.st_mtime_ns))
    assert layouts.scan(tmp_path, known).candidates == []
    found = {c.source: c.complete for c in layouts.scan(tmp_path).candidates}
    assert found == {"epoch=0-step=10.ckpt": False, "checkpoint-10": False}
    # Written again (a new time): looked at, as a new checkpoint.
    torch_ckpt(ckpt.with_name("rewritten.ckpt"))
    os.replace(ckpt.with_name("rewritten.ckpt"), ckpt)
    assert [c.source for c in layouts.scan(tmp_path, known).candidates] == [
        "epoch=0-step=10.ckpt"]
