"""BitFlippingEnv: the n-bit goal env of the HER paper, in pure torch."""

from __future__ import annotations

from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase

from streamrl.data.specs import Binary, Bounded, Categorical, Composite, Unbounded
from streamrl.envs.common import EnvBase

__all__ = ["BitFlippingEnv"]


class BitFlippingEnv(EnvBase):
    """``n`` bits to turn into a goal pattern, one flip per step (Andrychowicz et al. 2017):
    the sparse-reward task on which plain off-policy RL fails for large ``n`` and hindsight
    relabelling (:class:`~streamrl.data.HERReplayBuffer`) succeeds.

    A reset draws the state and the goal (different) from the env's generator; the action
    is the index of the bit to flip (``Categorical(n)``); the reward is 0 when the state
    equals the goal after the step, else -1 (:meth:`compute_reward`); an episode ends
    ``terminated`` at the goal and ``truncated`` after ``max_steps`` steps (default ``n``).
    The observation follows gymnasium-robotics' goal envs: ``observation`` and
    ``achieved_goal`` are the bits, ``desired_goal`` the goal (float32 in {0, 1}); ``step``
    counts the episode's steps. ``batch_size`` plays that many boards in one env.

    >>> env = BitFlippingEnv(4, seed=0)
    >>> td = env.reset()
    >>> sorted(k for k in td.keys() if k.endswith("goal"))
    ['achieved_goal', 'desired_goal']
    >>> float(env.compute_reward(td["desired_goal"], td["desired_goal"]))
    0.0
    """

    def __init__(self, n: int = 8, *, max_steps: int | None = None,
                 batch_size: Any = (), seed: int | None = None, device: Any = None) -> None:
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be an int >= 1, found {n!r}")
        max_steps = n if max_steps is None else max_steps
        if isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1:
            raise ValueError(f"max_steps must be an int >= 1, found {max_steps!r}")
        super().__init__(device=device, batch_size=torch.Size(batch_size))
        self.n, self.max_steps = n, max_steps
        shape = self.batch_size
        bits = Binary(n, (*shape, n), dtype=torch.float32, device=self.device)
        self.observation_spec = Composite(
            observation=bits, achieved_goal=bits.clone(), desired_goal=bits.clone(),
            step=Bounded(0, max_steps, (*shape, 1), dtype=torch.int64, device=self.device),
            shape=shape)
        self.action_spec = Categorical(n, shape, device=self.device)
        self.reward_spec = Unbounded((*shape, 1), dtype=torch.float32, device=self.device)
        self.rng = torch.Generator()
        self.set_seed(seed if seed is not None
                      else int(torch.empty((), dtype=torch.int64).random_().item()))

    @staticmethod
    def compute_reward(achieved_goal: Any, desired_goal: Any, info: Any = None) -> torch.Tensor:
        """0 where the achieved goal equals the desired one, -1 elsewhere (one value per
        goal pair: any leading shape; numpy arrays or tensors), gymnasium-robotics'
        signature."""
        achieved, desired = torch.as_tensor(achieved_goal), torch.as_tensor(desired_goal)
        if achieved.shape != desired.shape:
            raise ValueError(f"compute_reward: achieved_goal has shape {list(achieved.shape)}, "
                             f"desired_goal {list(desired.shape)}; expected the same")
        return (achieved == desired).all(-1).to(torch.float32) - 1.0

    def _set_seed(self, seed: int | None) -> None:
        if seed is None:
            self.rng.seed()
        else:
            self.rng.manual_seed(seed)

    def _bits(self, shape: torch.Size) -> torch.Tensor:
        return torch.randint(0, 2, (*shape, self.n), generator=self.rng).to(torch.float32)

    def _reset(self, tensordict: TensorDictBase | None, **kwargs: Any) -> TensorDictBase:
        shape = self.batch_size
        state, goal = self._bits(shape), self._bits(shape)
        same = (state == goal).all(-1)
        while bool(same.any()):  # a board must start away from its goal
            goal[same] = self._bits(goal[same].shape[:-1])
            same = (state == goal).all(-1)
        step = torch.zeros((*shape, 1), dtype=torch.int64)
        if tensordict is not None and "_reset" in tensordict.keys():
            # a partial reset keeps the boards that go on
            keep = ~tensordict["_reset"].reshape(shape)
            state[keep] = tensordict["observation"][keep]
            goal[keep] = tensordict["desired_goal"][keep]
            step[keep] = tensordict["step"][keep]
        return TensorDict({"observation": state, "achieved_goal": state.clone(),
                           "desired_goal": goal, "step": step},
                          batch_size=shape, device=self.device)

    def _step(self, tensordict: TensorDictBase) -> TensorDictBase:
        shape = self.batch_size
        action = tensordict["action"].to(torch.int64).reshape(*shape, 1)
        state = tensordict["observation"].clone()
        flipped = 1.0 - state.gather(-1, action)
        state.scatter_(-1, action, flipped)
        goal = tensordict["desired_goal"]
        step = tensordict["step"] + 1
        reward = self.compute_reward(state, goal).unsqueeze(-1)
        terminated = reward == 0
        truncated = (step >= self.max_steps) & ~terminated
        return TensorDict({"observation": state, "achieved_goal": state.clone(),
                           "desired_goal": goal.clone(), "step": step, "reward": reward,
                           "terminated": terminated, "truncated": truncated,
                           "done": terminated | truncated},
                          batch_size=shape, device=self.device)
