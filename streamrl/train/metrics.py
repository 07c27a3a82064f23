"""Metrics files: written by :class:`MetricsLogger` (``streamrl.ops.metrics_logger``, re-exported
here), read back with :func:`read_metrics`, plotted with :func:`plot_metrics`."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from streamrl.ops.metrics_logger import MetricsLogger, read_metrics

__all__ = ["MetricsLogger", "plot_metrics", "read_metrics"]


def plot_metrics(
    rows: Iterable[Mapping[str, Any]],
    path: str | os.PathLike,
    *,
    x: str = "frames",
    y: Sequence[str] = ("eval_return",),
    title: str | None = None,
) -> Path | None:
    """Plot columns ``y`` against ``x`` into an image file; ``None`` (nothing written) when
    matplotlib is not installed. Rows without a value for a column are skipped for it."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    rows = list(rows)
    fig, ax = plt.subplots(figsize=(7, 4))
    try:
        for name in y:
            pts = [(r[x], r[name]) for r in rows
                   if isinstance(r.get(x), (int, float)) and isinstance(r.get(name), (int, float))]
            if pts:
                ax.plot(*zip(*pts), marker=".", label=name)
        ax.set_xlabel(x)
        ax.legend()
        ax.grid(alpha=0.3)
        if title:
            ax.set_title(title)
        path = Path(path)
        fig.savefig(path, dpi=100, bbox_inches="tight")
    finally:
        plt.close(fig)
    return path
