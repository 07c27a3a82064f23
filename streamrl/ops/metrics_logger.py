"""Metrics files: one row per log call, as CSV (for spreadsheets and plots) and JSON lines.

Written by the :class:`~streamrl.ops.MetricsSink` operator; read back with :func:`read_metrics`.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from streamrl.errors import name_file

__all__ = [
    "RUN_LOGGERS",
    "MetricsLogger",
    "check_run_logger",
    "default_run_logger",
    "read_metrics",
    "run_logger",
    "run_metrics_logger",
]


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

    ``loggers``: :mod:`streamrl.record` loggers (anything with ``log_scalar(name, value,
    step)``) that also receive every numeric value of every row, at ``step=row["frames"]``
    (closed with this one); see :func:`run_logger`.

    ``resume_at``: the frame count of the checkpoint a resumed run starts from. The rows
    already in the directory's files are kept up to it, those past it (logged by the
    interrupted run after its last checkpoint, which the resumed run logs again) are dropped,
    and new rows are appended: the files hold the run's whole history, with frames that
    never go back. ``None`` (a new run): the files start empty.

    >>> d = tempfile.mkdtemp()
    >>> with MetricsLogger(d, columns=["frames"]) as log:
    ...     for frames in (256, 512, 768):
    ...         log.log({"frames": frames})
    >>> with MetricsLogger(d, columns=["frames"], resume_at=512) as log:
    ...     log.log({"frames": 768})
    >>> [row["frames"] for row in read_metrics(d)]
    [256, 512, 768]

    A write that fails (e.g. a full disk) raises the ``OSError`` with the file's path in it.
    """

    def __init__(
        self,
        directory: str | os.PathLike,
        columns: Sequence[str] | None = None,
        *,
        loggers: Sequence[Any] = (),
        resume_at: int | None = None,
    ):
        for lg in loggers:
            if not callable(getattr(lg, "log_scalar", None)):
                raise TypeError(f"loggers need a log_scalar method, found {type(lg).__name__}")
        self.loggers = list(loggers)
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
        if resume_at is not None and (isinstance(resume_at, bool)
                                      or not isinstance(resume_at, int) or resume_at < 0):
            raise ValueError(f"resume_at must be an int >= 0 or None, found {resume_at!r}")
        self.columns: list[str] | None = columns
        self._writer: csv.DictWriter | None = None
        kept = [] if resume_at is None else _history(self.jsonl_path, resume_at)
        if kept:
            if self.columns is None:
                self.columns = list(dict.fromkeys(k for row in kept for k in row))
            self._rewrite(kept)
        self._csv_file = open(self.csv_path, "a" if kept else "w", newline="")
        self._jsonl_file = open(self.jsonl_path, "a" if kept else "w")
        if kept:
            self._writer = csv.DictWriter(self._csv_file, fieldnames=self.columns)
        self.rows = 0
        self._closed = False

    def _rewrite(self, rows: list[dict[str, Any]]) -> None:
        """Replace both files by ``rows`` (each written to a temporary file, then renamed
        over the old one: an interruption leaves the old history, not a truncated one)."""
        for path, write in ((self.csv_path, self._write_csv), (self.jsonl_path, _write_jsonl)):
            tmp = path.with_name(f".{path.name}.tmp")
            try:
                with open(tmp, "w", newline="") as f:
                    write(f, rows)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, path)
            except BaseException as exc:
                tmp.unlink(missing_ok=True)
                name_file(exc, path)
                raise

    def _write_csv(self, f: Any, rows: list[dict[str, Any]]) -> None:
        # the CSV has this run's columns (a value of another is kept in the JSON lines only)
        writer = csv.DictWriter(f, fieldnames=self.columns or [], extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)

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
        try:
            if self._writer is None:
                self._writer = csv.DictWriter(self._csv_file, fieldnames=self.columns)
                self._writer.writeheader()
            self._writer.writerow(row)
            self._csv_file.flush()
        except OSError as exc:
            name_file(exc, self.csv_path)
            raise
        try:
            self._jsonl_file.write(json.dumps(row) + "\n")
            self._jsonl_file.flush()
        except OSError as exc:
            name_file(exc, self.jsonl_path)
            raise
        self.rows += 1
        if self.loggers:
            step = row.get("frames")
            step = step if isinstance(step, int) else self.rows
            for name, value in row.items():
                if name != "frames" and isinstance(value, int | float) and not isinstance(value, bool):
                    for lg in self.loggers:
                        lg.log_scalar(name, value, step=step)

    def close(self) -> None:
        """Close both files (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._csv_file.close()
        self._jsonl_file.close()
        for lg in self.loggers:
            close = getattr(lg, "close", None)
            if callable(close):
                close()

    def __enter__(self) -> MetricsLogger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"MetricsLogger({str(self.directory)!r}, rows={self.rows})"


# a run's --logger choices: the record logger, and the package it needs
RUN_LOGGERS = {"tensorboard": "tensorboard", "csv": None, "wandb": "wandb", "none": None}


def check_run_logger(kind: str) -> None:
    """Raise ``ValueError`` unless ``kind`` is one of :data:`RUN_LOGGERS` with its backend
    installed (checked without importing it, before a run starts)."""
    if kind not in RUN_LOGGERS:
        raise ValueError(f"logger must be one of {sorted(RUN_LOGGERS)}, found {kind!r}")
    package = RUN_LOGGERS[kind]
    if package is not None and importlib.util.find_spec(package) is None:
        raise ValueError(
            f"logger {kind!r} needs the {package!r} package, which is not installed: "
            "pip install 'streamrl[record]' (or choose --logger csv or none)"
        )


def default_run_logger() -> str:
    """``"tensorboard"`` when the tensorboard package is installed, else ``"none"``."""
    return "tensorboard" if importlib.util.find_spec("tensorboard") is not None else "none"


def run_logger(kind: str, directory: str | os.PathLike, *, resume_at: int | None = None) -> Any:
    """The :mod:`streamrl.record` logger a run writes beside its metrics files, in
    ``<directory>/<kind>/`` (TensorBoard event files, per-metric CSV files or an offline
    wandb run); None for ``"none"``. ``resume_at``: a resumed run's checkpoint frame count;
    the TensorBoard and CSV loggers then drop (hide) what the interrupted run wrote past it
    (a wandb run is a new one)."""
    check_run_logger(kind)
    purge_step = None if resume_at is None else resume_at + 1
    if kind == "tensorboard":
        from streamrl.record import TensorboardLogger

        return TensorboardLogger(exp_name=kind, log_dir=str(directory), purge_step=purge_step)
    if kind == "csv":
        from streamrl.record import CSVLogger

        return CSVLogger(exp_name=kind, log_dir=str(directory), video_format="pt",
                         purge_step=purge_step)
    if kind == "wandb":
        from streamrl.record import WandbLogger

        return WandbLogger(exp_name=kind, log_dir=str(directory), offline=True)
    return None


def run_metrics_logger(directory: str | os.PathLike, columns: Sequence[str] | None, kind: str,
                       *, resume_at: int | None = None) -> MetricsLogger:
    """A run's :class:`MetricsLogger` in ``directory`` with the :func:`run_logger` of ``kind``
    beside it (none for ``"none"``), both resumed at ``resume_at`` frames when given."""
    extra = run_logger(kind, directory, resume_at=resume_at)
    return MetricsLogger(directory, columns, loggers=[] if extra is None else [extra],
                         resume_at=resume_at)


def read_metrics(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The rows of a ``metrics.jsonl`` file (or of the ``metrics.jsonl`` in a directory). A
    last line cut short (its process killed while writing it) is left out; a bad line
    elsewhere raises ``ValueError`` naming the file and the line."""
    path = Path(path)
    if path.is_dir():
        path = path / "metrics.jsonl"
    with open(path) as f:
        lines = f.read().split("\n")
    rows = []
    for number, line in enumerate(lines, 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                if number == len(lines):  # no newline after it: a row cut short
                    break
                raise ValueError(f"{str(path)!r} line {number} is not a JSON row: {exc}") from None
    return rows


def _history(path: Path, resume_at: int) -> list[dict[str, Any]]:
    """The rows of the metrics file ``path`` (none when it does not exist) before the first
    one past ``resume_at`` frames."""
    if not path.is_file():
        return []
    rows = read_metrics(path)
    past = next((i for i, row in enumerate(rows)
                 if isinstance(row.get("frames"), int) and row["frames"] > resume_at), len(rows))
    return rows[:past]


def _write_jsonl(f: Any, rows: list[dict[str, Any]]) -> None:
    for row in rows:
        f.write(json.dumps(row) + "\n")

