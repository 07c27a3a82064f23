"""Optimization steppers: what the Trainer runs for each sub-batch instead of loss + optimizer
hooks (TorchRL 0.14's ``optimization_stepper``)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase
from torch import nn

from streamrl.ops.gradient_step import (
    GradientStep,
    check_optimizer,
    loss_key_names,
    scalar_entries,
)
from streamrl.trainers._checks import check_name, check_trainer
from streamrl.trainers.optim_hooks import OptimizerHook

__all__ = [
    "DefaultOptimizationStepper",
    "MixedPrecisionOptimizationStepper",
    "OptimizationStepper",
]


class OptimizationStepper:
    """One optimization step of a :class:`~streamrl.trainers.Trainer` on one sub-batch.

    Given as ``Trainer(optimization_stepper=...)``, its :meth:`step` replaces the loss call
    and the ``"optimizer"`` hooks (for several optimizers, delayed actor updates, several
    backward passes ...); the trainer still runs the ``post_optim`` hooks and logging around
    it. :meth:`step` returns detached scalars to log. Its :meth:`state_dict` is saved with the
    trainer's (the stepper is registered as the module ``"optimization_stepper"``).

    >>> class SGDStep(OptimizationStepper):
    ...     def __init__(self, optimizer):
    ...         self.optimizer = optimizer
    ...     def step(self, trainer, sub_batch):
    ...         losses = trainer.compute_loss(sub_batch)
    ...         self.optimizer.zero_grad()
    ...         losses["loss"].backward()
    ...         self.optimizer.step()
    ...         return losses.detach()
    """

    def step(self, trainer: Any, sub_batch: TensorDictBase) -> TensorDictBase:
        """Optimize on ``sub_batch``; return a TensorDict of detached scalars to log."""
        raise NotImplementedError(f"{type(self).__name__} must implement step(trainer, sub_batch)")

    def state_dict(self) -> dict[str, Any]:
        """The stepper's state (none by default)."""
        return {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output."""
        if state_dict:
            raise ValueError(f"{type(self).__name__} has no state, found keys {list(state_dict)}")

    def register(self, trainer: Any, name: str = "optimization_stepper") -> None:
        """Save the stepper's state with the trainer's, as module ``name``."""
        check_trainer(trainer, self)
        trainer.register_module(check_name(name), self)


class DefaultOptimizationStepper(OptimizationStepper):
    """The plain step with the trainer's optimizer: the loss on the sub-batch, the sum of
    ``loss_components`` (default: every ``loss*`` entry), backward, the trainer's clipping
    (``clip_grad_norm`` / ``clip_norm``, as :class:`OptimizerHook`) and ``optimizer.step()``.

    It returns the loss's scalars and ``grad_norm``.

    >>> from tensordict import TensorDict
    >>> from streamrl.trainers import Trainer
    >>> net = torch.nn.Linear(2, 1)
    >>> loss = lambda td: TensorDict({"loss": net(td["x"]).pow(2).mean()})
    >>> trainer = Trainer(collector=[TensorDict({"x": torch.ones(4, 2)}, [4])], total_frames=4,
    ...                   frame_skip=1, optim_steps_per_batch=1, loss_module=loss,
    ...                   optimizer=torch.optim.SGD(net.parameters(), lr=0.1),
    ...                   optimization_stepper=DefaultOptimizationStepper(), progress_bar=False)
    >>> sorted(trainer.optimization_stepper.step(trainer, TensorDict({"x": torch.ones(4, 2)})).keys())
    ['grad_norm', 'loss']
    """

    def __init__(self, loss_components: Sequence[str] | None = None) -> None:
        if loss_components is not None and not isinstance(loss_components, str) \
                and len(loss_components) == 0:
            raise ValueError("loss_components must not be empty; None means every 'loss*' entry")
        self.loss_components = loss_key_names(loss_components, "loss_components")
        self._hook: OptimizerHook | None = None

    def step(self, trainer: Any, sub_batch: TensorDictBase) -> TensorDictBase:
        optimizer = getattr(trainer, "optimizer", None)
        if optimizer is None:
            raise RuntimeError(
                "DefaultOptimizationStepper uses the trainer's optimizer: pass "
                "Trainer(optimizer=...) or a stepper that owns its optimizers"
            )
        if self._hook is None or self._hook.optimizer is not optimizer:
            self._hook = OptimizerHook(optimizer, self.loss_components)
        losses = trainer.compute_loss(sub_batch)
        stepped = self._hook(losses, trainer.clip_grad_norm, trainer.clip_norm, 0)
        out = TensorDict(scalar_entries(stepped))
        if "grad_norm_0" in out.keys():
            out.rename_key_("grad_norm_0", "grad_norm")
        return out


class MixedPrecisionOptimizationStepper(OptimizationStepper):
    """A step under ``torch.autocast``, with gradient accumulation.

    Each call runs the loss under autocast (when ``mixed_precision``) and backpropagates the
    sum of the ``loss*`` entries divided by ``gradient_accumulation_steps``; every
    ``gradient_accumulation_steps``-th call clips the total norm to ``clip_norm`` (``None``:
    no clipping), steps ``optimizer`` and clears the gradients. A ``torch.amp.GradScaler``
    scales the loss only with ``mixed_precision=True`` and ``autocast_dtype=torch.float16``
    (bfloat16 needs none). ``device_type`` defaults to the device of the optimizer's first
    parameter. Returns the loss's scalars, with ``grad_norm`` on the calls that stepped.
    Its state (the micro-step count, the scaler's and the optimizer's states) is saved with
    the trainer's.

    >>> from tensordict import TensorDict
    >>> net = torch.nn.Linear(2, 1)
    >>> stepper = MixedPrecisionOptimizationStepper(torch.optim.SGD(net.parameters(), lr=0.1),
    ...                                             gradient_accumulation_steps=2)
    >>> class Host:  # what step() uses of a Trainer
    ...     def compute_loss(self, td):
    ...         return TensorDict({"loss": net(td["x"]).pow(2).mean()})
    >>> td = TensorDict({"x": torch.ones(4, 2)}, [4])
    >>> "grad_norm" in stepper.step(Host(), td).keys(), "grad_norm" in stepper.step(Host(), td).keys()
    (False, True)
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        *,
        mixed_precision: bool = False,
        autocast_dtype: torch.dtype = torch.bfloat16,
        gradient_accumulation_steps: int = 1,
        clip_norm: float | None = 1.0,
        device_type: str | None = None,
    ) -> None:
        check_optimizer(optimizer)
        if not isinstance(mixed_precision, bool):
            raise TypeError(f"mixed_precision must be a bool, found {type(mixed_precision).__name__}")
        if not isinstance(autocast_dtype, torch.dtype) or not autocast_dtype.is_floating_point:
            raise TypeError(f"autocast_dtype must be a float torch.dtype, found {autocast_dtype!r}")
        if (isinstance(gradient_accumulation_steps, bool)
                or not isinstance(gradient_accumulation_steps, int)
                or gradient_accumulation_steps < 1):
            raise ValueError(f"gradient_accumulation_steps must be an int >= 1, found "
                             f"{gradient_accumulation_steps!r}")
        if clip_norm is not None and not (clip_norm > 0 and math.isfinite(clip_norm)):
            raise ValueError(f"clip_norm must be a finite number > 0 or None, found {clip_norm!r}")
        self.optimizer = optimizer
        self.params = [p for g in optimizer.param_groups for p in g["params"]]
        if device_type is None:
            device_type = self.params[0].device.type if self.params else "cpu"
        self.device_type = device_type
        self.mixed_precision = mixed_precision
        self.autocast_dtype = autocast_dtype
        self.gradient_accumulation_steps = gradient_accumulation_steps
        self.clip_norm = clip_norm
        self.scaler = (torch.amp.GradScaler(device_type)
                       if mixed_precision and autocast_dtype == torch.float16 else None)
        self.micro_steps = 0
        # the loss selection and its error messages are GradientStep's
        self._select = GradientStep(optimizer)

    def step(self, trainer: Any, sub_batch: TensorDictBase) -> TensorDictBase:
        with torch.autocast(self.device_type, dtype=self.autocast_dtype,
                            enabled=self.mixed_precision):
            losses = trainer.compute_loss(sub_batch)
        total = self._select.total_loss(losses) / self.gradient_accumulation_steps
        if self.scaler is not None:
            self.scaler.scale(total).backward()
        else:
            total.backward()
        out = TensorDict(scalar_entries(losses))
        self.micro_steps += 1
        if self.micro_steps % self.gradient_accumulation_steps == 0:
            if self.scaler is not None:
                self.scaler.unscale_(self.optimizer)
            grads = [p for p in self.params if p.grad is not None]
            if self.clip_norm is not None:
                norm = nn.utils.clip_grad_norm_(grads, self.clip_norm, foreach=True)
            else:
                norm = nn.utils.get_total_norm([p.grad for p in grads], foreach=True)
            out.set("grad_norm", norm.detach())
            if self.scaler is not None:
                self.scaler.step(self.optimizer)
                self.scaler.update()
            else:
                self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
        return out

    def state_dict(self) -> dict[str, Any]:
        """The micro-step count, the optimizer's state and the scaler's (when it has one)."""
        state: dict[str, Any] = {"micro_steps": self.micro_steps,
                                 "optimizer": self.optimizer.state_dict()}
        if self.scaler is not None:
            state["scaler"] = self.scaler.state_dict()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        expected = {"micro_steps", "optimizer"} | ({"scaler"} if self.scaler is not None else set())
        if set(state_dict) != expected:
            raise ValueError(f"MixedPrecisionOptimizationStepper state needs keys "
                             f"{sorted(expected)}, found {sorted(state_dict)}")
        self.micro_steps = int(state_dict["micro_steps"])
        self.optimizer.load_state_dict(state_dict["optimizer"])
        if self.scaler is not None:
            self.scaler.load_state_dict(state_dict["scaler"])
