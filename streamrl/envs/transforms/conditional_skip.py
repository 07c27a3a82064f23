"""ConditionalSkip: leave the env where it is on the steps where a condition holds.

>>> import torch
>>> from streamrl.envs.libs.gym import GymEnv
>>> from streamrl.envs.transforms import Compose, ConditionalSkip, StepCounter, TransformedEnv
>>> inner = TransformedEnv(GymEnv("Pendulum-v1"), StepCounter(step_count_key="inner_count"))
>>> middle = TransformedEnv(inner, ConditionalSkip(cond=lambda td: td["step_count"] % 2 == 1))
>>> env = TransformedEnv(middle, StepCounter())
>>> r = env.rollout(6)
>>> r["inner_count"].flatten().tolist()  # every other step is skipped
[0, 1, 1, 2, 2, 3]
>>> r["step_count"].flatten().tolist()
[0, 1, 2, 3, 4, 5]
>>> env.close()
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from tensordict import TensorDictBase

from streamrl.envs.transforms.transform import Transform

__all__ = ["ConditionalSkip"]


class ConditionalSkip(Transform):
    """Skip the env's step for the rows of the step input where ``cond(tensordict)`` is
    True.

    A skipped row keeps its state: its step output holds the step input's observations and
    done flags, and a zero reward. Every transform of the :class:`TransformedEnv` that holds
    this one is skipped with the env (its entries are carried as they are); wrap that env
    in another ``TransformedEnv`` for transforms that must see every step.

    When some rows move and others do not: a stateless env (not batch-locked) steps only
    the rows that move; a stateful one steps its whole batch with a ``"_step"`` entry (True
    for the rows that move) in its input, which it is trusted to honour, and the skipped
    rows' outputs are the kept state. When no row moves, the env is not called.

    Args:
        cond: ``tensordict -> bool or bool tensor`` (one value, or one per row: shaped like
            the batch, with or without a trailing 1); True skips the step.
    """

    def __init__(self, cond: Callable[[TensorDictBase], Any]) -> None:
        if not callable(cond):
            raise TypeError(f"cond must be callable, found {type(cond).__name__}")
        super().__init__()
        self.cond = cond

    def _step_skip(self, td: TensorDictBase) -> torch.Tensor:
        out = self.cond(td)
        batch = td.batch_size
        if isinstance(out, bool):
            return torch.full(batch, out, dtype=torch.bool, device=td.device)
        if not isinstance(out, torch.Tensor) or out.dtype != torch.bool:
            found = out.dtype if isinstance(out, torch.Tensor) else type(out).__name__
            raise TypeError(f"ConditionalSkip: cond must return a bool or a bool tensor, "
                            f"found {found}")
        if out.numel() == 1:
            return out.reshape(()).expand(batch)
        if out.shape not in (batch, (*batch, 1)):
            raise ValueError(
                f"ConditionalSkip: cond must return one value or one per row (shape "
                f"{list(batch)} or {[*batch, 1]}), found shape {list(out.shape)}"
            )
        return out.reshape(batch)

    def _call(self, td: TensorDictBase) -> TensorDictBase:
        return td  # it decides whether a step runs; it changes no data

    def __repr__(self) -> str:
        return f"ConditionalSkip(cond={getattr(self.cond, '__name__', self.cond)!r})"
