"""Recording: loggers and video recorders with TorchRL's ``torchrl.record`` names.

- loggers: :class:`CSVLogger`, :class:`TensorboardLogger`, :class:`WandbLogger` (offline),
  their base :class:`Logger`, :func:`get_logger` and :func:`generate_exp_name`;
- :class:`LoggerMonitor` with :class:`Every` schedules: the ``stats()`` of collectors and
  replay buffers, polled in a background thread and logged;
- env transforms: :class:`VideoRecorder` (frames to a logger's video) and
  :class:`PixelRenderTransform` (``env.render()`` frames as an observation).

TensorBoard, wandb and mp4 encoding are the ``record`` extra:
``pip install 'streamrl[record]'``.
"""

from streamrl.record.loggers import (
    CSVLogger,
    Every,
    Logger,
    LoggerMonitor,
    TensorboardLogger,
    WandbLogger,
    generate_exp_name,
    get_logger,
)
from streamrl.record.recorder import PixelRenderTransform, VideoRecorder

__all__ = [
    "CSVLogger",
    "Every",
    "Logger",
    "LoggerMonitor",
    "PixelRenderTransform",
    "TensorboardLogger",
    "VideoRecorder",
    "WandbLogger",
    "generate_exp_name",
    "get_logger",
]
