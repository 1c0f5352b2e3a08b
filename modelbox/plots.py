"""Metric series as a picture (matplotlib, an optional extra:
``pip install 'modelbox-registry[plot]'``)."""

from __future__ import annotations

from typing import Any

from modelbox.errors import InvalidValueError


def plot_series(series: dict[str, list[dict[str, Any]]], path: str, *, title: str) -> None:
    """Draw each numeric series against its step (else its wallclock) into a PNG at ``path``."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only, never a window
        import matplotlib.pyplot as plt
    except ImportError:
        raise InvalidValueError(
            "--plot needs matplotlib: pip install 'modelbox-registry[plot]'; "
            "the table works without it"
        ) from None
    numeric = {
        key: points for key, points in series.items()
        if points and all(isinstance(p["value"], float | int) for p in points)
    }
    if not numeric:
        raise InvalidValueError(f"{title} has no numeric series to plot")
    figure, axes = plt.subplots(len(numeric), 1, figsize=(8, 2.5 * len(numeric)), squeeze=False)
    for ax, (key, points) in zip(axes[:, 0], sorted(numeric.items()), strict=True):
        by_step = all(p["step"] is not None for p in points)
        xs = [p["step"] if by_step else p["wallclock"] for p in points]
        ax.plot(xs, [p["value"] for p in points], marker="." if len(points) < 50 else None)
        ax.set_ylabel(key)
        ax.set_xlabel("step" if by_step else "wallclock (s)")
        ax.grid(True, alpha=0.3)
    figure.suptitle(title)
    figure.tight_layout(rect=(0, 0, 1, 0.98))
    figure.savefig(path, dpi=100)
    plt.close(figure)
