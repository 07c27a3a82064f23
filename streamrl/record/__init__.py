"""Recording: loggers and video recorders with TorchRL's ``torchrl.record`` names.

- loggers: :class:`CSVLogger`, :class:`TensorboardLogger`, :class:`WandbLogger` (offline),
  their base :class:`Logger`, :func:`get_logger` and :func:`generate_exp_name`;
- env transforms: :class:`VideoRecorder` (frames to a logger's video) and
  :class:`PixelRenderTransform` (``env.render()`` frames as an observation).

TensorBoard, wandb and mp4 encoding are the ``record`` extra:
``pip install 'streamrl[record]'``.
"""

from streamrl.record.loggers import (
    CSVLogger,
    Logger,
    TensorboardLogger,
    WandbLogger,
    generate_exp_name,
    get_logger,
)
from streamrl.record.recorder import PixelRenderTransform, VideoRecorder

__all__ = [
    "CSVLogger",
    "Logger",
    "PixelRenderTransform",
    "TensorboardLogger",
    "VideoRecorder",
    "WandbLogger",
    "generate_exp_name",
    "get_logger",
]
