"""GradientStep: one optimizer update from a loss's output, shared by Learner and the Trainer."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from tensordict import TensorDictBase
from torch import nn

__all__ = ["GradientStep"]


def check_optimizer(optimizer: Any) -> None:
    """Raise ``TypeError`` unless ``optimizer`` is a torch optimizer."""
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(
            f"optimizer must be a torch.optim.Optimizer, found {type(optimizer).__name__}"
        )


def loss_key_names(keys: Any, name: str) -> tuple[str, ...] | None:
    """``keys`` (a str or a sequence of str, or None) as a tuple; ``name`` is the argument's
    name in the error."""
    if keys is None:
        return None
    keys = (keys,) if isinstance(keys, str) else tuple(keys)
    if not keys or not all(isinstance(k, str) for k in keys):
        raise ValueError(f"{name} must be a non-empty sequence of str or None, got {keys!r}")
    return keys


def scalar_entries(losses: TensorDictBase) -> dict[str, torch.Tensor]:
    """The detached one-element entries of a loss output (``loss_*``, ``alpha``, ...), by
    name: what an update reports for logging."""
    return {k: v.detach() for k, v in losses.items()
            if isinstance(k, str) and isinstance(v, torch.Tensor) and v.numel() == 1}


class GradientStep:
    """Turns the output of a loss module into one optimizer update.

    Calling it with the loss's TensorDict: the sum of its ``loss*`` entries (or of
    ``loss_keys``) -> ``optimizer.zero_grad(set_to_none=True)`` -> backward -> gradient clipping
    (by total norm with ``max_grad_norm``, or by value with ``clip_value``) -> ``optimizer.step()``
    -> ``after_step()`` (e.g. a target-network update). The gradients are cleared *before*
    backward, so the grads another optimizer's backward left on shared parameters never leak
    into this step. Clipping, the step and ``after_step`` run under ``lock`` (when given), so
    a thread copying the weights under the same lock never sees half a step.

    It returns the detached scalar entries of the loss output (``loss_*``, ``alpha``, ...) plus
    ``grad_norm`` (the total norm before clipping) when clipping by norm.
    :class:`~streamrl.ops.Learner` and :class:`~streamrl.trainers.OptimizerHook` both update
    through it, so the graph and the Trainer train with the same arithmetic.

    Args:
        optimizer: the optimizer; its parameter groups are the parameters clipped.
        loss_keys: the entries summed (default: every entry whose name starts with ``loss``).
        max_grad_norm: clip the total gradient norm to this (``math.inf``: measure only).
        clip_value: clamp every partial derivative to ``[-clip_value, clip_value]``.
        lock: a context manager held around clipping, the step and ``after_step``.

    >>> from tensordict import TensorDict
    >>> net = nn.Linear(2, 1)
    >>> step = GradientStep(torch.optim.SGD(net.parameters(), lr=0.1), max_grad_norm=1.0)
    >>> out = TensorDict({"loss_mse": net(torch.ones(4, 2)).pow(2).mean()})
    >>> sorted(step(out))
    ['grad_norm', 'loss_mse']
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        *,
        loss_keys: Sequence[str] | None = None,
        max_grad_norm: float | None = None,
        clip_value: float | None = None,
        lock: Any = None,
    ):
        check_optimizer(optimizer)
        loss_keys = loss_key_names(loss_keys, "loss_keys")
        if max_grad_norm is not None and not max_grad_norm > 0:
            raise ValueError(f"max_grad_norm must be > 0 or None, got {max_grad_norm!r}")
        if clip_value is not None and not (clip_value > 0 and math.isfinite(clip_value)):
            raise ValueError(f"clip_value must be a finite number > 0 or None, got {clip_value!r}")
        if max_grad_norm is not None and clip_value is not None:
            raise ValueError("pass max_grad_norm or clip_value, not both")
        if lock is not None and not hasattr(lock, "__enter__"):
            raise TypeError(f"lock must be a context manager, found {type(lock).__name__}")
        self.optimizer = optimizer
        self.loss_keys = loss_keys
        self.max_grad_norm = max_grad_norm
        self.clip_value = clip_value
        self.lock = lock if lock is not None else contextlib.nullcontext()
        self.params = [p for g in optimizer.param_groups for p in g["params"]]

    def total_loss(self, losses: TensorDictBase) -> torch.Tensor:
        """The sum of the selected loss entries (raises naming the entries when none match)."""
        names = [k for k in losses.keys() if isinstance(k, str)]
        keys = self.loss_keys or [k for k in names if k.startswith("loss")]
        if not keys:
            raise ValueError(
                f"the loss returned no 'loss*' entries (found {sorted(map(str, losses.keys()))}); "
                "pass loss_keys="
            )
        missing = [k for k in keys if k not in names]
        if missing:
            raise KeyError(
                f"the loss output has no {missing}; it has {sorted(map(str, losses.keys()))}"
            )
        return sum(losses.get(k) for k in keys)

    def __call__(
        self, losses: TensorDictBase, after_step: Callable[[], Any] | None = None
    ) -> dict[str, torch.Tensor]:
        if not isinstance(losses, TensorDictBase):
            raise TypeError(f"expected the loss's TensorDict, found {type(losses).__name__}")
        total = self.total_loss(losses)
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        scalars = scalar_entries(losses)
        with self.lock:
            if self.max_grad_norm == math.inf:
                # measuring only: the norm without the clipping pass (a multiply by one)
                scalars["grad_norm"] = nn.utils.get_total_norm(
                    [p.grad for p in self.params if p.grad is not None], foreach=True
                ).detach()
            elif self.max_grad_norm is not None:
                scalars["grad_norm"] = nn.utils.clip_grad_norm_(
                    self.params, self.max_grad_norm, foreach=True
                ).detach()
            elif self.clip_value is not None:
                nn.utils.clip_grad_value_(self.params, self.clip_value, foreach=True)
            self.optimizer.step()
            if after_step is not None:
                after_step()
        return scalars

    def __repr__(self) -> str:
        return (f"GradientStep({type(self.optimizer).__name__}, loss_keys={self.loss_keys}, "
                f"max_grad_norm={self.max_grad_norm}, clip_value={self.clip_value})")
