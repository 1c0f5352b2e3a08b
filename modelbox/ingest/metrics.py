"""Metric series from the files trainers write: Hugging Face ``trainer_state.json``
(``log_history``), a CSV (PyTorch Lightning's CSVLogger ``metrics.csv``, by ``step``;
Keras' CSVLogger, by ``epoch``) and the plain layout's ``metrics.json``.

Each parser returns points ``(key, step, value)``, numbers only, and raises
:class:`~modelbox.errors.MetricsFileError` with one line saying what is wrong; the caller
warns and ingests the checkpoint without them. Everything in these files is the trainer's
(or a co-user's) input: sizes are capped, keys are checked as every metric key is.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelbox.errors import InvalidValueError, MetricsFileError
from modelbox.registry import metric_points

Point = tuple[str, int, float]
#: A metrics file larger than this is not read (a year of HF logging is a few MB).
MAX_METRICS_FILE = 64 * 1024 * 1024
#: Keys of a log row that are positions, not metrics.
POSITION_KEYS = frozenset({"step", "global_step", "epoch"})


def _read(path: Path) -> str:
    try:
        if path.stat().st_size > MAX_METRICS_FILE:
            raise MetricsFileError(f"{path}: larger than {MAX_METRICS_FILE} bytes; not read")
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise MetricsFileError(f"{path}: cannot be read ({exc})") from None


def load_json(path: Path) -> Any:
    """The JSON in ``path``; MetricsFileError when it cannot be read or parsed."""
    try:
        return json.loads(_read(path))
    except ValueError as exc:
        raise MetricsFileError(f"{path}: not JSON ({exc})") from None


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None
    if isinstance(value, (int, float)) and math.isfinite(value):
        return float(value)
    return None


def _step(value: Any) -> int | None:
    number = _number(value)
    if number is None or number < 0 or not number.is_integer():
        return None
    return int(number)


def _rows(path: Path, rows: list[Any], position: str) -> list[Point]:
    """Points from log rows (objects with a ``position`` key and metric keys)."""
    out: list[Point] = []
    bad: set[str] = set()
    good: set[str] = set()  # keys checked once, not once per point
    for row in rows:
        if not isinstance(row, dict):
            raise MetricsFileError(f"{path}: a log entry is not an object")
        step = _step(row.get(position))
        if step is None:
            continue
        for key, raw in row.items():
            value = _number(raw)
            if key in POSITION_KEYS or value is None or key in bad:
                continue
            if key not in good:
                try:
                    metric_points({key: value}, step=step, wallclock=0)
                except InvalidValueError:
                    bad.add(key)
                    continue
                good.add(key)
            out.append((key, step, value))
    if bad:
        raise MetricsFileError(f"{path}: metric key(s) {sorted(bad)[:3]!r} break the key "
                               "rules")
    return out


def trainer_state(path: Path) -> tuple[dict[str, Any], list[Point]]:
    """A Hugging Face ``trainer_state.json``: the state itself (``global_step``, ``epoch``)
    and its ``log_history`` as points by ``step``. Raise MetricsFileError when it does not
    parse (the checkpoint is then incomplete: the Trainer writes this file last)."""
    state = load_json(path)
    if not isinstance(state, dict):
        raise MetricsFileError(f"{path}: not a JSON object")
    history = state.get("log_history", [])
    if not isinstance(history, list):
        raise MetricsFileError(f"{path}: log_history is not a list")
    return state, _rows(path, history, "step")


def csv_log(path: Path) -> tuple[str, list[Point]]:
    """A CSV with a header: by ``step`` when it has that column (Lightning), else by
    ``epoch`` (Keras). A last line cut short by a writer is ignored. Return the position
    column and the points."""
    position, points, _, _ = CsvFollower(path).read()
    return position, points


def _csv_rows(path: Path, text: str, header: list[str] | None) -> tuple[list[str], list[Any]]:
    try:
        reader = csv.DictReader(io.StringIO(text), fieldnames=header)
        rows = [row for row in reader if None not in row and None not in row.values()]
        return list(reader.fieldnames or []), rows
    except csv.Error as exc:
        raise MetricsFileError(f"{path}: not CSV ({exc})") from None


@dataclass(frozen=True)
class CsvMark:
    """Where reading a CSV stopped, and what tells that it is still the same file: its
    device and inode, the header, and the bytes just before the offset."""

    device: int
    inode: int
    offset: int
    header: tuple[str, ...]
    position: str
    before: bytes  # the up to 64 bytes that end at ``offset``


class CsvFollower:
    """Reads the rows a trainer appended to a CSV since the last read: the cost of a read
    is the new rows', not the file's. The remembered offset is trusted only while the file
    is the same one (device, inode) no shorter than it, whose bytes before the offset are
    still the ones read: a file replaced, truncated or rewritten is read again from the
    start (the caller deduplicates). :meth:`read` returns the new mark; the caller keeps
    it once what was read has landed."""

    def __init__(self, path: Path, mark: CsvMark | None = None) -> None:
        self.path = path
        self.mark = mark

    def read(self) -> tuple[str, list[Point], CsvMark, bool]:
        """The position column, the points of the rows appended since the mark (all rows
        when it is read from the start), the mark after them, and whether it was read from
        the start."""
        path = self.path
        try:
            with path.open("rb") as f:
                info = os.fstat(f.fileno())
                if info.st_size > MAX_METRICS_FILE:
                    raise MetricsFileError(
                        f"{path}: larger than {MAX_METRICS_FILE} bytes; not read")
                mark = self._valid(f, info)
                start = mark.offset if mark is not None else 0
                f.seek(start)
                raw = f.read(info.st_size - start)
        except OSError as exc:
            raise MetricsFileError(f"{path}: cannot be read ({exc})") from None
        end = raw.rfind(b"\n") + 1  # the writer may still be on its last line
        try:  # all of it: bad bytes anywhere are an error, a character cut short is not
            text = codecs.getincrementaldecoder("utf-8")().decode(raw, final=False)
        except UnicodeDecodeError as exc:
            raise MetricsFileError(f"{path}: cannot be read ({exc})") from None
        text = text[: text.rfind("\n") + 1]
        header, rows = _csv_rows(path, text, list(mark.header) if mark else None)
        position = mark.position if mark else (
            "step" if "step" in header else "epoch" if "epoch" in header else "")
        if not position:
            raise MetricsFileError(f"{path}: no step or epoch column")
        offset = start + end
        if mark is None and not header:
            offset = 0  # not even the header is whole yet
        before = ((mark.before if mark else b"") + raw[max(0, end - 64):end])[-64:]
        new = CsvMark(info.st_dev, info.st_ino, offset, tuple(header), position, before)
        return position, _rows(path, rows, position), new, mark is None

    def _valid(self, f: Any, info: os.stat_result) -> CsvMark | None:
        mark = self.mark
        if (mark is None or (mark.device, mark.inode) != (info.st_dev, info.st_ino)
                or info.st_size < mark.offset or not mark.header):
            return None
        f.seek(mark.offset - len(mark.before))
        if f.read(len(mark.before)) != mark.before:
            return None
        return mark


def metrics_json(path: Path, step: int | None) -> list[Point]:
    """The plain layout's ``metrics.json``: ``{"key": number, ...}`` (at the checkpoint's
    step, 0 when it has none) or a list of rows ``[{"step": N, "key": number}, ...]``."""
    data = load_json(path)
    if isinstance(data, dict):
        return _rows(path, [{**data, "step": step or 0}], "step")
    if isinstance(data, list):
        return _rows(path, data, "step")
    raise MetricsFileError(f"{path}: neither an object nor a list of rows")
