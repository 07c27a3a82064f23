"""Loggers with TorchRL's interface: CSV files, TensorBoard event files, offline wandb runs.

``get_logger(type, log_dir, exp_name)`` builds one by name. The TensorBoard and wandb
backends, and mp4 video encoding, are the ``record`` extra (``pip install
'streamrl[record]'``); a logger whose backend is missing raises ModuleNotFoundError when it is
built, before writing anything.
"""

from streamrl.record.loggers.common import Logger
from streamrl.record.loggers.csv import CSVLogger
from streamrl.record.loggers.monitoring import Every, LoggerMonitor
from streamrl.record.loggers.tensorboard import TensorboardLogger
from streamrl.record.loggers.utils import generate_exp_name, get_logger
from streamrl.record.loggers.wandb import WandbLogger

__all__ = [
    "CSVLogger",
    "Every",
    "Logger",
    "LoggerMonitor",
    "TensorboardLogger",
    "WandbLogger",
    "generate_exp_name",
    "get_logger",
]
