"""Control hooks: stop early when a metric stalls; release cached CUDA memory."""

from __future__ import annotations

import math
from typing import Any

import torch
from tensordict.utils import NestedKey

from streamrl.trainers._checks import check_name, check_trainer, positive_int
from streamrl.trainers.hook_base import TrainerHookBase

__all__ = ["ClearCudaCache", "EarlyStopping"]


class EarlyStopping(TrainerHookBase):
    """Stops training (``trainer.request_stop``) when a logged metric stops improving.

    After each batch (``"post_steps_log"``) it reads the last value the trainer logged under
    ``monitor`` (a name a log hook returns, e.g. ``"r_evaluation"`` from
    :class:`LogValidationReward`; a tuple key is looked up as ``str(key)``, the name
    :class:`LogScalar` gives it). Before ``wait_for`` collected frames, or before the metric is
    first logged, it does nothing. A value better than the best so far by more than
    ``min_delta`` (higher in ``"max"`` mode, lower in ``"min"``) resets the count; after
    ``patience`` frames without one, training stops. A NaN or infinite value stops at once
    with ``check_finite``.

    >>> class Trainer:  # what the hook reads from a trainer
    ...     collected_frames, last_logged, stopped = 0, {}, None
    ...     def register_op(self, dest, op): pass
    ...     def register_module(self, name, module): pass
    ...     def request_stop(self, reason): self.stopped = reason
    >>> trainer = Trainer()
    >>> hook = EarlyStopping(monitor="r", patience=20, wait_for=0)
    >>> hook.register(trainer)
    >>> for frames, r in [(10, 1.0), (20, 2.0), (30, 1.5), (40, 1.9)]:
    ...     trainer.collected_frames, trainer.last_logged["r"] = frames, r
    ...     hook(None)
    >>> trainer.stopped
    "EarlyStopping: 'r' did not improve on 2.0 for 20 frames"
    """

    def __init__(self, *, monitor: NestedKey = "r_evaluation", mode: str = "max",
                 min_delta: float = 0.0, patience: int = 100_000, wait_for: int = 1_000_000,
                 check_finite: bool = True) -> None:
        if not isinstance(monitor, (str, tuple)):
            raise TypeError(f"monitor must be a metric name, found {monitor!r}")
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', found {mode!r}")
        if not (isinstance(min_delta, (int, float)) and min_delta >= 0):
            raise ValueError(f"min_delta must be a number >= 0, found {min_delta!r}")
        if isinstance(wait_for, bool) or not isinstance(wait_for, int) or wait_for < 0:
            raise ValueError(f"wait_for must be an int >= 0, found {wait_for!r}")
        if not isinstance(check_finite, bool):
            raise TypeError(f"check_finite must be a bool, found {type(check_finite).__name__}")
        self.monitor = monitor if isinstance(monitor, str) else str(monitor)
        self.mode = mode
        self.min_delta = float(min_delta)
        self.patience = positive_int(patience, "patience")
        self.wait_for = wait_for
        self.check_finite = check_finite
        self.best_score: float | None = None
        self.stop_reason: str | None = None
        self._last_improvement_frame: int | None = None
        self._trainer: Any = None

    def _better(self, score: float, best: float) -> bool:
        if self.mode == "max":
            return score > best + self.min_delta
        return score < best - self.min_delta

    def __call__(self, batch: Any = None) -> None:
        trainer = self._trainer
        if trainer is None:
            raise RuntimeError("EarlyStopping reads a trainer's metrics: call register(trainer)")
        frames = trainer.collected_frames
        score = trainer.last_logged.get(self.monitor)
        if frames < self.wait_for or score is None:
            return
        score = float(score)
        if not math.isfinite(score):
            if self.check_finite:
                self._stop(f"EarlyStopping: {self.monitor!r} is {score}")
            return
        if self.best_score is None or self._better(score, self.best_score):
            self.best_score = score
            self._last_improvement_frame = frames
        elif frames - (self._last_improvement_frame or 0) >= self.patience:
            self._stop(f"EarlyStopping: {self.monitor!r} did not improve on {self.best_score} "
                       f"for {self.patience} frames")

    def _stop(self, reason: str) -> None:
        self.stop_reason = reason
        self._trainer.request_stop(reason)

    def register(self, trainer: Any, name: str = "early_stopping") -> None:
        """At ``"post_steps_log"``."""
        check_trainer(trainer, self)
        self._trainer = trainer
        trainer.register_op("post_steps_log", self)
        trainer.register_module(check_name(name), self)

    def state_dict(self) -> dict[str, Any]:
        """The best score, the frame of the last improvement and the stop reason."""
        return {"best_score": self.best_score, "stop_reason": self.stop_reason,
                "_last_improvement_frame": self._last_improvement_frame}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        self.best_score = state_dict["best_score"]
        self.stop_reason = state_dict["stop_reason"]
        self._last_improvement_frame = state_dict["_last_improvement_frame"]


class ClearCudaCache(TrainerHookBase):
    """Calls ``torch.cuda.empty_cache()`` every ``interval`` calls (``"pre_optim_steps"``:
    once per collected batch); without CUDA it only counts.

    >>> hook = ClearCudaCache(100)
    >>> hook(); hook.count
    1
    """

    def __init__(self, interval: int) -> None:
        self.interval = positive_int(interval, "interval")
        self.count = 0

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        self.count += 1
        if self.count % self.interval == 0 and torch.cuda.is_available():
            torch.cuda.empty_cache()

    def register(self, trainer: Any, name: str = "clear_cuda_cache") -> None:
        """At ``"pre_optim_steps"``."""
        check_trainer(trainer, self)
        trainer.register_op("pre_optim_steps", self)
        trainer.register_module(check_name(name), self)

    def state_dict(self) -> dict[str, Any]:
        """The call count."""
        return {"count": self.count}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the call count."""
        self.count = int(state_dict["count"])
