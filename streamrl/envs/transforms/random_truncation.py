"""RandomTruncationTransform: random per-env horizons that desynchronise batched envs.

>>> from streamrl.envs.libs.gym import GymEnv
>>> from streamrl.envs.transforms import (
...     Compose, RandomTruncationTransform, StepCounter, TransformedEnv)
>>> env = TransformedEnv(GymEnv("Pendulum-v1"), Compose(
...     StepCounter(), RandomTruncationTransform(min_horizon=5, max_horizon=10)))
>>> len(env.rollout(50)) <= 10
True
>>> env.close()
"""

from __future__ import annotations

from typing import Any

import torch
from tensordict import TensorDictBase
from tensordict.utils import NestedKey

from streamrl.envs.transforms._spec_utils import flag_spec
from streamrl.envs.transforms.expand_as import _one_key
from streamrl.envs.transforms.transform import Transform, expand_mask, reset_mask

__all__ = ["RandomTruncationTransform"]


def _int_at_least_1(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, found {value!r}")
    return value


def _prob(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ValueError(f"{name} must be a probability in [0, 1], found {value!r}")
    return float(value)


def _last(key: NestedKey) -> str:
    return key if isinstance(key, str) else key[-1]


class RandomTruncationTransform(Transform):
    """Truncate each (sub-)env's episodes at a random horizon, so that batched envs with one
    time limit do not all restart together.

    At the first reset every env draws a horizon uniformly in ``[1, max_horizon]`` (the
    initial spread). At each later reset of an env, with probability ``p`` it draws a new
    horizon uniformly in ``[min_horizon, max_horizon]``, otherwise it uses ``max_horizon``;
    ``p`` is ``first_episode_prob`` for the first episode after the spread and ``prob``
    afterwards. A step whose count reaches the horizon sets the truncated and done flags.

    Place it after a :class:`~streamrl.envs.transforms.StepCounter`: it reads the count.

    Args:
        min_horizon: smallest random horizon (inclusive, >= 1).
        max_horizon: largest random horizon (inclusive) and the horizon without truncation;
            typically the env's time limit.
        prob: probability of a random horizon at each later reset. Default ``0.0``.
        first_episode_prob: that probability for the first episode after the spread;
            defaults to ``prob``.

    Keyword Args:
        step_count_key: the StepCounter entry. A string matches the last name of any
            (nested) entry; a tuple is an exact key. Default ``"step_count"``.
        truncated_key: the truncation flag written. A string goes next to the step count
            (same prefix); a tuple is an exact key. Default ``"truncated"``.
        done_key: the done flag OR-ed with the truncation, resolved as ``truncated_key``.
            Default ``"done"``.
    """

    def __init__(
        self,
        min_horizon: int,
        max_horizon: int,
        prob: float = 0.0,
        first_episode_prob: float | None = None,
        *,
        step_count_key: NestedKey = "step_count",
        truncated_key: NestedKey = "truncated",
        done_key: NestedKey = "done",
    ) -> None:
        self.min_horizon = _int_at_least_1(min_horizon, "min_horizon")
        self.max_horizon = _int_at_least_1(max_horizon, "max_horizon")
        if min_horizon > max_horizon:
            raise ValueError(
                f"min_horizon must be <= max_horizon, found {min_horizon} > {max_horizon}"
            )
        self.prob = _prob(prob, "prob")
        self.first_episode_prob = (
            self.prob
            if first_episode_prob is None
            else _prob(first_episode_prob, "first_episode_prob")
        )
        self.step_count_key = _one_key(step_count_key, "step_count_key")
        self.truncated_key = _one_key(truncated_key, "truncated_key")
        self.done_key = _one_key(done_key, "done_key")
        super().__init__()
        self._horizon: torch.Tensor | None = None
        self._episode: torch.Tensor | None = None

    # ------------------------------------------------------------------ keys
    def _count_key(self, keys: list) -> NestedKey:
        if isinstance(self.step_count_key, tuple):
            found = [k for k in keys if k == self.step_count_key]
        else:
            found = [k for k in keys if _last(k) == self.step_count_key]
        if not found:
            raise KeyError(
                f"RandomTruncationTransform: no {self.step_count_key!r} entry (put a StepCounter "
                f"before it); found {sorted(str(k) for k in keys)}"
            )
        if len(found) > 1:
            raise KeyError(
                f"RandomTruncationTransform: several entries match {self.step_count_key!r}: "
                f"{found}; pass the exact key as a tuple"
            )
        return found[0]

    def _next_to(self, count_key: NestedKey, key: NestedKey) -> NestedKey:
        if isinstance(key, tuple):
            return key
        return (*count_key[:-1], key) if isinstance(count_key, tuple) else key

    # ------------------------------------------------------------------ horizons
    def _draw(self, shape: torch.Size, low: int, device: Any) -> torch.Tensor:
        return torch.randint(low, self.max_horizon + 1, shape, device=device)

    def _reset(self, td: TensorDictBase | None, td_reset: TensorDictBase) -> TensorDictBase:
        key = self._count_key(list(td_reset.keys(True, True)))
        count = td_reset.get(key)
        shape, device = count.shape, count.device
        for flag in (self.truncated_key, self.done_key):
            flag = self._next_to(key, flag)
            if flag not in td_reset.keys(True, True):
                td_reset.set(flag, torch.zeros(shape, dtype=torch.bool, device=device))
        if self._horizon is None or self._horizon.shape != shape:
            self._horizon = self._draw(shape, 1, device)  # the initial spread
            self._episode = torch.zeros(shape, dtype=torch.int64, device=device)
            return td_reset
        mask = reset_mask(td, td_reset)
        rows = (
            torch.ones(shape, dtype=torch.bool, device=device)
            if mask is None
            else expand_mask(mask, count).expand(shape)
        )
        self._episode = torch.where(rows, self._episode + 1, self._episode)
        p = torch.where(self._episode == 1, self.first_episode_prob, self.prob)
        random = torch.rand(shape, device=device) < p
        new = torch.where(random, self._draw(shape, self.min_horizon, device), self.max_horizon)
        self._horizon = torch.where(rows, new, self._horizon)
        return td_reset

    def _step(self, td: TensorDictBase, next_td: TensorDictBase) -> TensorDictBase:
        key = self._count_key(list(next_td.keys(True, True)))
        count = next_td.get(key)
        if self._horizon is None:
            raise RuntimeError("RandomTruncationTransform: the env must be reset before a step")
        hit = count >= self._horizon.reshape(count.shape)
        for flag in (self.truncated_key, self.done_key):
            flag = self._next_to(key, flag)
            old = next_td.get(flag, None)
            next_td.set(flag, hit if old is None else old | hit.reshape(old.shape))
        return next_td

    def _call(self, td: TensorDictBase) -> TensorDictBase:
        raise NotImplementedError(
            "RandomTruncationTransform truncates env episodes: use it inside a TransformedEnv"
        )

    def reset_state(self) -> None:
        """Forget the horizons: the next reset spreads them again."""
        self._horizon = self._episode = None

    def transform_output_spec(self, output_spec: Any) -> Any:
        """Add the truncated and done flags next to the step count when missing."""
        obs = output_spec["full_observation_spec"]
        key = self._count_key(list(obs.keys(True, True)))
        done = output_spec["full_done_spec"]
        for flag in (self.truncated_key, self.done_key):
            flag = self._next_to(key, flag)
            if flag not in done.keys(True, True):
                done[flag] = flag_spec(obs[key].shape[:-1], getattr(done, "device", None))
        output_spec["full_done_spec"] = done
        return output_spec

    def __repr__(self) -> str:
        return (
            f"RandomTruncationTransform(min_horizon={self.min_horizon}, "
            f"max_horizon={self.max_horizon}, prob={self.prob}, "
            f"first_episode_prob={self.first_episode_prob})"
        )
