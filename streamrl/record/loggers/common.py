"""Logger: the interface every logger implements (TorchRL's ``torchrl.record.loggers.Logger``).

A logger is built from an experiment name and a directory; ``_create_experiment`` opens the
backend's writer (``self.experiment``), and the ``log_*`` methods write to it. Loggers are
context managers; ``close`` flushes and closes the writer and is idempotent.

>>> import tempfile
>>> from streamrl.record import CSVLogger
>>> with CSVLogger(exp_name="demo", log_dir=tempfile.mkdtemp()) as logger:
...     logger.log_metrics({"loss": 0.5, "reward": 1.0}, step=3)
{'loss': 0.5, 'reward': 1.0}
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from typing import Any

import torch

__all__ = ["Logger"]

EXTRA_HINT = "pip install 'streamrl[record]'"


def require(module: str, who: str, pip_name: str | None = None) -> Any:
    """Import an optional backend, or raise ModuleNotFoundError naming it and the extra."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ModuleNotFoundError(
            f"{who} needs the {pip_name or module!r} package, which is not installed: "
            f"{EXTRA_HINT} (or pip install {pip_name or module})"
        ) from err


class Logger:
    """Base class of loggers: an experiment name, a log directory and the ``log_*`` methods.

    Subclasses implement ``_create_experiment`` (open the backend's writer, called once by
    ``__init__``) and the ``log_*`` methods they support: as in TorchRL, a subclass may leave
    some out, and calling one of those raises NotImplementedError naming it. Videos are
    uint8 tensors ``[T, C, H, W]`` or ``[N, T, C, H, W]`` (channels first, C in 1 or 3), as
    TorchRL's loggers take them.

    Args:
        exp_name: the experiment's name.
        log_dir: the directory the backend writes under.
    """

    def __init__(self, exp_name: str, log_dir: Any) -> None:
        if not isinstance(exp_name, str) or not exp_name:
            raise ValueError(f"exp_name must be a non-empty str, found {exp_name!r}")
        self.exp_name = exp_name
        self.log_dir = log_dir
        self._closed = False
        self.experiment = self._create_experiment()

    def _missing(self, method: str) -> NotImplementedError:
        return NotImplementedError(f"{type(self).__name__} does not implement {method}")

    def _create_experiment(self) -> Any:
        """Open and return the backend's writer."""
        raise self._missing("_create_experiment")

    def log_scalar(self, name: str, value: float, step: int | None = None) -> None:
        """Log ``value`` under ``name`` at ``step``."""
        raise self._missing("log_scalar")

    def log_video(self, name: str, video: torch.Tensor, step: int | None = None,
                  **kwargs: Any) -> None:
        """Log a uint8 video ``[T, C, H, W]`` or ``[N, T, C, H, W]`` under ``name``."""
        raise self._missing("log_video")

    def log_hparams(self, cfg: Mapping[str, Any]) -> None:
        """Log the experiment's hyperparameters (a mapping of names to values)."""
        raise self._missing("log_hparams")

    def log_histogram(self, name: str, data: Sequence, **kwargs: Any) -> None:
        """Log a histogram of ``data`` under ``name``."""
        raise self._missing("log_histogram")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(exp_name={self.exp_name}, log_dir={self.log_dir})"

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> dict[str, Any]:
        """Log several scalars at ``step``; tensors become Python numbers (one-element
        tensors) or lists. Returns the converted metrics."""
        out = {}
        for name, value in metrics.items():
            if isinstance(value, torch.Tensor):
                value = value.detach().cpu()
                value = value.item() if value.numel() == 1 else value.tolist()
            out[name] = value
        for name, value in out.items():
            self.log_scalar(name, value, step=step)
        return out

    def flush(self) -> None:
        """Write what the backend buffers."""
        flush = getattr(self.experiment, "flush", None)
        if callable(flush):
            flush()

    def close(self) -> None:
        """Flush and close the backend's writer (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self.flush()
        self._close()

    def _close(self) -> None:
        close = getattr(self.experiment, "close", None)
        if callable(close):
            close()

    def __enter__(self) -> Logger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
