"""Appending points to a ``_metrics.json`` at a cost that does not grow with the series'
Python objects: what checkpoint ingest and every metrics commit write.

:func:`modelbox.registry.merge_metric_points` parses the whole series into pydantic
objects, appends, and writes it back through the pure-Python indenting JSON encoder: at
60,000 points that is over a second per commit, holding the GIL a training loop wants.
Here the document is held compactly, key by key: the canonical text of its points back to
back (what :func:`modelbox.canonical.dumps` writes for each), and their steps and
wallclocks in arrays for the order of seed 003 (:mod:`modelbox.metric_order`) and for
deduplication. Appending encodes only the new points, and the bytes written are exactly
the bytes the general path writes (tests compare them, round after round).
:func:`merge` is the general path's twin for ``Registry.append_metrics``.

The document comes from the repository, so from anyone who can commit: it is read through
:func:`modelbox.limits.loads` like every document, and a point of any shape other than the
plain one ``{"step": int|null, "value": float|str, "wallclock": float}`` is validated as a
:class:`~modelbox.manifests.MetricPoint` (a bad one is the ManifestError the general path
raises). A document of another shape altogether is left to the general path.
:class:`SeriesCache` keeps the last documents a registry wrote (``Registry.read_series``),
keyed by path and blob id: when nobody else changed the file, the next append (a watcher's
checkpoint, a callback's journal flush) reads and parses nothing.
"""

from __future__ import annotations

import json
import math
from array import array
from bisect import bisect_left
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from modelbox import canonical, limits
from modelbox.errors import ManifestError
from modelbox.manifests import MetricPoint

_POINT_KEYS = frozenset({"step", "value", "wallclock"})
#: A plain point as read: step, wallclock, its canonical text, and its value.
Item = tuple[int | None, float, str, float | str | None]
_ITEM = " " * 6  # a point's indent: document > "series" > key > list
_OPEN, _CLOSE = ("[\n" + _ITEM).encode(), b"\n    ]"


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


_SEPARATOR = (",\n" + _ITEM).encode()
_NONE, _NUMBER, _TEXT = 0, 1, 2  # what a point gives a summary: nothing (bytes), or its value


class _Points:
    """One key's points, compactly: their canonical texts back to back as the document's
    list holds them (separators included), where each ends, and each point's step,
    wallclock and summary kind. About 25 bytes a point beside its text, where a tuple of
    Python objects and a (key, step) pair in a set took ~400: a watcher holds a long run's
    every point (docs/experiments.md, "The watcher's memory")."""

    __slots__ = ("_seen", "clocks", "ends", "kinds", "nulls", "ordered", "steps", "text")

    def __init__(self) -> None:
        self._clear()

    def _clear(self) -> None:
        self.text = bytearray()
        self.ends = array("Q")
        #: int64 steps while every step fits one, else a list (None, or a 100-digit step)
        self.steps: array[int] | list[int | None] = array("q")
        self.clocks = array("d")
        self.kinds = bytearray()
        self.nulls = 0  # points without a step: the series is then ordered by wallclock
        self.ordered = True  # known to be in seed 003's order (False: sort before writing)
        self._seen: set[int | None] | None = None  # steps, when bisecting cannot tell

    def __len__(self) -> int:
        return len(self.ends)

    def item(self, i: int) -> bytes:
        ends = self.ends
        start = ends[i - 1] + len(_SEPARATOR) if i else 0
        return bytes(self.text[start:ends[i]])

    def _before(self, step: int | None, clock: float) -> bool:
        """Whether the last point sorts at or before one at (step, clock): stays ordered.
        False where a comparison is not a total order (a NaN), which re-sorts."""
        if self.nulls or step is None:
            return bool(self.clocks[-1] <= clock)
        last = self.steps[-1]
        assert last is not None
        return last < step or (last == step and self.clocks[-1] <= clock)

    def push(self, step: int | None, clock: float, text: bytes, kind: int) -> None:
        if self.ends:
            if self.ordered and (not self._before(step, clock) or (
                    step is None and not self.nulls)):  # now by wallclock: look again
                self.ordered = False
            self.text += _SEPARATOR
        self.text += text
        self.ends.append(len(self.text))
        steps = self.steps
        if isinstance(steps, array) and step is not None and -(1 << 63) <= step < 1 << 63:
            steps.append(step)
        else:  # a step int64 cannot hold, or none: Python ints from here on
            if isinstance(steps, array):
                wide: list[int | None] = list(steps)
                steps = self.steps = wide
            steps.append(step)
        self.clocks.append(clock)
        self.kinds.append(kind)
        self.nulls += step is None
        if self._seen is not None:
            self._seen.add(step)

    def has(self, step: int | None) -> bool:
        """Whether a point is at ``step``: bisected while the steps are in order."""
        if step is None:
            return self.nulls > 0
        if self._seen is None:
            steps = cast("Sequence[int]", self.steps)  # none is None while nulls is 0
            if not steps:
                return False
            if self.ordered and not self.nulls:
                if steps[-1] < step:  # (the usual case)
                    return False
                at = bisect_left(steps, step)
                return at < len(steps) and steps[at] == step
            self._seen = set(steps)
        return step in self._seen

    def sort(self) -> None:
        """Seed 003's order (metric_order.ordered's: by step when every point has one,
        else by wallclock, stable): Python's own sort, redone whole only when a point
        came out of order, so a series in order is left byte for byte as it is."""
        if self.ordered:
            return
        items = [(self.steps[i], self.clocks[i], self.item(i), self.kinds[i])
                 for i in range(len(self))]
        if not self.nulls:
            items.sort(key=lambda p: (p[0] or 0, p[1]))
        else:
            items.sort(key=lambda p: p[1])
        self._clear()
        for item in items:
            self.push(*item)

    def latest(self) -> float | str | None:
        """metric_order.latest of the ordered points: the last number or string."""
        for i in range(len(self) - 1, -1, -1):
            if self.kinds[i] != _NONE:
                value: float | str = json.loads(self.item(i))["value"]
                return value
        return None


class Series:
    """A ``_metrics.json`` as the encoded text of each point, key by key in file order
    (:class:`_Points`): appending encodes only the new points."""

    def __init__(self) -> None:
        self.points: dict[str, _Points] = {}
        #: a value that cannot be written as UTF-8 (a lone surrogate), raised by to_bytes
        #: as the general path raises it, when Transaction.put encodes the document
        self._unwritable: UnicodeEncodeError | None = None

    def _push(self, key: str, step: int | None, clock: float, text: str, kind: int) -> None:
        try:
            data = text.encode("utf-8")
        except UnicodeEncodeError as exc:
            self._unwritable = self._unwritable or exc
            data = text.encode("utf-8", "surrogatepass")
        points = self.points.get(key)
        if points is None:
            points = self.points[key] = _Points()
        points.push(step, clock, data, kind)

    def add(self, key: str, step: int | None, value: float | str, wallclock: float) -> bool:
        """Append a plain point unless the series has one at (key, step); True if added."""
        points = self.points.get(key)
        if points is not None and points.has(step):
            return False
        self._push(key, step, wallclock, encode_point(step, value, wallclock),
                   _summary_kind(value))
        return True

    def append(self, key: str, point: MetricPoint) -> None:
        """Append a validated point (any value), even at a (key, step) it has."""
        value = point.value
        if isinstance(value, (float, str)) and math.isfinite(point.wallclock) and (
                not isinstance(value, float) or math.isfinite(value)):
            text = encode_point(point.step, value, point.wallclock)
        else:
            text = _encode_any(point.model_dump(mode="json"))
        self._push(key, point.step, point.wallclock, text,
                   _summary_kind(value))

    def order(self, keys: set[str]) -> None:
        """Seed 003's order for the series of ``keys`` (metric_order.ordered's: by step
        when every point has one, else by wallclock; stable)."""
        for key in keys:
            self.points[key].sort()

    def latest(self, key: str) -> float | str | None:
        """metric_order.latest of an ordered series: its last number or string."""
        points = self.points.get(key)
        return points.latest() if points is not None else None

    def to_bytes(self) -> bytes:
        """The document, byte for byte what ``MetricSeries(...).to_bytes()`` writes,
        joined once from each key's text (no intermediate string of the whole)."""
        if self._unwritable is not None:
            raise self._unwritable
        if not self.points:
            return canonical.encode({"kind": "metrics", "series": {}})
        parts: list[bytes | bytearray] = [b'{\n  "kind": "metrics",\n  "series": {']
        for n, key in enumerate(sorted(self.points)):
            points = self.points[key]
            parts.append(f'{"" if n == 0 else ","}\n    {_text(key)}: '.encode())
            if not len(points):
                parts.append(b"[]")
                continue
            parts += (_OPEN, points.text, _CLOSE)
        parts.append(b"\n  }\n}\n")
        return b"".join(parts)


def _summary_kind(value: object) -> int:
    """What a point's value gives a summary (metric_order.latest): a number or a string,
    or nothing (a bytes value)."""
    if isinstance(value, str):
        return _TEXT
    return _NUMBER if isinstance(value, (int, float)) else _NONE


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
    out, held = Series(), document.get("series", {})
    for key in list(held):
        points = held.pop(key)  # each key's parsed points go once they are encoded
        if type(points) is not list:
            return None
        out.points[key] = _Points()  # (an empty list stays one)
        for point in points:
            plain = _plain(point)
            if plain is None:  # validated the way the general path does, then encoded
                try:
                    checked = MetricPoint.model_validate(point)
                except ValueError as exc:
                    raise ManifestError(path, f"series.{key}: {exc}".splitlines()[0]) from None
                out.append(key, checked)
                continue
            step, clock, text, value = plain
            out._push(key, step, clock, text, _summary_kind(value))
    return out


class SeriesCache:
    """The last few series documents a registry wrote, each keyed by its path and the id
    of the blob it was written as: never trusted for a document someone else changed
    since (it has another id). Only the ids are kept, not the documents' bytes, and a hit
    reads nothing from the repository: at 600,000 points a document is 60 MB."""

    def __init__(self, size: int = 2) -> None:
        self._size = size
        self._kept: OrderedDict[str, tuple[str, Series]] = OrderedDict()

    def take(self, path: str, blob: str | None) -> Series | None:
        """The series kept for ``path`` if it is the document ``blob`` (None: there is no
        document), handed over (the caller changes it); None when it is another one."""
        kept = self._kept.pop(path, None)
        return kept[1] if kept is not None and blob is not None and kept[0] == blob else None

    def keep(self, path: str, series: Series, blob: str | None) -> None:
        """``series`` is the document ``blob`` at ``path`` (call once it is staged)."""
        self._kept.pop(path, None)
        if blob is not None:
            self._kept[path] = (blob, series)
            while len(self._kept) > self._size:
                self._kept.popitem(last=False)


def merge(series: Series, points: list[tuple[str, MetricPoint]]) -> dict[str, float | str]:
    """:func:`modelbox.registry.merge_metric_points` on a :class:`Series`: append the
    points, order what they touched, and return the latest value of each key they touch
    (the same document, byte for byte, without parsing the old points into objects)."""
    for key, point in points:
        series.append(key, point)
    keys = {key for key, _ in points}
    series.order(keys)
    return {key: value for key in keys if (value := series.latest(key)) is not None}
