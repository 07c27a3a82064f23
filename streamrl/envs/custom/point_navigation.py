"""PointNavigationEnv: the 2D navigation task of the MAML paper, in pure torch."""

from __future__ import annotations

from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase

from streamrl.data.specs import Bounded, Composite, Unbounded
from streamrl.envs.common import EnvBase

__all__ = ["PointNavigationEnv"]


class PointNavigationEnv(EnvBase):
    """A point in the plane moved by ``action`` (a displacement, clipped to
    ``[-max_action, max_action]`` per coordinate) towards a goal it does not observe (Finn
    et al. 2017, section 5.2): it starts at the origin, the reward is the negative squared
    distance to the goal after the step, and an episode ends ``terminated`` within
    ``tolerance`` of the goal (``None``: never, every episode lasts ``max_steps``) or
    ``truncated`` after ``max_steps`` steps. The action spec is unbounded: any displacement
    is a valid action and the env clips it (as the paper's env does), so a Gaussian policy's
    sampled actions are stored as sampled and their log-probabilities stay exact (a spec
    with bounds would have the collectors clamp the stored actions). The goal is the
    task: :attr:`goal` (``[2]``, or ``[*batch_size, 2]`` for one goal per row), set directly
    or by :class:`~streamrl.envs.tasks.SampleTask` with a
    :class:`~streamrl.envs.tasks.NavigationFamily`. ``step`` counts the episode's steps.

    >>> env = PointNavigationEnv(batch_size=[2], goal=[0.3, -0.2])
    >>> rollout = env.rollout(3, lambda td: td.set("action", torch.full((2, 2), 0.1)))
    >>> rollout["next", "observation"][0, -1].tolist()
    [0.30000001192092896, 0.30000001192092896]
    """

    def __init__(self, *, goal: Any = (0.0, 0.0), max_steps: int = 100,
                 max_action: float = 0.1, tolerance: float | None = 0.01, batch_size: Any = (),
                 device: Any = None) -> None:
        if isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1:
            raise ValueError(f"max_steps must be an int >= 1, found {max_steps!r}")
        if not max_action > 0 or not (tolerance is None or tolerance >= 0):
            raise ValueError(f"max_action must be > 0 and tolerance >= 0 or None, found {max_action!r} "
                             f"and {tolerance!r}")
        super().__init__(device=device, batch_size=torch.Size(batch_size))
        self.max_steps, self.max_action, self.tolerance = max_steps, float(max_action), tolerance
        self.goal = goal
        shape = self.batch_size
        self.observation_spec = Composite(
            observation=Unbounded((*shape, 2), dtype=torch.float32, device=self.device),
            step=Bounded(0, max_steps, (*shape, 1), dtype=torch.int64, device=self.device),
            shape=shape)
        self.action_spec = Unbounded((*shape, 2), dtype=torch.float32, device=self.device)
        self.reward_spec = Unbounded((*shape, 1), dtype=torch.float32, device=self.device)

    @property
    def goal(self) -> torch.Tensor:
        """The goal, ``[2]`` or one per row ``[*batch_size, 2]``."""
        return self._goal

    @goal.setter
    def goal(self, value: Any) -> None:
        goal = torch.as_tensor(value, dtype=torch.float32)
        if goal.shape not in ((2,), (*self.batch_size, 2)):
            raise ValueError(f"goal must have shape [2] or {[*self.batch_size, 2]}, found "
                             f"{list(goal.shape)}")
        self._goal = goal.clone()

    def _set_seed(self, seed: int | None) -> None:
        """Nothing is random: every episode starts at the origin."""

    def _reset(self, tensordict: TensorDictBase | None, **kwargs: Any) -> TensorDictBase:
        shape = self.batch_size
        position = torch.zeros((*shape, 2))
        step = torch.zeros((*shape, 1), dtype=torch.int64)
        if tensordict is not None and "_reset" in tensordict.keys():
            keep = ~tensordict["_reset"].reshape(shape)  # a partial reset keeps the others
            position[keep] = tensordict["observation"][keep]
            step[keep] = tensordict["step"][keep]
        return TensorDict({"observation": position, "step": step}, batch_size=shape,
                          device=self.device)

    def _step(self, tensordict: TensorDictBase) -> TensorDictBase:
        move = tensordict["action"].clamp(-self.max_action, self.max_action)
        position = tensordict["observation"] + move
        distance2 = ((position - self.goal) ** 2).sum(-1, keepdim=True)
        step = tensordict["step"] + 1
        terminated = (distance2 <= self.tolerance ** 2 if self.tolerance is not None
                      else torch.zeros_like(distance2, dtype=torch.bool))
        truncated = (step >= self.max_steps) & ~terminated
        return TensorDict({"observation": position, "step": step, "reward": -distance2,
                           "terminated": terminated, "truncated": truncated,
                           "done": terminated | truncated},
                          batch_size=self.batch_size, device=self.device)
