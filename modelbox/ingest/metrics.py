"""Metric series from the files trainers write: Hugging Face ``trainer_state.json``
(``log_history``), a CSV (PyTorch Lightning's CSVLogger ``metrics.csv``, by ``step``;
Keras' CSVLogger, by ``epoch``) and the plain layout's ``metrics.json``.

Each parser returns points ``(key, step, value)``, numbers only, and raises
:class:`~modelbox.errors.MetricsFileError` with one line saying what is wrong; the caller
warns and ingests the checkpoint without them. Everything in these files is the trainer's
(or a co-user's) input: sizes are capped, keys are checked as every metric key is.
"""

from __future__ import annotations

import csv
import io
import json
import math
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
            try:
                metric_points({key: value}, step=step, wallclock=0)
            except InvalidValueError:
                bad.add(key)
                continue
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
    text = _read(path)
    if not text.endswith("\n"):
        text = text.rpartition("\n")[0]  # the writer is still on its last line
    try:
        reader = csv.DictReader(io.StringIO(text))
        header = reader.fieldnames or []
        rows = [row for row in reader if None not in row and None not in row.values()]
    except csv.Error as exc:
        raise MetricsFileError(f"{path}: not CSV ({exc})") from None
    position = "step" if "step" in header else "epoch" if "epoch" in header else ""
    if not position:
        raise MetricsFileError(f"{path}: no step or epoch column")
    return position, _rows(path, rows, position)


def metrics_json(path: Path, step: int | None) -> list[Point]:
    """The plain layout's ``metrics.json``: ``{"key": number, ...}`` (at the checkpoint's
    step, 0 when it has none) or a list of rows ``[{"step": N, "key": number}, ...]``."""
    data = load_json(path)
    if isinstance(data, dict):
        return _rows(path, [{**data, "step": step or 0}], "step")
    if isinstance(data, list):
        return _rows(path, data, "step")
    raise MetricsFileError(f"{path}: neither an object nor a list of rows")
