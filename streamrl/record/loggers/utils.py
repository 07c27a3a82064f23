"""get_logger (a logger from its type name) and generate_exp_name (a unique run name).

>>> name = generate_exp_name("DQN", "cartpole")
>>> name.startswith("DQN_cartpole_"), len(name)
(True, 39)
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from streamrl.record.loggers.common import Logger

__all__ = ["generate_exp_name", "get_logger"]

LOGGER_TYPES = ("csv", "tensorboard", "wandb")


def generate_exp_name(model_name: str, experiment_name: str) -> str:
    """A unique experiment name: ``<model_name>_<experiment_name>_<8 hex chars of a uuid4>_
    <yy_mm_dd-HH_MM_SS>`` (local time), as TorchRL makes it."""
    stamp = datetime.now().strftime("%y_%m_%d-%H_%M_%S")
    return "_".join((model_name, experiment_name, str(uuid.uuid4())[:8], stamp))


def get_logger(logger_type: str | None, logger_name: str, experiment_name: str,
               **kwargs: Any) -> Logger | None:
    """A logger of ``logger_type`` writing under the directory ``logger_name``.

    Args:
        logger_type: ``"csv"`` (a :class:`CSVLogger` writing mp4 videos), ``"tensorboard"``,
            ``"wandb"`` (offline), or ``""``/None for no logger (returns None).
        logger_name: the log directory.
        experiment_name: the experiment's name.
        **kwargs: ``wandb_kwargs``: a dict of extra :class:`WandbLogger` arguments.

    Raises ValueError for any other type (TorchRL's mlflow and trackio loggers are not
    provided) and for unexpected keyword arguments.
    """
    wandb_kwargs = dict(kwargs.pop("wandb_kwargs", None) or {})
    if kwargs:
        raise ValueError(f"get_logger: unexpected arguments {sorted(kwargs)} (wandb_kwargs only)")
    if logger_type in ("", None):
        return None
    if logger_type == "csv":
        from streamrl.record.loggers.csv import CSVLogger

        return CSVLogger(exp_name=experiment_name, log_dir=logger_name, video_format="mp4")
    if logger_type == "tensorboard":
        from streamrl.record.loggers.tensorboard import TensorboardLogger

        return TensorboardLogger(exp_name=experiment_name, log_dir=logger_name)
    if logger_type == "wandb":
        from streamrl.record.loggers.wandb import WandbLogger

        return WandbLogger(exp_name=experiment_name, log_dir=logger_name, **wandb_kwargs)
    raise ValueError(
        f"unknown logger_type {logger_type!r}: expected one of {list(LOGGER_TYPES)}, '' or None"
    )
