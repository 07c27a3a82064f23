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
from tensordict.utils import NestedKey

from streamrl.data.specs import Bounded, Composite, Unbounded
from streamrl.envs.transforms._spec_utils import map_spec
from streamrl.envs.transforms.transform import (
    RESET_KEY,
    Transform,
    as_keys,
    expand_mask,
    reset_mask,
)

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


def _episode_key(key: NestedKey) -> NestedKey:
    """``"reward"`` -> ``"episode_reward"``, ``("a", "r")`` -> ``("a", "episode_r")``."""
    if isinstance(key, tuple):
        return (*key[:-1], "episode_" + key[-1])
    return "episode_" + key


class RewardSum(Transform):
    """Accumulate the reward over the episode into ``episode_reward``.

    The sum is zero after a reset (only for the sub-envs being reset, in a batched env) and
    grows by each step's reward; the entry is an observation (``reward_spec=True``: a
    reward, which the next step also reads as a state entry), so it follows the data from
    step to step.

    Args:
        in_keys: the rewards to sum. Default: inside an env, every reward of the env (learnt
            from its reward spec); outside one, ``["reward"]``.
        out_keys: one per in_key (default ``episode_<name>``).
        reset_keys: one ``"_reset"``-style entry per in_key, marking the sub-envs whose sum
            restarts (default: the root ``"_reset"`` for all).

    Keyword Args:
        reward_spec: register the sums as rewards instead of observations.

    Outside an env (``transform(td)``, e.g. on a replay-buffer sample) the sums are the
    cumulative sums along the dim named ``"time"`` (name it: ``td.names = [..., "time"]``).

    >>> import torch
    >>> from tensordict import TensorDict
    >>> td = TensorDict({"reward": torch.ones(3, 1)}, [3], names=["time"])
    >>> RewardSum()(td)["episode_reward"].squeeze(-1).tolist()
    [1.0, 2.0, 3.0]
    """

    def __init__(
        self,
        in_keys: Any = None,
        out_keys: Any = None,
        reset_keys: Any = None,
        *,
        reward_spec: bool = False,
    ) -> None:
        if not isinstance(reward_spec, bool):
            raise TypeError(f"reward_spec must be a bool, found {type(reward_spec).__name__}")
        # in_keys learnt from the env's reward spec when not given
        self._env_in_keys = in_keys is None
        keys = as_keys(["reward"] if in_keys is None else in_keys, "in_keys")
        self._given_out_keys = None if out_keys is None else as_keys(out_keys, "out_keys")
        self._check_key_counts(keys, self._given_out_keys)
        super().__init__(keys, self._given_out_keys or [_episode_key(k) for k in keys])
        self.reset_keys = None if reset_keys is None else as_keys(reset_keys, "reset_keys")
        if self.reset_keys is not None and not self._env_in_keys:
            self._check_reset_keys(self.in_keys)
        self.reward_spec = reward_spec
        # The trailing shape and dtype of each reward, learnt from the env's reward spec so
        # that a reset (which has no reward) can write zeros of the right shape.
        self._reward_meta: dict[Any, tuple[torch.Size, torch.dtype]] = {}

    @staticmethod
    def _check_key_counts(in_keys: list, out_keys: list | None) -> None:
        if out_keys is not None and len(out_keys) != len(in_keys):
            raise ValueError(
                "RewardSum expects the same number of input and output keys, found in_keys "
                f"{in_keys} and out_keys {out_keys}"
            )

    def _check_reset_keys(self, in_keys: list) -> None:
        if len(self.reset_keys) != len(in_keys):
            raise ValueError(
                f"Could not match the env reset_keys {self.reset_keys} with the in_keys "
                f"{in_keys}: expected one reset key per in_key"
            )

    def _call(self, td: TensorDictBase) -> TensorDictBase:
        names = td.names if td.batch_dims else []
        if "time" not in names:
            raise ValueError(
                "At least one dimension of the tensordict must be named 'time' in offline "
                f"mode (RewardSum sums along it), found names {names}"
            )
        dim = names.index("time")
        for in_key, out_key in zip(self.in_keys, self.out_keys):
            td.set(out_key, self._get(td, in_key).cumsum(dim))
        return td

    def _reset(self, td: TensorDictBase | None, td_reset: TensorDictBase) -> TensorDictBase:
        for i, (in_key, out_key) in enumerate(zip(self.in_keys, self.out_keys)):
            key = RESET_KEY if self.reset_keys is None else self.reset_keys[i]
            mask = reset_mask(td, td_reset, key)
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

    def _sum_specs(self, rewards: Composite) -> dict[Any, Any]:
        """The spec of each sum (shaped like its reward), learning the in_keys when they
        come from the env."""
        if self._env_in_keys:
            keys = [k for k in rewards.keys(True, True) if k not in self.out_keys]
            self._check_key_counts(keys, self._given_out_keys)
            self.in_keys = keys
            self.out_keys = self._given_out_keys or [_episode_key(k) for k in keys]
        if self.reset_keys is not None:
            self._check_reset_keys(self.in_keys)
        nbatch = len(rewards.shape)
        specs = {}
        for in_key, out_key in zip(self.in_keys, self.out_keys):
            if in_key not in rewards:
                raise KeyError(
                    f"RewardSum: reward key {in_key!r} not in the env's reward spec "
                    f"(found {list(rewards.keys(True, True))})"
                )
            spec = rewards[in_key]
            self._reward_meta[in_key] = (spec.shape[nbatch:], spec.dtype)
            specs[out_key] = Unbounded(shape=spec.shape, device=spec.device, dtype=spec.dtype)
        return specs

    def transform_output_spec(self, output_spec: Any) -> Any:
        """Add ``episode_reward`` (shaped like the reward) to the observation spec (to the
        reward spec with ``reward_spec=True``)."""
        part = "full_reward_spec" if self.reward_spec else "full_observation_spec"
        specs = self._sum_specs(output_spec["full_reward_spec"])
        dest = output_spec[part]
        for key, spec in specs.items():
            dest[key] = spec
        output_spec[part] = dest
        return output_spec

    def transform_input_spec(self, input_spec: Any) -> Any:
        """With ``reward_spec=True`` the sums are also state entries: the next step reads
        the running sums from its input."""
        input_spec = super().transform_input_spec(input_spec)
        if not self.reward_spec:
            return input_spec
        parent = self.parent
        if parent is None:
            raise ValueError(
                "RewardSum(reward_spec=True).transform_input_spec needs the env's reward "
                "spec: put the transform in a TransformedEnv first"
            )
        state = input_spec["full_state_spec"]
        for key, spec in self._sum_specs(parent.full_reward_spec).items():
            state[key] = spec
        input_spec["full_state_spec"] = state
        return input_spec

    def __repr__(self) -> str:
        return (
            f"RewardSum(in_keys={self.in_keys!r}, out_keys={self.out_keys!r}, "
            f"reward_spec={self.reward_spec})"
        )
