"""What a trainer's folder holds: its checkpoints, whether each is whole, its metric files.

Layouts (docs/experiments.md):

* Hugging Face Trainer: ``checkpoint-N/`` folders, whole once ``trainer_state.json``
  (written last) parses; every ``*.safetensors`` in it must be whole too.
* PyTorch Lightning: ``*.ckpt`` files (``epoch=E-step=S.ckpt``), whole when they open as
  torch's zip with its ``data.pkl``.
* Keras: ``*.keras`` (a zip with ``config.json``) and ``*.h5`` / ``*.weights.h5`` (an
  HDF5 superblock whose end-of-file address is the file's size).
* safetensors: ``*.safetensors`` files, whole when header and size agree.
* plain: any folder holding :data:`MARKER` (written by the trainer when it is done), with
  an optional ``metrics.json``.

Metric files for the file layouts are the ``*.csv`` files anywhere in the folder
(Lightning's CSVLogger ``metrics.csv``, Keras' CSVLogger). Symbolic links are never
followed: each is reported once and skipped (a link could point anywhere on the machine).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Container
from dataclasses import dataclass, field
from pathlib import Path

from modelbox.errors import MetricsFileError
from modelbox.ingest import formats
from modelbox.ingest.metrics import load_json

#: The plain layout's "this folder is complete" file: the trainer writes it last.
MARKER = ".modelbox-complete"
HF_STATE = "trainer_state.json"
PLAIN_METRICS = "metrics.json"
MAX_DEPTH = 6
_HF_DIR = re.compile(r"checkpoint-(\d+)")
_EPOCH = re.compile(r"epoch[=_-]?(\d+)", re.IGNORECASE)
_STEP = re.compile(r"(?:step|checkpoint)[=_-]?(\d+)", re.IGNORECASE)
_KERAS_EPOCH = re.compile(r"^[A-Za-z_]*[._-]?(\d+)(?:[._-]|$)")  # model.03-0.45.keras
_FILE_CHECKS: dict[str, tuple[str, Callable[[Path], bool]]] = {
    ".ckpt": ("lightning", formats.torch_complete),
    ".keras": ("keras", formats.keras_complete),
    ".h5": ("keras", formats.hdf5_complete),
    ".safetensors": ("safetensors", formats.safetensors_complete),
}


@dataclass(frozen=True)
class Candidate:
    """One checkpoint the trainer wrote (or is writing)."""

    source: str  # its path relative to the watched folder, with '/'
    path: Path
    layout: str
    complete: bool
    epoch: int | None = None
    step: int | None = None
    files: tuple[Path, ...] = ()  # what to upload (a folder's entries, the marker left out)
    problem: str = ""  # why it is skipped for good (a link inside), else ""

    @property
    def stem(self) -> str:
        name = self.path.name
        for suffix in (".weights.h5", *_FILE_CHECKS):
            if name.endswith(suffix) and name != suffix:
                return name[: -len(suffix)]
        return name

    def fingerprint(self) -> str:
        """See :func:`fingerprint`."""
        return fingerprint(self.path)


def fingerprint(path: Path) -> str:
    """Name, size and modification time of every file of the checkpoint at ``path``: what
    tells it from one written later under the same name, without reading it.

    Raises:
        OSError: a file vanished meanwhile.
    """
    digest = hashlib.sha256()
    for file in sorted(_files(path)):
        st = file.lstat()
        rel = file.relative_to(path).as_posix() if file != path else ""
        digest.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:32]


@dataclass
class Scan:
    candidates: list[Candidate] = field(default_factory=list)
    metric_files: list[Path] = field(default_factory=list)  # *.csv of the file layouts
    links: list[str] = field(default_factory=list)  # symbolic links met, never followed


def _files(path: Path) -> list[Path]:
    if not path.is_dir():
        return [path]
    out: list[Path] = []
    for folder, dirs, names in os.walk(path):
        out.extend(Path(folder, n) for n in names)
        out.extend(Path(folder, d) for d in dirs if Path(folder, d).is_symlink())
    return out


def _number(pattern: re.Pattern[str], text: str) -> int | None:
    found = pattern.search(text)
    return int(found.group(1)) if found else None


def scan(root: Path, known: Container[tuple[str, str]] = ()) -> Scan:
    """Every checkpoint under ``root`` (complete or not), its metric files and links.

    A checkpoint whose ``(source, fingerprint)`` is in ``known`` (ingested already) is
    left out without a look inside: a watcher polls a folder of dozens of checkpoints
    every few seconds, and opening each (its zip directory, its ``trainer_state.json``)
    would cost more than the new one.
    """
    out = Scan()

    def seen(path: Path) -> bool:
        if not known:
            return False
        try:
            return (path.relative_to(root).as_posix(), fingerprint(path)) in known
        except OSError:
            return False  # vanishing: the look inside says so
    for folder, dirs, names in os.walk(root):
        here = Path(folder)
        depth = len(here.relative_to(root).parts)
        for name in [*dirs, *names]:
            if (here / name).is_symlink():
                out.links.append((here / name).relative_to(root).as_posix())
        dirs[:] = sorted(d for d in dirs if not (here / d).is_symlink()
                         and d != ".git" and depth < MAX_DEPTH)
        kept = []
        for name in dirs:
            path = here / name
            folder_layout = _folder_layout(path)
            if folder_layout is not None:
                if not seen(path):
                    out.candidates.append(folder_layout(root, path))
            else:
                kept.append(name)
        dirs[:] = kept
        for name in sorted(names):
            path = here / name
            if path.is_symlink():
                continue
            if name.endswith(".csv"):
                out.metric_files.append(path)
            suffix = next((s for s in _FILE_CHECKS if name.endswith(s) and name != s), None)
            if suffix is not None and not seen(path):
                out.candidates.append(_file(root, path, suffix))
    return out


def _folder_layout(path: Path) -> Callable[[Path, Path], Candidate] | None:
    """How to read the folder ``path`` as a checkpoint; None: it is not one."""
    if _HF_DIR.fullmatch(path.name):
        return _huggingface
    if (path / MARKER).is_file() and not (path / MARKER).is_symlink():
        return _plain
    return None


def _entries(path: Path, leave_out: tuple[str, ...] = ()) -> tuple[tuple[Path, ...], str]:
    """A folder's entries to upload, or the reason it cannot be (a link inside)."""
    for file in _files(path):
        if file.is_symlink():
            return (), f"{file.relative_to(path).as_posix()} inside is a symbolic link"
    return tuple(sorted(p for p in path.iterdir() if p.name not in leave_out)), ""


def _huggingface(root: Path, path: Path) -> Candidate:
    source = path.relative_to(root).as_posix()
    state_file = path / HF_STATE
    step = int(_HF_DIR.fullmatch(path.name).group(1))  # type: ignore[union-attr]  # matched by the caller
    whole = state_file.is_file() and not state_file.is_symlink()
    epoch = None
    if whole:
        try:
            state = load_json(state_file)
        except MetricsFileError:
            whole = False  # not written yet (or cut short): the Trainer writes it last
        else:  # JSON of another shape is the trainer's problem: warned about, ingested
            raw = state.get("epoch") if isinstance(state, dict) else None
            if isinstance(raw, (int, float)) and not isinstance(raw, bool) and raw >= 0:
                epoch = int(raw)
    if whole:
        whole = all(formats.safetensors_complete(p) for p in path.glob("*.safetensors"))
    files, problem = _entries(path) if whole else ((), "")
    return Candidate(source, path, "huggingface", whole, epoch, step, files, problem)


def _plain(root: Path, path: Path) -> Candidate:
    source = path.relative_to(root).as_posix()
    files, problem = _entries(path, (MARKER,))
    return Candidate(source, path, "plain", True, _number(_EPOCH, path.name),
                     _number(_STEP, path.name), files, problem)


def _file(root: Path, path: Path, suffix: str) -> Candidate:
    layout, check = _FILE_CHECKS[suffix]
    source = path.relative_to(root).as_posix()
    epoch, step = _number(_EPOCH, path.name), _number(_STEP, path.name)
    if layout == "keras" and epoch is None:
        epoch = _number(_KERAS_EPOCH, path.name)
    return Candidate(source, path, layout, check(path), epoch, step, (path,))


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def checkpoint_id(candidate: Candidate) -> str:
    """A checkpoint name from the file or folder name: ``epoch=2-step=300.ckpt`` becomes
    ``epoch-2-step-300``, ``checkpoint-500/`` stays ``checkpoint-500``."""
    name = _UNSAFE.sub("-", candidate.stem)
    name = re.sub(r"\.{2,}", ".", name).lstrip("._-")[:100].rstrip(".")
    if name.endswith(".lock"):
        name += "-"
    return name or "checkpoint"
