"""Shared pieces of the exploration modules: when to explore, annealing, spec lookup."""

from __future__ import annotations

from typing import Any

import torch
from tensordict.utils import unravel_key

from streamrl.data.specs import Composite, TensorSpec
from streamrl.envs.utils import ExplorationType, exploration_type


def exploring() -> bool:
    """Exploration noise applies under RANDOM, and when no exploration type is set."""
    current = exploration_type()
    return current is None or current is ExplorationType.RANDOM


def leaf_spec(spec: Any, action_key: Any, owner: str, required: bool = True) -> TensorSpec | None:
    if spec is None:
        if required:
            raise ValueError(f"{owner} needs the action spec")
        return None
    if isinstance(spec, Composite):
        key = unravel_key(action_key)
        if key not in spec.keys(include_nested=True, leaves_only=True):
            raise KeyError(f"{owner}: the Composite spec has no entry for {action_key!r}")
        spec = spec[key]
    if not isinstance(spec, TensorSpec):
        raise TypeError(f"{owner}: spec must be a TensorSpec or Composite, got {type(spec).__name__}")
    return spec


def composite_spec(spec: Any, leaf: TensorSpec | None, action_key: Any) -> Composite | None:
    """The spec an exploration module exposes as ``.spec`` (TorchRL's): the ``Composite`` it
    was given, or the leaf spec under ``action_key``."""
    if leaf is None or isinstance(spec, Composite):
        return spec
    return Composite({unravel_key(action_key): leaf}, shape=())


def check_annealing(init: float, end: float, steps: int, owner: str) -> None:
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"{owner}: annealing_num_steps must be a positive int, got {steps!r}")
    if init < 0 or end < 0:
        raise ValueError(f"{owner}: init/end values must be >= 0, got {init} and {end}")


class Annealed(torch.nn.Module):
    """A scalar decayed linearly from ``init`` to ``end`` over ``steps`` calls to ``step``."""

    def __init__(self, init: float, end: float, steps: int) -> None:
        super().__init__()
        self.init, self.end, self.steps = float(init), float(end), steps
        self.register_buffer("value", torch.tensor(float(init)))

    def step(self, frames: int = 1) -> None:
        if frames < 0:
            raise ValueError(f"step(frames) needs frames >= 0, got {frames}")
        delta = (self.end - self.init) * frames / self.steps
        new = self.value.item() + delta
        new = max(new, self.end) if self.end <= self.init else min(new, self.end)
        self.value.fill_(new)
