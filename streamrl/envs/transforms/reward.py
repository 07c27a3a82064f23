"""Reward transforms: RewardScaling, RewardClipping and RewardSum (the episode return).

>>> import torch
>>> from tensordict import TensorDict
>>> from streamrl.envs.transforms import RewardClipping
>>> RewardClipping(-1.0, 1.0)(TensorDict({"reward": torch.tensor([-3.0, 0.5, 2.0])}))["reward"]
tensor([-1.0000,  0.5000,  1.0000])
"""

from __future__ import annotations

import math
from typing import Any

import torch
from tensordict import TensorDictBase

from streamrl.data.specs import Bounded, Unbounded
from streamrl.envs.transforms._spec_utils import map_spec
from streamrl.envs.transforms.transform import Transform, expand_mask, reset_mask

__all__ = ["RewardClipping", "RewardScaling", "RewardSum"]


def _float(x: Any, name: str) -> float:
    if isinstance(x, torch.Tensor):
        if x.numel() != 1:
            raise ValueError(f"{name} must be a scalar, found a tensor of shape {tuple(x.shape)}")
        x = x.item()
    if not isinstance(x, (int, float)):
        raise TypeError(f"{name} must be a number, found {type(x).__name__}")
    return float(x)


class RewardScaling(Transform):
    """Affine reward map: ``reward * scale + loc``, or ``(reward - loc) / scale`` when
    ``standard_normal=True``.

    Args:
        loc, scale: numbers or tensors broadcastable to the reward.
        in_keys: the reward entries (default ``["reward"]``).
        standard_normal: which of the two maps to apply.
    """

    _per_step = True

    def __init__(
        self,
        loc: Any,
        scale: Any,
        in_keys: Any = None,
        out_keys: Any = None,
        standard_normal: bool = False,
    ) -> None:
        super().__init__(["reward"] if in_keys is None else in_keys, out_keys)
        scale_t = torch.as_tensor(scale, dtype=torch.float32)
        if bool((scale_t == 0).any()):
            raise ValueError("scale must be non-zero")
        self.register_buffer("loc", torch.as_tensor(loc, dtype=torch.float32))
        self.register_buffer("scale", scale_t)
        self.standard_normal = standard_normal

    def _apply_transform(self, value: torch.Tensor) -> torch.Tensor:
        loc, scale = self.loc.to(value), self.scale.to(value)
        if self.standard_normal:
            return (value - loc) / scale
        return value * scale + loc

    def _transform_spec(self, spec: Any) -> Any:
        return map_spec(spec, self._apply_transform)

    def __repr__(self) -> str:
        return (
            f"RewardScaling(loc={self.loc.mean().item():.4f}, scale={self.scale.mean().item():.4f}, "
            f"keys={self.in_keys!r})"
        )


class RewardClipping(Transform):
    """Clamp the reward into ``[clamp_min, clamp_max]`` (either bound may be None)."""

    _per_step = True

    def __init__(
        self,
        clamp_min: float | None = None,
        clamp_max: float | None = None,
        in_keys: Any = None,
        out_keys: Any = None,
    ) -> None:
        super().__init__(["reward"] if in_keys is None else in_keys, out_keys)
        if clamp_min is None and clamp_max is None:
            raise ValueError("RewardClipping needs clamp_min, clamp_max or both")
        self.clamp_min = None if clamp_min is None else _float(clamp_min, "clamp_min")
        self.clamp_max = None if clamp_max is None else _float(clamp_max, "clamp_max")
        if self.clamp_min is not None and self.clamp_max is not None:
            if self.clamp_min > self.clamp_max:
                raise ValueError(
                    f"clamp_min must be <= clamp_max, found {self.clamp_min} > {self.clamp_max}"
                )

    def _apply_transform(self, value: torch.Tensor) -> torch.Tensor:
        return value.clamp(self.clamp_min, self.clamp_max)

    def _transform_spec(self, spec: Any) -> Any:
        low = -math.inf if self.clamp_min is None else self.clamp_min
        high = math.inf if self.clamp_max is None else self.clamp_max
        if isinstance(spec, Bounded):
            return map_spec(spec, self._apply_transform)
        if spec.dtype.is_floating_point:
            return Bounded(low, high, shape=spec.shape, device=spec.device, dtype=spec.dtype)
        return spec

    def __repr__(self) -> str:
        return (
            f"RewardClipping(clamp_min={self.clamp_min}, clamp_max={self.clamp_max}, "
            f"keys={self.in_keys!r})"
        )


class RewardSum(Transform):
    """Accumulate the reward over the episode into ``episode_reward``.

    The sum is zero after a reset (only for the sub-envs being reset, in a batched env) and
    grows by each step's reward; the entry is an observation, so it follows the data from
    step to step. Inside an env only: there is no running sum on data that has no past.
    """

    def __init__(self, in_keys: Any = None, out_keys: Any = None) -> None:
        in_keys = ["reward"] if in_keys is None else in_keys
        if out_keys is None:
            from streamrl.envs.transforms.transform import as_keys

            keys = as_keys(in_keys, "in_keys")
            out_keys = [
                "episode_reward"
                if k == "reward"
                else (*k[:-1], "episode_" + k[-1])
                if isinstance(k, tuple)
                else "episode_" + k
                for k in keys
            ]
        super().__init__(in_keys, out_keys)
        # The trailing shape and dtype of each reward, learnt from the env's reward spec so
        # that a reset (which has no reward) can write zeros of the right shape.
        self._reward_meta: dict[Any, tuple[torch.Size, torch.dtype]] = {}

    def _call(self, td: TensorDictBase) -> TensorDictBase:
        raise NotImplementedError(
            "RewardSum accumulates over an episode: use it inside a TransformedEnv"
        )

    def _reset(self, td: TensorDictBase | None, td_reset: TensorDictBase) -> TensorDictBase:
        mask = reset_mask(td, td_reset)
        for in_key, out_key in zip(self.in_keys, self.out_keys):
            shape, dtype = self._reward_meta.get(in_key, (torch.Size([1]), torch.float32))
            zeros = torch.zeros((*td_reset.batch_size, *shape), dtype=dtype, device=td_reset.device)
            prev = None if mask is None or td is None else td.get(out_key, None)
            if prev is not None:
                zeros = torch.where(expand_mask(mask, prev), zeros, prev)
            td_reset.set(out_key, zeros)
        return td_reset

    def _step(self, td: TensorDictBase, next_td: TensorDictBase) -> TensorDictBase:
        for in_key, out_key in zip(self.in_keys, self.out_keys):
            reward = self._get(next_td, in_key)
            prev = td.get(out_key, None)
            next_td.set(out_key, reward.clone() if prev is None else prev + reward)
        return next_td

    def transform_output_spec(self, output_spec: Any) -> Any:
        """Add ``episode_reward`` (shaped like the reward) to the observation spec."""
        rewards = output_spec["full_reward_spec"]
        obs = output_spec["full_observation_spec"]
        nbatch = len(rewards.shape)
        for in_key, out_key in zip(self.in_keys, self.out_keys):
            if in_key not in rewards:
                raise KeyError(
                    f"RewardSum: reward key {in_key!r} not in the env's reward spec "
                    f"(found {list(rewards.keys(True, True))})"
                )
            spec = rewards[in_key]
            self._reward_meta[in_key] = (spec.shape[nbatch:], spec.dtype)
            obs[out_key] = Unbounded(shape=spec.shape, device=spec.device, dtype=spec.dtype)
        output_spec["full_observation_spec"] = obs
        return output_spec

    def __repr__(self) -> str:
        return f"RewardSum(in_keys={self.in_keys!r}, out_keys={self.out_keys!r})"
