"""Real checkpoint files in each trainer's layout, written byte for byte as the trainers
write them (torch's zip, Keras' zip, safetensors, HDF5 through h5py when installed)."""

from __future__ import annotations

import json
import struct
import zipfile
from pathlib import Path


def torch_ckpt(path: Path, payload: bytes = b"\x00" * 1000) -> Path:
    """A ``torch.save`` zip as Lightning writes it: ARCHIVE/data.pkl, data/0, version."""
    path.parent.mkdir(parents=True, exist_ok=True)
    stem = path.name.split(".")[0]
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(f"{stem}/data.pkl", b"\x80\x02}q\x00.")
        archive.writestr(f"{stem}/byteorder", b"little")
        archive.writestr(f"{stem}/data/0", payload)
        archive.writestr(f"{stem}/version", b"3\n")
    return path


def keras_file(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("metadata.json", json.dumps({"keras_version": "3.5.0"}))
        archive.writestr("config.json", json.dumps({"class_name": "Sequential"}))
        archive.writestr("model.weights.h5", b"\x89HDF\r\n\x1a\n")
    return path


def safetensors_bytes(tensors: dict[str, int]) -> bytes:
    """A safetensors file of float32 tensors of the given element counts."""
    header: dict[str, object] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, count in tensors.items():
        header[name] = {"dtype": "F32", "shape": [count], "data_offsets": [offset,
                                                                           offset + 4 * count]}
        offset += 4 * count
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + b"\x01" * offset


def hf_checkpoint(root: Path, step: int, history: list[dict[str, float]] | None = None,
                  *, state: bytes | None = None, weights: bytes | None = None) -> Path:
    """``checkpoint-STEP/`` as the Trainer writes it, ``trainer_state.json`` last."""
    folder = root / f"checkpoint-{step}"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text('{"model_type": "bert"}')
    (folder / "model.safetensors").write_bytes(
        weights if weights is not None else safetensors_bytes({"w": 64, "b": 8}))
    (folder / "optimizer.pt").write_bytes(b"opt" * 100)
    rows = history if history is not None else [
        {"loss": 1.0 / s, "learning_rate": 1e-4, "epoch": s / 10, "step": s}
        for s in range(10, step + 1, 10)]
    (folder / "trainer_state.json").write_bytes(
        state if state is not None else json.dumps(
            {"global_step": step, "epoch": step / 10, "log_history": rows}).encode())
    return folder
