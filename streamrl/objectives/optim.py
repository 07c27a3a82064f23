"""Optimizer helpers of TorchRL's ``torchrl.objectives``: :func:`group_optimizers` and the
KL-driven learning-rate schedule :class:`KLAdaptiveLR`."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

__all__ = ["KLAdaptiveLR", "group_optimizers"]


def group_optimizers(*optimizers: torch.optim.Optimizer) -> torch.optim.Optimizer:
    """One optimizer over the parameter groups of several optimizers of the same type.

    The result is a new optimizer of that type whose ``param_groups`` are the given
    optimizers' group dicts (the same objects: a learning rate set on either side is seen
    by both) and whose state starts from theirs (Adam's moments carry over).

    >>> a, b = torch.nn.Parameter(torch.ones(2)), torch.nn.Parameter(torch.ones(3))
    >>> actor_opt = torch.optim.Adam([a], lr=1e-3)
    >>> critic_opt = torch.optim.Adam([b], lr=1e-2)
    >>> opt = group_optimizers(actor_opt, critic_opt)
    >>> [group["lr"] for group in opt.param_groups]
    [0.001, 0.01]
    """
    if not optimizers:
        raise ValueError("group_optimizers needs at least one optimizer, found none")
    for opt in optimizers:
        if not isinstance(opt, torch.optim.Optimizer):
            raise TypeError(
                f"group_optimizers expected torch.optim.Optimizer instances, found "
                f"{type(opt).__name__}"
            )
    cls = type(optimizers[0])
    kinds = sorted({type(opt).__name__ for opt in optimizers})
    if len(kinds) > 1:
        raise ValueError(f"group_optimizers needs optimizers of one type, found {kinds}")
    groups = [group for opt in optimizers for group in opt.param_groups]
    seen: set[int] = set()
    for group in groups:
        for param in group["params"]:
            if id(param) in seen:
                raise ValueError(
                    "group_optimizers: a parameter belongs to more than one of the optimizers; "
                    "each parameter must be optimised once"
                )
            seen.add(id(param))
    grouped = cls(groups, **optimizers[0].defaults)
    for opt in optimizers:
        grouped.state.update(opt.state)
    return grouped


class KLAdaptiveLR:
    """Scale an optimizer's learning rate to keep the policy KL per update near ``target_kl``.

    :meth:`step` takes the KL measured after an update (e.g. PPO's ``kl_approx``): above
    ``2 * target_kl`` every group's learning rate is divided by ``factor``, between 0 and
    ``target_kl / 2`` it is multiplied by ``factor``, and it is then clamped to
    ``[min_lr, max_lr]``. A KL in the band, zero or negative leaves it unchanged.

    Args:
        optimizer: the optimizer whose groups are rescaled in place.
        target_kl: the desired KL per update (> 0).

    Keyword Args:
        factor: the multiplicative change (> 1, default 1.5).
        min_lr, max_lr: the learning-rate bounds (``0 < min_lr <= max_lr``, default
            ``1e-5`` and ``1e-2``).

    >>> params = [torch.nn.Parameter(torch.zeros(1))]
    >>> optimizer = torch.optim.Adam(params, lr=1e-3)
    >>> scheduler = KLAdaptiveLR(optimizer, target_kl=0.01, factor=2.0)
    >>> scheduler.step(kl=0.05)
    >>> optimizer.param_groups[0]["lr"]
    0.0005
    >>> scheduler.step(kl=0.001)
    >>> scheduler.get_last_lr()
    [0.001]
    """

    def __init__(self, optimizer: torch.optim.Optimizer, target_kl: float, *,
                 factor: float = 1.5, min_lr: float = 1e-5, max_lr: float = 1e-2) -> None:
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(
                f"KLAdaptiveLR expected a torch.optim.Optimizer, found {type(optimizer).__name__}"
            )
        if not (math.isfinite(target_kl) and target_kl > 0):
            raise ValueError(f"target_kl must be finite and > 0, found {target_kl}")
        if not (math.isfinite(factor) and factor > 1):
            raise ValueError(f"factor must be finite and > 1, found {factor}")
        if not (0 < min_lr <= max_lr < math.inf):
            raise ValueError(
                f"expected 0 < min_lr <= max_lr < inf, found min_lr={min_lr}, max_lr={max_lr}"
            )
        self.optimizer = optimizer
        self.target_kl = float(target_kl)
        self.factor = float(factor)
        self.min_lr = float(min_lr)
        self.max_lr = float(max_lr)
        self.last_kl: float | None = None

    def step(self, kl: float | Tensor) -> None:
        """Rescale the learning rates from the KL of the last update."""
        value = float(kl.detach().mean()) if isinstance(kl, Tensor) else float(kl)
        if not math.isfinite(value):
            raise ValueError(f"KLAdaptiveLR.step: the KL must be finite, found {value}")
        self.last_kl = value
        if value > 2 * self.target_kl:
            scale = 1 / self.factor
        elif 0 < value < self.target_kl / 2:
            scale = self.factor
        else:
            return
        for group in self.optimizer.param_groups:
            group["lr"] = min(max(group["lr"] * scale, self.min_lr), self.max_lr)

    def get_last_lr(self) -> list[float]:
        """The current learning rate of every parameter group."""
        return [group["lr"] for group in self.optimizer.param_groups]

    def state_dict(self) -> dict[str, Any]:
        """The schedule's settings and last KL (the learning rates live in the optimizer)."""
        return {"target_kl": self.target_kl, "factor": self.factor, "min_lr": self.min_lr,
                "max_lr": self.max_lr, "last_kl": self.last_kl}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        missing = {"target_kl", "factor", "min_lr", "max_lr", "last_kl"} - set(state_dict)
        if missing:
            raise KeyError(f"KLAdaptiveLR.load_state_dict: missing {sorted(missing)}")
        self.target_kl = float(state_dict["target_kl"])
        self.factor = float(state_dict["factor"])
        self.min_lr = float(state_dict["min_lr"])
        self.max_lr = float(state_dict["max_lr"])
        self.last_kl = state_dict["last_kl"]

    def __repr__(self) -> str:
        return (f"KLAdaptiveLR(target_kl={self.target_kl}, factor={self.factor}, "
                f"min_lr={self.min_lr}, max_lr={self.max_lr})")
