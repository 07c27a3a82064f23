"""Metrics files: one row per log call, as CSV (for spreadsheets and plots) and JSON lines.

Written by the :class:`~streamrl.ops.MetricsSink` operator; read back with :func:`read_metrics`.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

__all__ = ["MetricsLogger", "read_metrics"]


def _plain(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(f"metric tensors must hold one value, found shape {tuple(value.shape)}")
        value = value.item()
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        raise TypeError(
            f"metric values must be numbers, strings or one-element tensors, found "
            f"{type(value).__name__}"
        ) from None


class MetricsLogger:
    """Appends metric rows to ``<directory>/metrics.csv`` and ``<directory>/metrics.jsonl``.

    The CSV columns are ``columns`` (or the keys of the first row); a row may leave columns
    out (empty cells) but may not add new ones. Every row is flushed, so the files can be
    watched while a run goes on. A context manager; :meth:`close` is idempotent.

    >>> import tempfile
    >>> with MetricsLogger(tempfile.mkdtemp(), columns=["frames", "loss"]) as log:
    ...     log.log({"frames": 256, "loss": 0.5})
    ...     log.log({"frames": 512})
    >>> [row.get("loss") for row in read_metrics(log.jsonl_path)]
    [0.5, None]
    """

    def __init__(self, directory: str | os.PathLike, columns: Sequence[str] | None = None):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.csv_path = self.directory / "metrics.csv"
        self.jsonl_path = self.directory / "metrics.jsonl"
        if columns is not None:
            columns = list(columns)
            if not columns or not all(isinstance(c, str) for c in columns):
                raise ValueError(f"columns must be a non-empty list of str, found {columns!r}")
            if len(set(columns)) != len(columns):
                raise ValueError(f"columns must be unique, found {columns!r}")
        self.columns: list[str] | None = columns
        self._csv_file = open(self.csv_path, "w", newline="")
        self._jsonl_file = open(self.jsonl_path, "w")
        self._writer: csv.DictWriter | None = None
        self.rows = 0
        self._closed = False

    def log(self, row: Mapping[str, Any]) -> None:
        """Append one row (values: numbers, strings, None or one-element tensors)."""
        if self._closed:
            raise RuntimeError("MetricsLogger is closed")
        if not isinstance(row, Mapping):
            raise TypeError(f"row must be a mapping, found {type(row).__name__}")
        row = {str(k): _plain(v) for k, v in row.items()}
        if self.columns is None:
            self.columns = list(row)
        extra = [k for k in row if k not in self.columns]
        if extra:
            raise ValueError(f"unknown metric columns {extra}; the columns are {self.columns}")
        if self._writer is None:
            self._writer = csv.DictWriter(self._csv_file, fieldnames=self.columns)
            self._writer.writeheader()
        self._writer.writerow(row)
        self._jsonl_file.write(json.dumps(row) + "\n")
        self._csv_file.flush()
        self._jsonl_file.flush()
        self.rows += 1

    def close(self) -> None:
        """Close both files (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._csv_file.close()
        self._jsonl_file.close()

    def __enter__(self) -> MetricsLogger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"MetricsLogger({str(self.directory)!r}, rows={self.rows})"


def read_metrics(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The rows of a ``metrics.jsonl`` file (or of the ``metrics.jsonl`` in a directory)."""
    path = Path(path)
    if path.is_dir():
        path = path / "metrics.jsonl"
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]
