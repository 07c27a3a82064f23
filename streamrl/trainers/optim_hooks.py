"""Optimization hooks: the optimizer step, the learning-rate schedule, the target networks."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from tensordict import TensorDictBase

from streamrl.ops.gradient_step import GradientStep, check_optimizer, loss_key_names
from streamrl.trainers._checks import check_name, check_trainer
from streamrl.trainers.hook_base import TrainerHookBase

__all__ = ["LRSchedulerHook", "OptimizerHook", "TargetNetUpdaterHook"]


class OptimizerHook(TrainerHookBase):
    """Steps ``optimizer`` on the sum of some loss components (the ``"optimizer"`` destination).

    Called as ``hook(losses, clip_grad_norm, clip_norm, index)`` by the trainer; the update is a
    :class:`streamrl.ops.GradientStep` (the arithmetic :class:`streamrl.ops.Learner` uses): the
    sum of ``loss_components`` (default: every ``loss*`` entry), zero_grad, backward, clipping
    (the total norm to ``clip_norm`` when ``clip_grad_norm``, else each partial derivative to
    ``[-clip_norm, clip_norm]``; no clipping when ``clip_norm`` is ``None``) and
    ``optimizer.step()``. It returns the losses with ``grad_norm_{index}`` added (the total
    gradient norm before clipping; measured, not clipped, when ``clip_norm`` is ``None``).
    Several hooks (e.g. one per optimizer) can be registered; ``index`` tells them apart.

    Args:
        optimizer: the optimizer.
        loss_components: the loss entries it minimises (default: all ``loss*`` entries).

    >>> from tensordict import TensorDict
    >>> net = torch.nn.Linear(2, 1)
    >>> hook = OptimizerHook(torch.optim.SGD(net.parameters(), lr=0.1), ["loss_a"])
    >>> losses = TensorDict({"loss_a": net(torch.ones(1, 2)).sum(), "loss_b": torch.ones(())})
    >>> sorted(hook(losses, True, None, 0).keys())
    ['grad_norm_0', 'loss_a', 'loss_b']
    """

    def __init__(self, optimizer: torch.optim.Optimizer,
                 loss_components: Sequence[str] | None = None) -> None:
        check_optimizer(optimizer)
        loss_components = loss_key_names(loss_components, "loss_components")
        self.optimizer = optimizer
        self.loss_components = loss_components
        self._steps: dict[tuple[bool, float | None], GradientStep] = {}

    def _gradient_step(self, clip_grad_norm: bool, clip_norm: float | None) -> GradientStep:
        key = (bool(clip_grad_norm), clip_norm)
        step = self._steps.get(key)
        if step is None:
            if clip_grad_norm:
                step = GradientStep(self.optimizer, loss_keys=self.loss_components,
                                    max_grad_norm=math.inf if clip_norm is None else clip_norm)
            else:
                step = GradientStep(self.optimizer, loss_keys=self.loss_components,
                                    clip_value=clip_norm)
            self._steps[key] = step
        return step

    def __call__(self, losses_td: TensorDictBase, clip_grad_norm: bool = True,
                 clip_norm: float | None = None, index: int = 0) -> TensorDictBase:
        scalars = self._gradient_step(clip_grad_norm, clip_norm)(losses_td)
        out = losses_td.copy()
        if "grad_norm" in scalars:
            out.set(f"grad_norm_{index}", scalars["grad_norm"])
        return out

    def register(self, trainer: Any, name: str = "optimizer") -> None:
        """At ``"optimizer"``; the optimizer's state is saved as module ``name``."""
        check_trainer(trainer, self)
        trainer.register_op("optimizer", self)
        trainer.register_module(check_name(name), self)

    def state_dict(self) -> dict[str, Any]:
        """The optimizer's state_dict."""
        return self.optimizer.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the optimizer's state_dict."""
        self.optimizer.load_state_dict(state_dict)


_INTERVALS = ("batch", "optim")


class LRSchedulerHook(TrainerHookBase):
    """Steps a learning-rate scheduler once per collected batch or after every optimizer step.

    With ``interval="batch"`` it is registered at ``"post_steps"`` and steps only when at least
    one optimization step ran since its last step (so warm-up batches collected before
    ``init_random_frames`` do not decay the rate); with ``"optim"`` it is registered at
    ``"post_optim"`` and steps every time.

    >>> net = torch.nn.Linear(1, 1)
    >>> opt = torch.optim.SGD(net.parameters(), lr=1.0)
    >>> hook = LRSchedulerHook(torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5),
    ...                        interval="optim")
    >>> opt.step(); hook(); opt.param_groups[0]["lr"]
    0.5
    """

    def __init__(self, scheduler: Any, interval: str = "batch") -> None:
        if not isinstance(scheduler, torch.optim.lr_scheduler.LRScheduler):
            raise TypeError(
                f"scheduler must be a torch.optim.lr_scheduler.LRScheduler, found "
                f"{type(scheduler).__name__}"
            )
        if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            raise TypeError("ReduceLROnPlateau steps on a metric; LRSchedulerHook calls step() "
                            "with none")
        if interval not in _INTERVALS:
            raise ValueError(f"interval must be one of {list(_INTERVALS)}, found {interval!r}")
        self.scheduler = scheduler
        self.interval = interval
        self.last_optim_count = 0
        self._trainer: Any = None

    def __call__(self) -> None:
        if self.interval == "batch" and self._trainer is not None:
            count = self._trainer.optim_count
            if count <= self.last_optim_count:
                return
            self.last_optim_count = count
        self.scheduler.step()

    def register(self, trainer: Any, name: str = "lr_scheduler") -> None:
        """At ``"post_steps"`` (``interval="batch"``) or ``"post_optim"`` (``"optim"``)."""
        check_trainer(trainer, self)
        self._trainer = trainer
        trainer.register_op("post_steps" if self.interval == "batch" else "post_optim", self)
        trainer.register_module(check_name(name), self)

    def state_dict(self) -> dict[str, Any]:
        """The scheduler's state and the optimizer-step count of the last step."""
        return {"scheduler": self.scheduler.state_dict(),
                "last_optim_count": self.last_optim_count}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        self.scheduler.load_state_dict(state_dict["scheduler"])
        self.last_optim_count = int(state_dict["last_optim_count"])


class TargetNetUpdaterHook(TrainerHookBase):
    """Calls ``target_params_updater.step()`` (e.g. a :class:`~streamrl.objectives.SoftUpdate`)
    after every optimizer step (``"post_optim"``). The target parameters themselves are part of
    the loss module's state; the updater's own state (e.g. a
    :class:`~streamrl.objectives.HardUpdate`'s step counter) is this hook's.

    >>> from streamrl.objectives import DDPGLoss, SoftUpdate
    >>> from streamrl.modules import Actor, ValueOperator
    >>> actor = Actor(torch.nn.Linear(3, 1))
    >>> value = ValueOperator(torch.nn.Linear(4, 1), in_keys=["observation", "action"])
    >>> hook = TargetNetUpdaterHook(SoftUpdate(DDPGLoss(actor, value), eps=0.99))
    >>> hook()
    """

    def __init__(self, target_params_updater: Any) -> None:
        if not callable(getattr(target_params_updater, "step", None)):
            raise TypeError(
                f"target_params_updater must have a step() method (a TargetNetUpdater), found "
                f"{type(target_params_updater).__name__}"
            )
        self.target_params_updater = target_params_updater

    def __call__(self) -> None:
        self.target_params_updater.step()

    def register(self, trainer: Any, name: str = "target_net_updater") -> None:
        """At ``"post_optim"``."""
        check_trainer(trainer, self)
        trainer.register_op("post_optim", self)
        trainer.register_module(check_name(name), self)

    def state_dict(self) -> dict[str, Any]:
        """The updater's state (``{}`` for an updater without one)."""
        get = getattr(self.target_params_updater, "state_dict", None)
        return dict(get()) if callable(get) else {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        load = getattr(self.target_params_updater, "load_state_dict", None)
        if callable(load):
            load(state_dict)
        else:
            super().load_state_dict(state_dict)
