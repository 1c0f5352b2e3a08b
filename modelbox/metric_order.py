"""The order of a metric series, as seed 003 defines it.

A series is ordered by step when every point has one; otherwise by wallclock ("in the
absence of the step value, metrics are ordered by wallclock"). Ties keep logging order
(the sort is stable). The summary a version shows is the last number or string of the
ordered series, so a point logged late with an older wallclock never hides a newer one.
"""

from __future__ import annotations

from modelbox.manifests import BytesValue, MetricPoint


def ordered(points: list[MetricPoint]) -> list[MetricPoint]:
    """``points`` by step if all have one, else by wallclock (stable: ties keep their order).
    A series that is already in order (the usual case) costs one pass."""
    if all(point.step is not None for point in points):
        return sorted(points, key=lambda p: (p.step or 0, p.wallclock))
    return sorted(points, key=lambda p: p.wallclock)


def latest(points: list[MetricPoint]) -> float | str | None:
    """The summary value of an ordered series: its last number or string (bytes values
    stay out of summaries), None when it has none."""
    for point in reversed(points):
        if not isinstance(point.value, BytesValue):
            return point.value
    return None
