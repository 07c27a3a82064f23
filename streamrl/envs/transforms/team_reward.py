"""TeamReward: one reward per env from an agent group's per-agent rewards (their mean), for
code that reads one reward per env: a team-reward mixer's loss (QMIX, VDN), an evaluator,
a single-agent learner of a cooperative team."""

from __future__ import annotations

from typing import Any

import torch

from streamrl.data.specs import Unbounded
from streamrl.envs.transforms.transform import Transform

__all__ = ["TeamReward"]


class TeamReward(Transform):
    """Writes ``out_key`` (default ``"reward"``, ``[*B, 1]``): the mean over the agents of
    ``(group, "reward")`` (``[*B, n_agents, 1]``), which stays. The mean keeps the team
    reward on one agent's scale (TorchRL's QMIX/VDN example and BenchMARL average too).

    >>> from tensordict import TensorDict
    >>> td = TensorDict({"agent": TensorDict({"reward": torch.tensor([[1.0], [2.0], [6.0]])},
    ...                                      [3])})
    >>> TeamReward("agent")(td)["reward"]
    tensor([3.])
    """

    _per_step = True

    def __init__(self, group: str, out_key: Any = "reward") -> None:
        if not isinstance(group, str) or not group:
            raise TypeError(f"TeamReward: group must be an agent group's name, found {group!r}")
        super().__init__(in_keys=[(group, "reward")], out_keys=[out_key])
        self.group = group

    def _apply_transform(self, value: torch.Tensor) -> torch.Tensor:
        if value.dim() < 2:
            raise ValueError(f"TeamReward: expected ({self.group!r}, 'reward') of shape "
                             f"[*batch, n_agents, 1], found {tuple(value.shape)}")
        return value.mean(-2)

    def _transform_spec(self, spec: Any) -> Any:
        return Unbounded(shape=(*spec.shape[:-2], 1), device=spec.device, dtype=spec.dtype)

    def __repr__(self) -> str:
        return f"TeamReward(group={self.group!r}, out_key={self.out_keys[0]!r})"
