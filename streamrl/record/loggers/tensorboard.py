"""TensorboardLogger: TensorBoard event files through ``torch.utils.tensorboard``.

Needs the ``tensorboard`` package (``pip install 'streamrl[record]'``). Events go to
``<log_dir>/<exp_name>/``; after construction ``logger.log_dir`` is that directory, as in
TorchRL. Read them back with TensorBoard, or with its ``EventAccumulator``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from streamrl.record._video import as_video, encode_gif
from streamrl.record.loggers.common import Logger, require

__all__ = ["TensorboardLogger"]


class TensorboardLogger(Logger):
    """Log to TensorBoard event files (a ``SummaryWriter`` in ``<log_dir>/<exp_name>``).

    Args:
        exp_name: the experiment's name (the run directory under ``log_dir``).
        log_dir: the TensorBoard root directory; defaults to ``tb_logs``.
        purge_step: when a run goes on in the directory of an interrupted one (from its
            checkpoint at step ``purge_step - 1``), the events the interrupted run wrote at
            steps ``>= purge_step`` are hidden (``SummaryWriter``'s ``purge_step``).

    Videos are written as animated GIF images (what TensorBoard's video summaries are),
    encoded with Pillow rather than moviepy.
    """

    def __init__(self, exp_name: str, log_dir: Any = "tb_logs", *,
                 purge_step: int | None = None) -> None:
        # checked before the writer creates any directory
        require("tensorboard", "TensorboardLogger")
        if purge_step is not None and (isinstance(purge_step, bool)
                                       or not isinstance(purge_step, int) or purge_step < 0):
            raise ValueError(f"purge_step must be an int >= 0 or None, found {purge_step!r}")
        self.purge_step = purge_step
        super().__init__(exp_name=exp_name, log_dir=log_dir)
        self.log_dir = self.experiment.log_dir

    def _create_experiment(self) -> Any:
        from torch.utils.tensorboard import SummaryWriter

        return SummaryWriter(log_dir=os.path.join(str(self.log_dir), self.exp_name),
                             purge_step=self.purge_step)

    def log_scalar(self, name: str, value: float, step: int | None = None) -> None:
        """Add a scalar summary ``name`` at ``step``."""
        self.experiment.add_scalar(name, value, global_step=step)

    def log_video(self, name: str, video: torch.Tensor, step: int | None = None,
                  **kwargs: Any) -> None:
        """Add ``video`` (uint8 ``[T, C, H, W]`` or ``[N, T, C, H, W]``) as an animated image
        summary; ``fps`` (default 4, as ``SummaryWriter.add_video``) sets its speed."""
        from tensorboard.compat.proto.summary_pb2 import Summary

        fps = kwargs.pop("fps", 4)
        walltime = kwargs.pop("walltime", None)
        if kwargs:
            raise TypeError(f"TensorboardLogger.log_video: unexpected arguments {sorted(kwargs)}")
        frames = as_video(video, "TensorboardLogger.log_video")
        _, c, h, w = frames.shape
        image = Summary.Image(height=h, width=w, colorspace=c,
                              encoded_image_string=encode_gif(frames, fps))
        summary = Summary(value=[Summary.Value(tag=name, image=image)])
        self.experiment.file_writer.add_summary(summary, step, walltime)

    def log_hparams(self, cfg: Mapping[str, Any]) -> None:
        """Add the hyperparameters (HPARAMS tab; a timestamped sub-run, as in TorchRL)."""
        if not isinstance(cfg, Mapping):
            raise TypeError(f"log_hparams expects a mapping, found {type(cfg).__name__}")
        cfg = {k: v if isinstance(v, (int, float, str, bool, torch.Tensor)) else str(v)
               for k, v in cfg.items()}
        self.experiment.add_hparams(cfg, metric_dict={})

    def log_histogram(self, name: str, data: Sequence, **kwargs: Any) -> None:
        """Add a histogram summary of ``data``; keyword arguments ``step``, ``bins``
        (default ``"tensorflow"``) and ``walltime``."""
        step = kwargs.pop("step", None)
        bins = kwargs.pop("bins", "tensorflow")
        walltime = kwargs.pop("walltime", None)
        if kwargs:
            raise TypeError(f"TensorboardLogger.log_histogram: unexpected arguments {sorted(kwargs)}")
        self.experiment.add_histogram(name, data, global_step=step, bins=bins, walltime=walltime)

    def __repr__(self) -> str:
        return f"TensorboardLogger(exp_name={self.exp_name}, log_dir={self.log_dir})"
