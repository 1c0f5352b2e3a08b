"""Appending points to a ``_metrics.json`` at a cost that does not grow with the series'
Python objects: what checkpoint ingest and every metrics commit write.

:func:`modelbox.registry.merge_metric_points` parses the whole series into pydantic
objects, appends, and writes it back through the pure-Python indenting JSON encoder: at
60,000 points that is over a second per commit, holding the GIL a training loop wants.
Here the document is held as the canonical text of each point (what
:func:`modelbox.canonical.dumps` writes for it), with its ``(step, wallclock)`` for the
order of seed 003 (:mod:`modelbox.metric_order`): appending encodes only the new points,
and the bytes written are exactly the bytes the general path writes (a test compares them).
:func:`merge` is the general path's twin for ``Registry.append_metrics``.

The document comes from the repository, so from anyone who can commit: it is read through
:func:`modelbox.limits.loads` like every document, and a point of any shape other than the
plain one ``{"step": int|null, "value": float|str, "wallclock": float}`` is validated as a
:class:`~modelbox.manifests.MetricPoint` (a bad one is the ManifestError the general path
raises). A document of another shape altogether is left to the general path.
:class:`SeriesCache` keeps the last document a watcher wrote, keyed by its blob id: when
nobody else changed the file the next append reads and parses nothing.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from modelbox import canonical, limits
from modelbox.errors import ManifestError
from modelbox.manifests import MetricPoint

_POINT_KEYS = frozenset({"step", "value", "wallclock"})
#: A point as kept here: step, wallclock, its canonical text, and its value for a summary
#: (None for bytes, which stay out of summaries).
Item = tuple[int | None, float, str, float | str | None]
_ITEM = " " * 6  # a point's indent: document > "series" > key > list


def _text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def encode_point(step: int | None, value: float | str, wallclock: float) -> str:
    """The canonical text of a plain point, as an item of its series' list."""
    shown = repr(value) if isinstance(value, float) else _text(value)
    return (f'{{\n{_ITEM}  "step": {"null" if step is None else step},\n'
            f'{_ITEM}  "value": {shown},\n{_ITEM}  "wallclock": {wallclock!r}\n{_ITEM}}}')


def _encode_any(point: dict[str, Any]) -> str:
    """Any point, through the canonical encoder, re-indented as a list item."""
    return canonical.dumps(point).rstrip("\n").replace("\n", "\n" + _ITEM)


@dataclass
class Series:
    """A ``_metrics.json`` as the encoded text of each point: key -> [(step, wallclock,
    text)] in file order, and the (key, step) pairs it holds."""

    points: dict[str, list[Item]] = field(default_factory=dict)
    seen: set[tuple[str, int | None]] = field(default_factory=set)

    def add(self, key: str, step: int | None, value: float | str, wallclock: float) -> bool:
        """Append a plain point unless the series has one at (key, step); True if added."""
        if (key, step) in self.seen:
            return False
        self.seen.add((key, step))
        self.points.setdefault(key, []).append(
            (step, wallclock, encode_point(step, value, wallclock), value))
        return True

    def append(self, key: str, point: MetricPoint) -> None:
        """Append a validated point (any value), even at a (key, step) it has."""
        value = point.value
        if isinstance(value, (float, str)) and math.isfinite(point.wallclock) and (
                not isinstance(value, float) or math.isfinite(value)):
            text = encode_point(point.step, value, point.wallclock)
        else:
            text = _encode_any(point.model_dump(mode="json"))
        self.seen.add((key, point.step))
        self.points.setdefault(key, []).append(
            (point.step, point.wallclock, text, value if isinstance(value, (float, str))
             else None))

    def order(self, keys: set[str]) -> None:
        """Seed 003's order for the series of ``keys`` (metric_order.ordered's: by step
        when every point has one, else by wallclock; stable)."""
        for key in keys:
            items = self.points[key]
            if all(item[0] is not None for item in items):
                items.sort(key=lambda p: (p[0] or 0, p[1]))
            else:
                items.sort(key=lambda p: p[1])

    def latest(self, key: str) -> float | str | None:
        """metric_order.latest of an ordered series: its last number or string."""
        for item in reversed(self.points.get(key, [])):
            if item[3] is not None:
                return item[3]
        return None

    def to_bytes(self) -> bytes:
        """The document, byte for byte what ``MetricSeries(...).to_bytes()`` writes."""
        if not self.points:
            return canonical.encode({"kind": "metrics", "series": {}})
        parts = ['{\n  "kind": "metrics",\n  "series": {']
        for n, key in enumerate(sorted(self.points)):
            items = self.points[key]
            parts.append(("\n" if n == 0 else ",\n") + f"    {_text(key)}: ")
            if not items:
                parts.append("[]")
                continue
            parts.append("[\n" + _ITEM)
            parts.append((",\n" + _ITEM).join(item[2] for item in items))
            parts.append("\n    ]")
        parts.append("\n  }\n}\n")
        return "".join(parts).encode("utf-8")


@dataclass(frozen=True)
class Encoded:
    """A series document already encoded, for :meth:`Transaction.put`."""

    data: bytes
    kind: str = "metrics"

    def to_bytes(self) -> bytes:
        return self.data


def _plain(point: Any) -> Item | None:
    if type(point) is not dict or point.keys() != _POINT_KEYS:
        return None
    step, value, wallclock = point["step"], point["value"], point["wallclock"]
    if (step is not None and type(step) is not int) or type(wallclock) is not float:
        return None
    if not math.isfinite(wallclock) or (type(value) is not str and (
            type(value) is not float or not math.isfinite(value))):
        return None  # JSON's Infinity/NaN, or another type: the general encoding
    return step, wallclock, encode_point(step, value, wallclock), value


def load(path: str, data: bytes | None) -> Series | None:
    """The series document ``data`` (None: there is none yet) as a :class:`Series`; None
    when it has a shape this path does not write (the caller takes the general path).
    Raise ManifestError for a document no reader accepts."""
    if not data:
        return Series()
    try:
        document = limits.loads(data, "metrics")
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestError(path, f"not valid JSON ({exc}); fix or restore the file") from None
    except limits.LimitError as exc:
        raise ManifestError(path, f"(document): {exc}; fix or restore the file") from None
    if (type(document) is not dict or document.get("kind", "metrics") != "metrics"
            or not document.keys() <= {"kind", "series"}
            or type(document.get("series", {})) is not dict):
        return None
    out = Series()
    for key, points in document.get("series", {}).items():
        if type(points) is not list:
            return None
        items = out.points[key] = []
        for point in points:
            plain = _plain(point)
            if plain is None:  # validated the way the general path does, then encoded
                try:
                    checked = MetricPoint.model_validate(point)
                except ValueError as exc:
                    raise ManifestError(path, f"series.{key}: {exc}".splitlines()[0]) from None
                value = checked.value
                plain = (checked.step, checked.wallclock,
                         _encode_any(checked.model_dump(mode="json")),
                         value if isinstance(value, (float, str)) else None)
            items.append(plain)
            out.seen.add((key, plain[0]))
    return out


class SeriesCache:
    """The last series a watcher wrote, keyed by the id of the blob it was written as:
    never trusted for a document someone else changed since (it has another id). Only
    the id is kept, not the document's bytes, and a hit reads nothing from the
    repository: at 600,000 points the document is 60 MB."""

    def __init__(self) -> None:
        self._blob: str | None = None
        self._series: Series | None = None

    def take(self, blob: str | None) -> Series | None:
        """The series kept for the document ``blob`` (None: no document), handed over
        (the caller changes it); None when the document there is another one."""
        series, kept = self._series, self._blob
        self._series = self._blob = None
        return series if blob is not None and blob == kept else None

    def keep(self, series: Series, blob: str | None) -> None:
        """``series`` is the document ``blob`` (call after the commit landed)."""
        self._series, self._blob = (series, blob) if blob is not None else (None, None)


def merge(data: bytes | None, path: str, points: list[tuple[str, MetricPoint]],
          ) -> tuple[Any, dict[str, float | str]]:
    """:func:`modelbox.registry.merge_metric_points` for a document's bytes: the same
    document (byte for byte) and the latest value of each key the points touch, without
    parsing the old points into objects; a document of another shape goes that way."""
    series = load(path, data)
    if series is None:
        from modelbox.registry import merge_metric_points

        return merge_metric_points(data, path, points)
    for key, point in points:
        series.append(key, point)
    keys = {key for key, _ in points}
    series.order(keys)
    latest = {key: value for key in keys if (value := series.latest(key)) is not None}
    return Encoded(series.to_bytes()), latest
