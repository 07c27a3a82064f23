"""WandbLogger: a Weights & Biases run, always offline.

Needs the ``wandb`` package (``pip install 'streamrl[record]'``). The run is written under
``<save_dir>/wandb/offline-run-*`` and never contacts a server; upload it later with
``wandb sync <that directory>``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from streamrl.record._video import as_video, require_mp4, write_mp4
from streamrl.record.loggers.common import Logger, require

__all__ = ["WandbLogger"]


def _env_metadata() -> dict[str, Any]:
    from importlib import metadata

    packages = {d.metadata["Name"]: d.version for d in metadata.distributions()
                if d.metadata["Name"]}
    return {"python": sys.version, "packages": dict(sorted(packages.items()))}


class WandbLogger(Logger):
    """Log to a wandb run in offline mode (``wandb.init(mode="offline")``).

    Args:
        exp_name: the run's name.
        offline: must be True (the default): streamrl never sends data over the network.
            TorchRL's default is ``False``; pass nothing, or sync the offline run yourself.
        save_dir: the directory wandb writes under (``wandb.init(dir=...)``). ``log_dir``
            is accepted as a synonym; giving both is an error.
        id: the run id (for resuming).
        project: the wandb project.
        video_fps: frames per second of logged videos.
        log_env_packages: record the Python version and installed package versions under
            ``config["env"]``.
        **kwargs: passed to ``wandb.init`` (``config``, ``group``, ``tags``...).

    Each scalar is logged with its own step counter (``step``, or ``<prefix>/step`` for a
    name ``<prefix>/x``), so steps given per metric need not increase across metrics.
    """

    def __init__(self, exp_name: str, offline: bool = True, save_dir: Any = None,
                 id: str | None = None, project: str | None = None, *, video_fps: int = 32,
                 log_env_packages: bool = True, **kwargs: Any) -> None:
        require("wandb", "WandbLogger")
        if not offline or kwargs.pop("mode", "offline") not in ("offline", "dryrun"):
            raise ValueError(
                "WandbLogger runs offline only (offline=True): streamrl never contacts a "
                "server; upload the run afterwards with `wandb sync <run dir>`"
            )
        log_dir = kwargs.pop("log_dir", None)
        if save_dir is not None and log_dir is not None:
            raise ValueError("WandbLogger: give save_dir or log_dir, not both")
        save_dir = save_dir if save_dir is not None else log_dir
        self.offline = True
        self.save_dir = save_dir
        self.id = id
        self.project = project
        self.video_fps = video_fps
        self._steps: dict[str, int] = {}
        self._defined: set[str] = set()
        self._init_kwargs = {"name": exp_name, "dir": None if save_dir is None else str(save_dir),
                             "id": id, "project": project, "mode": "offline", **kwargs}
        super().__init__(exp_name=exp_name, log_dir=save_dir)
        if log_env_packages:
            self.experiment.config.update({"env": _env_metadata()}, allow_val_change=True)

    def _create_experiment(self) -> Any:
        import wandb

        if self.save_dir is not None:
            os.makedirs(self.save_dir, exist_ok=True)
        return wandb.init(**self._init_kwargs)

    # -------------------------------------------------------------- steps
    @staticmethod
    def _step_key(name: str) -> str:
        prefix, sep, _ = name.rpartition("/")
        return f"{prefix}/step" if sep else "step"

    def _log(self, name: str, value: Any, step: int | None) -> None:
        step_key = self._step_key(name)
        last = self._steps.get(step_key, -1)
        step = last + 1 if step is None else int(step)
        self._steps[step_key] = max(last, step)
        if step_key not in self._defined:
            self._defined.add(step_key)
            self.experiment.define_metric(step_key)
        if name not in self._defined:
            self._defined.add(name)
            self.experiment.define_metric(name, step_metric=step_key)
        self.experiment.log({name: value, step_key: step})

    # -------------------------------------------------------------- Logger
    def log_scalar(self, name: str, value: float, step: int | None = None) -> None:
        """Log ``value`` under ``name``, with ``step`` on the name's step axis."""
        if isinstance(value, torch.Tensor):
            value = value.item()
        self._log(name, value, step)

    def log_video(self, name: str, video: torch.Tensor, step: int | None = None,
                  **kwargs: Any) -> None:
        """Log ``video`` (uint8 ``[T, C, H, W]`` or ``[N, T, C, H, W]``) as a ``wandb.Video``:
        encoded to mp4 with imageio-ffmpeg (no moviepy needed), then copied by wandb into the
        run's media.
        ``fps`` defaults to ``video_fps``."""
        import wandb

        require_mp4("WandbLogger.log_video")
        fps = kwargs.pop("fps", self.video_fps)
        frames = as_video(video, "WandbLogger.log_video")
        # encoded beside the run's files (wandb copies it into the run's media when logged)
        media = os.path.join(os.path.dirname(self.experiment.dir), "tmp", "streamrl_videos")
        os.makedirs(media, exist_ok=True)
        count = sum(1 for f in os.listdir(media) if f.startswith(f"{name.replace('/', '_')}_"))
        path = os.path.join(media, f"{name.replace('/', '_')}_{count}.mp4")
        write_mp4(path, frames, fps=fps, **kwargs)
        self._log(name, wandb.Video(path), step)

    def log_hparams(self, cfg: Mapping[str, Any]) -> None:
        """Update the run's config with ``cfg``."""
        if not isinstance(cfg, Mapping):
            raise TypeError(f"log_hparams expects a mapping, found {type(cfg).__name__}")
        self.experiment.config.update(dict(cfg), allow_val_change=True)

    def log_histogram(self, name: str, data: Sequence, **kwargs: Any) -> None:
        """Log a ``wandb.Histogram`` of ``data``; keyword arguments ``step`` and ``bins``
        (the number of bins, default wandb's)."""
        import wandb

        step = kwargs.pop("step", None)
        bins = kwargs.pop("bins", None)
        if kwargs:
            raise TypeError(f"WandbLogger.log_histogram: unexpected arguments {sorted(kwargs)}")
        if isinstance(data, torch.Tensor):
            data = data.detach().cpu().numpy()
        hist = wandb.Histogram(data) if bins is None else wandb.Histogram(data, num_bins=bins)
        self._log(name, hist, step)

    def _close(self) -> None:
        self.experiment.finish()

    def flush(self) -> None:
        """Nothing to flush: wandb writes in its own process."""

    def __repr__(self) -> str:
        return f"WandbLogger(exp_name={self.exp_name}, save_dir={self.save_dir})"
