"""Run directories: ``<root>/<name>-<UTC timestamp>``, never reused."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

__all__ = ["make_run_dir"]


def make_run_dir(name: str, root: str | os.PathLike = "runs") -> Path:
    """Create and return a fresh directory ``<root>/<name>-<YYYYmmdd-HHMMSS>`` (a ``-2``,
    ``-3`` ... suffix is added when two runs start in the same second)."""
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise ValueError(
            f"run name must be a non-empty string of letters, digits, '_', '.' or '-', "
            f"found {name!r}"
        )
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    base = root / f"{name}-{stamp}"
    path, k = base, 1
    while True:
        try:
            path.mkdir()
            return path
        except FileExistsError:
            k += 1
            path = base.with_name(f"{base.name}-{k}")
