"""GoalReachingReward: the intrinsic reward of a goal-reaching low-level policy (HIRO)."""

from __future__ import annotations

from typing import Any

import torch
from tensordict import TensorDictBase

from streamrl.data.specs import Unbounded
from streamrl.envs.transforms.transform import Transform

__all__ = ["GoalReachingReward"]


class GoalReachingReward(Transform):
    """Write ``-||target - s'||`` (the L2 distance from the state reached to the target the
    high level set) under ``out_key`` at every step: the reward of a goal-reaching worker.
    ``target_key`` is read from the step's input (what the policy held when it acted:
    ``("hrl", "anchor")``, the absolute target ``s + g`` of a
    :class:`~streamrl.modules.HeldDecision` with relative goals, so that the reward is HIRO's
    ``-||s + g - s'||``; ``("hrl", "decision")`` for absolute goals), ``goal_key`` from the
    step's output (the observation entry goals live in). The env's own reward is left as it
    is (the high level is trained on it); the low level's learner reads ``out_key``
    (``loss.set_keys(reward=("hrl", "reward"))``). A reset writes 0.

    >>> from tensordict import TensorDict
    >>> from streamrl.envs import PointNavigationEnv, TransformedEnv
    >>> env = TransformedEnv(PointNavigationEnv(), GoalReachingReward())
    >>> td = env.reset().set(("hrl", "anchor"), torch.tensor([0.3, 0.4]))
    >>> out = env.step(td.set("action", torch.tensor([0.0, 0.0])))["next"]
    >>> round(out["hrl", "reward"].item(), 4)  # 0.5 away from the target
    -0.5
    """

    def __init__(self, target_key: Any = ("hrl", "anchor"), goal_key: Any = "observation",
                 out_key: Any = ("hrl", "reward")) -> None:
        super().__init__()
        self.target_key, self.goal_key, self.out_key = target_key, goal_key, out_key

    def _call(self, td: TensorDictBase) -> TensorDictBase:
        raise NotImplementedError("GoalReachingReward reads env steps: use it inside a "
                                  "TransformedEnv")

    def _reset(self, td: TensorDictBase | None, td_reset: TensorDictBase) -> TensorDictBase:
        td_reset.set(self.out_key, torch.zeros((*td_reset.batch_size, 1)))
        return td_reset

    def _step(self, td: TensorDictBase, next_td: TensorDictBase) -> TensorDictBase:
        target = td.get(self.target_key, None)
        if target is None:
            raise KeyError(f"GoalReachingReward needs the target {self.target_key!r} in the "
                           f"step's input (written by the policy, e.g. a HeldDecision), found "
                           f"{sorted(map(str, td.keys(True, True)))}")
        reached = self._get(next_td, self.goal_key)
        if target.shape != reached.shape:
            raise ValueError(f"GoalReachingReward: the target {self.target_key!r} has shape "
                             f"{list(target.shape)}, the goal entry {self.goal_key!r} "
                             f"{list(reached.shape)}; expected the same")
        distance = (target.to(reached.dtype) - reached).norm(dim=-1, keepdim=True)
        next_td.set(self.out_key, (-distance).to(torch.float32))
        return next_td

    def transform_observation_spec(self, spec: Any) -> Any:
        """Add ``out_key`` (float32 ``[1]``)."""
        spec[self.out_key] = Unbounded((*spec.shape, 1), dtype=torch.float32,
                                       device=getattr(spec, "device", None))
        return spec

    def __repr__(self) -> str:
        return (f"GoalReachingReward(target_key={self.target_key!r}, "
                f"goal_key={self.goal_key!r}, out_key={self.out_key!r})")
