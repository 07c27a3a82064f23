"""PreviousStepInputs: the last action, reward and done flag as observations (the inputs of an
RL^2 policy, which infers its task from what happened)."""

from __future__ import annotations

from typing import Any

import torch
from tensordict import TensorDictBase

from streamrl.data.specs import Unbounded
from streamrl.envs.transforms.transform import Transform, expand_mask, reset_mask

__all__ = ["PreviousStepInputs"]


class PreviousStepInputs(Transform):
    """Write ``prev_action``, ``prev_reward`` and ``prev_done`` (float32, the action's shape,
    ``[1]`` and ``[1]``) into every step's observations: what the agent did and got on the
    step that led here (Duan et al. 2016's RL^2 inputs; Wang et al. 2016). A reset writes
    zeros (no step led there); in a batched env only the rows reset are zeroed. Discrete
    actions are written as they are stored (one-hot vectors stay one-hot; an index becomes
    a float).

    >>> from streamrl.envs import GymEnv, TransformedEnv
    >>> env = TransformedEnv(GymEnv("Pendulum-v1"), PreviousStepInputs())
    >>> td = env.reset()
    >>> td["prev_action"].tolist(), td["prev_reward"].tolist()
    ([0.0], [0.0])
    >>> out = env.step(td.set("action", torch.tensor([1.5])))["next"]
    >>> out["prev_action"].tolist(), bool(out["prev_reward"] == out["reward"])
    ([1.5], True)
    """

    def __init__(self, action_key: Any = "action", reward_key: Any = "reward",
                 done_key: Any = "done", out_keys: Any = ("prev_action", "prev_reward",
                                                          "prev_done")) -> None:
        out_keys = list(out_keys)
        if len(out_keys) != 3:
            raise ValueError(f"out_keys must name 3 entries (action, reward, done), found "
                             f"{out_keys!r}")
        # no in_keys/out_keys: the base class would map the reward's spec onto its own
        super().__init__()
        self.action_key, self.reward_key, self.done_key = action_key, reward_key, done_key
        self.prev_keys = out_keys

    def _call(self, td: TensorDictBase) -> TensorDictBase:
        raise NotImplementedError("PreviousStepInputs reads env steps: use it inside a "
                                  "TransformedEnv")

    def _action_shape(self) -> tuple[int, ...]:
        """One action's shape (the env's action spec without its batch dims)."""
        parent = self.parent
        if parent is None:
            return (1,)
        return tuple(parent.action_spec.shape[len(parent.batch_size):])

    def _zeros(self, td_reset: TensorDictBase) -> dict[Any, torch.Tensor]:
        action_shape = self._action_shape()
        batch = td_reset.batch_size
        return {self.prev_keys[0]: torch.zeros((*batch, *action_shape)),
                self.prev_keys[1]: torch.zeros((*batch, 1)),
                self.prev_keys[2]: torch.zeros((*batch, 1))}

    def _reset(self, td: TensorDictBase | None, td_reset: TensorDictBase) -> TensorDictBase:
        zeros = self._zeros(td_reset)
        mask = reset_mask(td, td_reset)
        for key, zero in zeros.items():
            prev = None if mask is None or td is None else td.get(key, None)
            if prev is not None:  # the rows not reset keep what their last step wrote
                zero = torch.where(expand_mask(mask, zero), zero, prev.to(zero.dtype))
            td_reset.set(key, zero)
        return td_reset

    def _step(self, td: TensorDictBase, next_td: TensorDictBase) -> TensorDictBase:
        batch = next_td.batch_size
        action = self._get(td, self.action_key).to(torch.float32)
        next_td.set(self.prev_keys[0], action.reshape(*batch, *action.shape[len(batch):]))
        for key, out in ((self.reward_key, self.prev_keys[1]), (self.done_key, self.prev_keys[2])):
            next_td.set(out, self._get(next_td, key).to(torch.float32).reshape(*batch, 1))
        return next_td

    def transform_observation_spec(self, spec: Any) -> Any:
        """Add the three entries (float32, unbounded)."""
        shape = spec.shape
        action_shape = self._action_shape()
        device = getattr(spec, "device", None)
        for key, tail in zip(self.prev_keys, (action_shape, (1,), (1,))):
            spec[key] = Unbounded((*shape, *tail), dtype=torch.float32, device=device)
        return spec

    def __repr__(self) -> str:
        return f"PreviousStepInputs(out_keys={list(self.prev_keys)})"
