"""What kind of file an artifact is: its ModelBox file type and its MIME type.

The original ModelBox left every artifact's MIME type "unknown". Here the extension decides
first (with the ML formats Python's ``mimetypes`` does not know), then the first bytes
(magic numbers) for files whose name says nothing.
"""

from __future__ import annotations

import mimetypes
from enum import Enum
from pathlib import Path


class FileType(str, Enum):
    MODEL = "MODEL"
    CHECKPOINT = "CHECKPOINT"
    TEXT = "TEXT"
    IMAGE = "IMAGE"
    AUDIO = "AUDIO"
    VIDEO = "VIDEO"
    DATASET = "DATASET"
    OTHER = "OTHER"
    UNDEFINED = "UNDEFINED"  # seed 003's enum value 0: a type nobody gave


class ArtifactMime(str, Enum):
    """The MIME types modelbox records (seed 003's ``ArtifactMime``). A str enum: an
    artifact's ``mime_type`` still equals its string. A type outside it stays a plain str
    (:func:`as_mime`)."""

    Unknown = "application/octet-stream"
    Safetensors = "application/vnd.safetensors"
    Onnx = "application/onnx"
    PyTorch = "application/x-pytorch"
    Checkpoint = "application/x-checkpoint"
    Parquet = "application/vnd.apache.parquet"
    Arrow = "application/vnd.apache.arrow.file"
    Jsonl = "application/jsonl"
    Npy = "application/x-npy"
    Npz = "application/x-npz"
    Hdf5 = "application/x-hdf5"
    Pickle = "application/x-pickle"
    Yaml = "application/yaml"
    Gguf = "application/x-gguf"
    Json = "application/json"
    Zip = "application/zip"
    Gzip = "application/gzip"
    Pdf = "application/pdf"
    Text = "text/plain"
    Markdown = "text/markdown"
    Png = "image/png"
    Jpeg = "image/jpeg"
    Gif = "image/gif"
    Wav = "audio/wav"
    Mpeg = "audio/mpeg"
    Flac = "audio/flac"
    Ogg = "audio/ogg"
    Mp4 = "video/mp4"
    Webm = "video/webm"
    Directory = "inode/directory"


_MIMES = {member.value: member for member in ArtifactMime}


def as_mime(value: ArtifactMime | str) -> ArtifactMime | str:
    """``value`` as an :class:`ArtifactMime` member when it is one, else the plain str."""
    if isinstance(value, ArtifactMime):
        return value
    return _MIMES.get(value, value)


_MODEL = {".pt", ".pth", ".bin", ".safetensors", ".onnx", ".h5", ".keras", ".pb", ".pkl",
          ".joblib", ".tflite", ".mlmodel", ".gguf", ".ggml", ".pte", ".engine", ".xgb"}
_CHECKPOINT = {".ckpt", ".checkpoint", ".distcp"}
_DATASET = {".csv", ".tsv", ".parquet", ".arrow", ".feather", ".tfrecord", ".jsonl",
            ".npy", ".npz", ".avro", ".orc", ".hdf5", ".lance"}
_TEXT = {".txt", ".md", ".json", ".yaml", ".yml", ".toml", ".cfg", ".ini", ".py", ".log",
         ".html", ".xml", ".model", ".vocab", ".tiktoken"}
_MIME = {
    ".safetensors": "application/vnd.safetensors",
    ".onnx": "application/onnx",
    ".pt": "application/x-pytorch",
    ".pth": "application/x-pytorch",
    ".ckpt": "application/x-checkpoint",
    ".parquet": "application/vnd.apache.parquet",
    ".arrow": "application/vnd.apache.arrow.file",
    ".jsonl": "application/jsonl",
    ".npy": "application/x-npy",
    ".npz": "application/x-npz",
    ".h5": "application/x-hdf5",
    ".hdf5": "application/x-hdf5",
    ".pkl": "application/x-pickle",
    ".yaml": "application/yaml",
    ".yml": "application/yaml",
    ".md": "text/markdown",
    ".gguf": "application/x-gguf",
}
_MAGIC = [
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF8", "image/gif"),
    (b"%PDF", "application/pdf"),
    (b"PK\x03\x04", "application/zip"),
    (b"\x1f\x8b", "application/gzip"),
    (b"RIFF", "audio/wav"),
    (b"ID3", "audio/mpeg"),
    (b"fLaC", "audio/flac"),
    (b"OggS", "audio/ogg"),
    (b"\x1aE\xdf\xa3", "video/webm"),
    (b"\x93NUMPY", "application/x-npy"),
    (b"PAR1", "application/vnd.apache.parquet"),
    (b"\x89HDF", "application/x-hdf5"),
    (b"GGUF", "application/x-gguf"),
]


def mime_type(name: str, head: bytes = b"") -> str:
    """The MIME type of a file called ``name`` whose first bytes are ``head``."""
    suffix = Path(name).suffix.lower()
    if suffix in _MIME:
        return _MIME[suffix]
    guessed, _ = mimetypes.guess_type(name, strict=False)
    if guessed:
        return guessed
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    if len(head) > 8 and head[4:8] == b"ftyp":
        return "video/mp4"
    if head and _looks_like_text(head):
        return "text/plain"
    return "application/octet-stream"


def file_type(name: str, mime: str) -> FileType:
    """The ModelBox file type of ``name`` given its MIME type."""
    suffix = Path(name).suffix.lower()
    if suffix in _CHECKPOINT:
        return FileType.CHECKPOINT
    if suffix in _MODEL:
        return FileType.MODEL
    if suffix in _DATASET:
        return FileType.DATASET
    for prefix, kind in (("image/", FileType.IMAGE), ("audio/", FileType.AUDIO),
                         ("video/", FileType.VIDEO)):
        if mime.startswith(prefix):
            return kind
    if suffix in _TEXT or mime.startswith("text/"):
        return FileType.TEXT
    return FileType.OTHER


def is_weights(name: str) -> bool:
    """Whether ``name`` has the extension of model weights or a checkpoint (``.pt``,
    ``.safetensors``, ``.ckpt``...): files that belong in the store, never in Git."""
    suffix = Path(name).suffix.lower()
    return suffix in _MODEL or suffix in _CHECKPOINT


def _looks_like_text(head: bytes) -> bool:
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return b"\0" not in head


def sniff(path: Path) -> tuple[FileType, str]:
    """File type and MIME type of the file at ``path`` (reads at most 512 bytes)."""
    with path.open("rb") as f:
        head = f.read(512)
    mime = mime_type(path.name, head)
    return file_type(path.name, mime), mime
