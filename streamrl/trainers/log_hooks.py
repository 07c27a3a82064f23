"""Logging hooks: scalars of the collected batch, frame counts, hook timings, the UTD ratio."""

from __future__ import annotations

from typing import Any

import torch
from tensordict import TensorDictBase
from tensordict.utils import NestedKey

from streamrl.trainers._checks import check_name, check_trainer, positive_int
from streamrl.trainers.hook_base import TrainerHookBase
from streamrl.trainers.replay import MASK_KEY, ReplayBufferTrainer

__all__ = ["CountFramesLog", "LogScalar", "LogTiming", "UTDRHook"]

_REDUCTIONS = {"mean": torch.mean, "sum": torch.sum, "min": torch.min, "max": torch.max}


def _check_log_pbar(log_pbar: Any) -> bool:
    if not isinstance(log_pbar, bool):
        raise TypeError(f"log_pbar must be a bool, found {type(log_pbar).__name__}")
    return log_pbar


class LogScalar(TrainerHookBase):
    """Logs a reduction (and the standard deviation) of one entry of each collected batch.

    Only the valid steps are used when the batch has a ``("collector", "mask")``. The value is
    logged as ``logname`` (default: ``str(key)``, e.g. ``"('next', 'reward')"``, as TorchRL
    names it) and the deviation as ``logname + "_std"``.

    Args:
        key: the entry (default ``("next", "reward")``).
        logname: the name logged.
        log_pbar: also show it on the progress bar.
        include_std: also log the standard deviation.
        reduction: ``"mean"``, ``"sum"``, ``"min"`` or ``"max"``.

    >>> from tensordict import TensorDict
    >>> batch = TensorDict({("next", "reward"): torch.tensor([[1.0], [3.0]])}, [2])
    >>> LogScalar(logname="r_training")(batch)
    {'r_training': 2.0, 'log_pbar': False, 'r_training_std': 1.4142135381698608}
    """

    def __init__(self, key: NestedKey = ("next", "reward"), logname: str | None = None,
                 log_pbar: bool = False, include_std: bool = True,
                 reduction: str = "mean") -> None:
        if not isinstance(key, (str, tuple)) or (isinstance(key, tuple) and not all(
                isinstance(k, str) for k in key)):
            raise TypeError(f"key must be a str or a tuple of str, found {key!r}")
        if logname is not None and (not isinstance(logname, str) or not logname):
            raise ValueError(f"logname must be a non-empty str or None, found {logname!r}")
        if reduction not in _REDUCTIONS:
            raise ValueError(f"reduction must be one of {list(_REDUCTIONS)}, found {reduction!r}")
        if not isinstance(include_std, bool):
            raise TypeError(f"include_std must be a bool, found {type(include_std).__name__}")
        self.key = key
        self.logname = logname if logname is not None else str(key)
        self.log_pbar = _check_log_pbar(log_pbar)
        self.include_std = include_std
        self.reduction = reduction

    def __call__(self, batch: TensorDictBase) -> dict[str, Any]:
        value = batch.get(self.key, None)
        if value is None:
            raise KeyError(f"LogScalar: the batch has no {self.key!r} entry; it has "
                           f"{sorted(map(str, batch.keys(True, True)))}")
        mask = batch.get(MASK_KEY, None)
        if mask is not None:
            value = value[mask]
        value = value.float()
        out: dict[str, Any] = {self.logname: _REDUCTIONS[self.reduction](value).item(),
                               "log_pbar": self.log_pbar}
        if self.include_std:
            out[self.logname + "_std"] = value.std().item() if value.numel() > 1 else 0.0
        return out

    def register(self, trainer: Any, name: str | None = None) -> None:
        """At ``"pre_steps_log"``, as module ``name`` (default ``"log_" + logname``)."""
        check_trainer(trainer, self)
        trainer.register_op("pre_steps_log", self)
        trainer.register_module(check_name(name or f"log_{self.logname}"), self)


class CountFramesLog(TrainerHookBase):
    """Logs ``n_frames``: the env frames collected so far (valid steps times ``frame_skip``).

    >>> from tensordict import TensorDict
    >>> count = CountFramesLog(frame_skip=2)
    >>> count(TensorDict({}, [10]))
    {'n_frames': 20, 'log_pbar': False}
    """

    def __init__(self, frame_skip: int = 1, log_pbar: bool = False) -> None:
        self.frame_skip = positive_int(frame_skip, "frame_skip")
        self.log_pbar = _check_log_pbar(log_pbar)
        self.frame_count = 0

    def __call__(self, batch: TensorDictBase) -> dict[str, Any]:
        mask = batch.get(MASK_KEY, None)
        frames = int(mask.sum()) if mask is not None else batch.batch_size.numel()
        self.frame_count += frames * self.frame_skip
        return {"n_frames": self.frame_count, "log_pbar": self.log_pbar}

    def register(self, trainer: Any, name: str = "count_frames_log") -> None:
        """At ``"pre_steps_log"``."""
        check_trainer(trainer, self)
        trainer.register_op("pre_steps_log", self)
        trainer.register_module(check_name(name), self)

    def state_dict(self) -> dict[str, Any]:
        """The frame count."""
        return {"frame_count": self.frame_count}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the frame count."""
        self.frame_count = int(state_dict["frame_count"])


class LogTiming(TrainerHookBase):
    """Logs the time the trainer spent in each hook (``trainer.timings``), as
    ``"{prefix}/hook/{name}"``: seconds per call (``percall``) or in total; ``erase`` clears the
    timings after each log. Registered at ``"post_steps_log"``.

    >>> hook = LogTiming(prefix="t")
    >>> class Stub:  # a trainer's timings: name -> [seconds, calls]
    ...     timings = {"hook/ReplayBufferTrainer.sample": [0.5, 2]}
    >>> hook.trainer = Stub()
    >>> hook(None)
    {'t/hook/ReplayBufferTrainer.sample': 0.25}
    """

    def __init__(self, prefix: str = "time", percall: bool = True, erase: bool = False) -> None:
        if not isinstance(prefix, str):
            raise TypeError(f"prefix must be a str, found {type(prefix).__name__}")
        if not isinstance(percall, bool) or not isinstance(erase, bool):
            raise TypeError(f"percall and erase must be bools, found {percall!r} and {erase!r}")
        self.prefix = prefix
        self.percall = percall
        self.erase = erase
        self.trainer: Any = None

    def __call__(self, batch: Any = None) -> dict[str, Any]:
        if self.trainer is None:
            raise RuntimeError("LogTiming reads a trainer's timings: call register(trainer) first")
        timings = self.trainer.timings
        prefix = f"{self.prefix}/" if self.prefix else ""
        out = {f"{prefix}{name}": (total / calls if self.percall else total)
               for name, (total, calls) in timings.items() if calls}
        if self.erase:
            timings.clear()
        return out

    def register(self, trainer: Any, name: str | None = None) -> None:
        """At ``"post_steps_log"``, as module ``name`` (default ``"log_timing"``)."""
        check_trainer(trainer, self)
        self.trainer = trainer
        trainer.register_op("post_steps_log", self)
        trainer.register_module(check_name(name or "log_timing"), self)

    def state_dict(self) -> dict[str, Any]:
        """The configuration (timings are not restored)."""
        return {"prefix": self.prefix, "percall": self.percall, "erase": self.erase}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the configuration."""
        self.prefix = str(state_dict["prefix"])
        self.percall = bool(state_dict["percall"])
        self.erase = bool(state_dict["erase"])


class UTDRHook(TrainerHookBase):
    """Logs ``utd_ratio``, the update-to-data ratio: rows sampled for updates per row written,
    ``batch_size * optim_count / write_count``, read from the trainer's optimizer-step count and
    the :class:`ReplayBufferTrainer` registered on it (found when training starts: training
    without one fails before the first batch). Registered at ``"pre_steps_log"``; nothing is
    logged until a row is written.

    >>> from tensordict import TensorDict
    >>> from streamrl.data import LazyTensorStorage, TensorDictReplayBuffer
    >>> rb_hook = ReplayBufferTrainer(TensorDictReplayBuffer(storage=LazyTensorStorage(10)), 4)
    >>> class Stub:  # what the hook reads from a trainer
    ...     optim_count = 5
    ...     modules = {"replay_buffer": rb_hook}
    >>> rb_hook.extend(TensorDict({"x": torch.zeros(10)}, [10]))
    >>> hook = UTDRHook(Stub())
    >>> hook.setup(); hook(None)
    {'utd_ratio': 2.0}
    """

    def __init__(self, trainer: Any) -> None:
        if not hasattr(trainer, "optim_count"):
            raise TypeError(f"UTDRHook expects a Trainer, found {type(trainer).__name__}")
        self.trainer = trainer
        self._replay: ReplayBufferTrainer | None = None

    def setup(self) -> None:
        """Find the trainer's :class:`ReplayBufferTrainer` (raises when there is none)."""
        hooks = [m for m in self.trainer.modules.values() if isinstance(m, ReplayBufferTrainer)]
        if len(hooks) != 1:
            raise RuntimeError(
                f"UTDRHook needs exactly one ReplayBufferTrainer registered on the trainer, "
                f"found {len(hooks)}"
            )
        self._replay = hooks[0]

    def __call__(self, batch: Any = None) -> dict[str, Any]:
        if self._replay is None:
            self.setup()
        replay = self._replay
        if replay is None or not replay.write_count:
            return {}
        batch_size = replay.batch_size or replay.replay_buffer.batch_size
        return {"utd_ratio": batch_size * self.trainer.optim_count / replay.write_count}

    def register(self, trainer: Any, name: str = "utdr_hook") -> None:
        """At ``"pre_steps_log"``; :meth:`setup` at ``"setup"``; as module ``name``."""
        check_trainer(trainer, self)
        if trainer is not self.trainer:
            raise ValueError("UTDRHook must be registered on the trainer it was built with")
        trainer.register_op("setup", self.setup)
        trainer.register_op("pre_steps_log", self)
        trainer.register_module(check_name(name), self)
