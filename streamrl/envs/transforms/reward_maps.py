"""More reward transforms: BinarizeReward, LineariseRewards (multi-objective to one),
TargetReturn (a return-to-achieve input for the policy) and Reward2GoTransform (discounted
return-to-go, written when trajectories enter a replay buffer).

>>> import torch
>>> from tensordict import TensorDict
>>> from streamrl.envs.transforms import BinarizeReward, LineariseRewards
>>> BinarizeReward()(TensorDict({"reward": torch.tensor([[0.0], [-2.0], [0.5]])}, [3]))["reward"]
tensor([[0],
        [0],
        [1]], dtype=torch.int8)
>>> t = LineariseRewards(["reward"], weights=[1.0, 0.5])
>>> t(TensorDict({"reward": torch.tensor([2.0, 4.0])}))["reward"]
tensor([4.])
"""

from __future__ import annotations

from typing import Any

import torch
from tensordict import TensorDictBase
from tensordict.utils import NestedKey, unravel_key

from streamrl.data.specs import Bounded, Unbounded
from streamrl.envs.transforms.transform import Transform, as_keys

__all__ = ["BinarizeReward", "LineariseRewards", "Reward2GoTransform", "TargetReturn"]


class BinarizeReward(Transform):
    """Map the reward to 1 where it is positive and 0 elsewhere (dtype ``torch.int8``), as
    TorchRL does (its docstring says "non-null"; its code and tests map ``reward > 0``).

    Args:
        in_keys: the reward entries (default ``["reward"]``); out_keys default to in_keys.

    The spec becomes a Bounded int8 in [0, 1] of the reward's shape.
    """

    _per_step = True

    def __init__(self, in_keys: Any = None, out_keys: Any = None) -> None:
        super().__init__(["reward"] if in_keys is None else in_keys, out_keys)

    def _apply_transform(self, value: torch.Tensor) -> torch.Tensor:
        return (value > 0).to(torch.int8)

    def _transform_spec(self, spec: Any) -> Any:
        return Bounded(0, 1, shape=spec.shape, device=spec.device, dtype=torch.int8)

    def __repr__(self) -> str:
        return f"BinarizeReward(keys={self.in_keys!r})"


class LineariseRewards(Transform):
    """Sum a multi-objective reward (last dim: one entry per objective) into one reward,
    weighted by ``weights``.

    Args:
        in_keys: the multi-objective reward entries (required); the same weights apply to
            each (use several transforms for different weights).
        out_keys: where the summed rewards go (default: in place).

    Keyword Args:
        weights: one weight per objective (default all 1.0).

    The spec's last dim becomes 1; a Bounded spec keeps exact bounds (each objective's bound
    chosen by the weight's sign).
    """

    _per_step = True

    def __init__(self, in_keys: Any, out_keys: Any = None, *, weights: Any = None) -> None:
        if in_keys is None or not as_keys(in_keys, "in_keys"):
            raise ValueError("LineariseRewards needs in_keys (the multi-objective rewards)")
        super().__init__(in_keys, out_keys)
        if weights is not None:
            w = torch.as_tensor(weights, dtype=torch.float32)
            if w.ndim != 1 or w.numel() == 0:
                raise ValueError(
                    "Expected weights to be a unidimensional tensor (one weight per "
                    f"objective), found shape {tuple(w.shape)}"
                )
            self.register_buffer("weights", w)
        else:
            self.weights = None

    def _w(self, value: torch.Tensor) -> torch.Tensor:
        n = value.shape[-1] if value.ndim else 1
        if self.weights is None:
            return torch.ones(n, dtype=value.dtype, device=value.device)
        if self.weights.numel() != n:
            raise ValueError(
                f"LineariseRewards: {self.weights.numel()} weights for a reward with {n} "
                f"objectives (shape {tuple(value.shape)})"
            )
        return self.weights.to(device=value.device, dtype=value.dtype)

    def _apply_transform(self, value: torch.Tensor) -> torch.Tensor:
        if not value.is_floating_point():
            value = value.float()
        return (value * self._w(value)).sum(-1, keepdim=True)

    def _transform_spec(self, spec: Any) -> Any:
        if spec.domain != "continuous":
            raise NotImplementedError(
                "Aggregation of rewards that take discrete values is not supported: "
                f"found a {type(spec).__name__} reward spec (dtype {spec.dtype})"
            )
        dtype = spec.dtype
        shape = (*spec.shape[:-1], 1)
        if isinstance(spec, Bounded):
            low, high = spec.low.to(dtype), spec.high.to(dtype)
            w = self._w(low)
            lo = torch.where(w >= 0, low, high) * w
            hi = torch.where(w >= 0, high, low) * w
            return Bounded(
                lo.sum(-1, keepdim=True),
                hi.sum(-1, keepdim=True),
                shape=shape,
                device=spec.device,
                dtype=dtype,
            )
        return Unbounded(shape=shape, device=spec.device, dtype=dtype)

    def __repr__(self) -> str:
        return f"LineariseRewards(in_keys={self.in_keys!r}, out_keys={self.out_keys!r})"


class TargetReturn(Transform):
    """Write a target return for the policy to read: ``target_return`` at reset, then (mode
    ``"reduce"``) the previous target minus each step's reward, or (``"constant"``) the same
    value throughout.

    Args:
        target_return: the return to achieve.
        mode: ``"reduce"`` (default) or ``"constant"``.
        in_keys: the reward entries (default ``["reward"]``).
        out_keys: the target entries (default: each in_key with its last name replaced by
            ``"target_return"``).
        reset_key: the reset-mask entry of the reset input (default ``"_reset"``); in a
            partial reset only the rows being reset restart from ``target_return``.

    The target joins the observation spec (Unbounded, the reward's shape and dtype).
    Outside an env, ``forward`` writes ``target_return`` where the entry is missing.

    >>> from streamrl.envs.libs.gym import GymEnv
    >>> from streamrl.envs.transforms import TransformedEnv
    >>> env = TransformedEnv(GymEnv("CartPole-v1"), TargetReturn(10.0))
    >>> env.rollout(3)["next", "target_return"].squeeze(-1)
    tensor([9., 8., 7.])
    >>> env.close()
    """

    MODES = ("reduce", "constant")

    def __init__(
        self,
        target_return: float,
        mode: str = "reduce",
        in_keys: Any = None,
        out_keys: Any = None,
        reset_key: NestedKey | None = None,
    ) -> None:
        if isinstance(target_return, bool) or not isinstance(target_return, (int, float)):
            raise TypeError(f"target_return must be a number, found {target_return!r}")
        if mode not in self.MODES:
            raise ValueError(f"mode must be one of {self.MODES}, found {mode!r}")
        in_keys = ["reward"] if in_keys is None else as_keys(in_keys, "in_keys")
        if out_keys is None:
            out_keys = [
                "target_return" if isinstance(k, str) else unravel_key((*k[:-1], "target_return"))
                for k in in_keys
            ]
            if len(set(out_keys)) != len(out_keys):
                raise ValueError(f"default out_keys {out_keys} are not unique: pass out_keys")
        super().__init__(in_keys, out_keys)
        self.target_return = float(target_return)
        self.mode = mode
        self.reset_key = "_reset" if reset_key is None else as_keys(reset_key, "reset_key")[0]
        # feature shapes and dtypes of the targets, learnt from the reward specs
        self._shapes: list = [(1,)] * len(self.out_keys)
        self._dtypes: dict = {k: torch.float32 for k in self.out_keys}

    def _fresh(self, like: torch.Tensor | None, batch: torch.Size, device: Any) -> torch.Tensor:
        if like is not None:
            return torch.full_like(like, self.target_return, dtype=like.dtype)
        return torch.full((*batch, 1), self.target_return, device=device)

    def _call(self, td: TensorDictBase) -> TensorDictBase:
        for in_key, out_key in zip(self.in_keys, self.out_keys):
            if td.get(out_key, None) is None:
                td.set(out_key, self._fresh(td.get(in_key, None), td.batch_size, td.device))
        return td

    def _reset(self, td: TensorDictBase | None, td_reset: TensorDictBase) -> TensorDictBase:
        batch = td_reset.batch_size
        mask = None if td is None else td.get(self.reset_key, None)
        for out_key, feat in zip(self.out_keys, self._shapes):
            fresh = torch.full((*batch, *feat), self.target_return, device=td_reset.device)
            fresh = fresh.to(self._dtypes[out_key])
            old = None if (mask is None or td is None) else td.get(out_key, None)
            if old is not None and not bool(mask.all()):
                m = mask.reshape(batch) if mask.numel() == batch.numel() else mask
                m = m.reshape(*m.shape, *([1] * (fresh.ndim - m.ndim)))
                fresh = torch.where(m, fresh, old)
            td_reset.set(out_key, fresh)
        return td_reset

    def _step(self, td: TensorDictBase, next_td: TensorDictBase) -> TensorDictBase:
        for in_key, out_key in zip(self.in_keys, self.out_keys):
            prev = td.get(out_key, None)
            if prev is None:
                raise KeyError(
                    f"TargetReturn: the step input has no {out_key!r}; step from the output "
                    "of reset() (or of a previous step)"
                )
            if self.mode == "reduce":
                prev = prev - self._get(next_td, in_key).to(prev.dtype)
            next_td.set(out_key, prev)
        return next_td

    def transform_output_spec(self, output_spec: Any) -> Any:
        """Add the targets to the observations (the shape and dtype of their rewards)."""
        rewards = output_spec["full_reward_spec"]
        obs = output_spec["full_observation_spec"]
        self._shapes, self._dtypes = [], {}
        for in_key, out_key in zip(self.in_keys, self.out_keys):
            if in_key not in rewards.keys(True, True):
                raise KeyError(
                    f"TargetReturn: {in_key!r} is not a reward entry; the env's rewards are "
                    f"{sorted(map(str, rewards.keys(True, True)))}"
                )
            spec = rewards[in_key]
            dtype = spec.dtype if spec.dtype.is_floating_point else torch.float32
            obs[out_key] = Unbounded(shape=spec.shape, device=spec.device, dtype=dtype)
            self._shapes.append(spec.shape[len(rewards.shape) :])
            self._dtypes[out_key] = dtype
        output_spec["full_observation_spec"] = obs
        return output_spec

    def __repr__(self) -> str:
        return (
            f"TargetReturn(target_return={self.target_return}, mode={self.mode!r}, "
            f"out_keys={self.out_keys!r})"
        )


class Reward2GoTransform(Transform):
    """Write the discounted reward-to-go of each step of whole trajectories:
    ``r2g[t] = r[t] + gamma * r2g[t+1]``, restarting after each ``done``.

    It is an inverse transform: it runs when data is written to a replay buffer
    (``ReplayBuffer(transform=...)`` calls ``inv``) or on a collector's batches
    (``postproc=t.inv``), where trajectories are complete. Putting it in an env raises
    ``ValueError`` with :attr:`ENV_ERR`. As in TorchRL, the time dim of a reward entry is
    its second-to-last dim (``[..., T, 1]``); the done flags have the reward's leading
    shape ``[..., T]`` (with or without a trailing 1).

    Args:
        gamma: the discount (default 1.0).
        in_keys: the reward entries (default ``[("next", "reward")]``).
        out_keys: where the rewards-to-go go (default: in place).
        done_key: the episode-end flag, read under ``"next"`` (default ``"done"``).

    Keyword Args:
        truncated_key: a second episode-end flag, read under ``"next"`` when present
            (default ``"truncated"``; ``None``: only ``done_key``). Data where ``done``
            already includes truncations (the usual case) is unchanged by it; data that
            marks a cut trajectory only as truncated still restarts the sum there.

    >>> import torch
    >>> from tensordict import TensorDict
    >>> td = TensorDict({"next": {"reward": torch.ones(4, 1),
    ...     "done": torch.tensor([[False], [True], [False], [False]])}}, [4])
    >>> Reward2GoTransform(gamma=0.5, out_keys=["r2g"]).inv(td)["r2g"].squeeze(-1)
    tensor([1.5000, 1.0000, 1.5000, 1.0000])
    """

    #: The message of the ``ValueError`` raised when the transform is put in an env.
    ENV_ERR = (
        "Reward2GoTransform is only an inverse transform: it needs whole trajectories, "
        "so it applies to data written to a replay buffer or to a collector's batches "
        "with postproc=t.inv, not inside an env"
    )

    def __init__(
        self,
        gamma: Any = 1.0,
        in_keys: Any = None,
        out_keys: Any = None,
        done_key: NestedKey | None = "done",
        *,
        truncated_key: NestedKey | None = "truncated",
    ) -> None:
        in_keys = [("next", "reward")] if in_keys is None else in_keys
        super().__init__(in_keys, out_keys)
        gamma_t = torch.as_tensor(1.0 if gamma is None else gamma, dtype=torch.float32)
        if gamma_t.numel() != 1 or not (0.0 <= gamma_t.item() <= 1.0):
            raise ValueError(f"gamma must be a scalar in [0, 1], found {gamma!r}")
        self.register_buffer("gamma", gamma_t)
        self.done_key = as_keys("done" if done_key is None else done_key, "done_key")[0]
        self.truncated_key = (
            None if truncated_key is None else as_keys(truncated_key, "truncated_key")[0]
        )

    def _check_env_use(self) -> None:
        raise ValueError(self.ENV_ERR)

    def transform_output_spec(self, output_spec: Any) -> Any:
        """Raise: an env has no whole trajectories to compute rewards-to-go from."""
        raise ValueError(self.ENV_ERR)

    def _has_inverse(self) -> bool:
        return True

    def _call(self, td: TensorDictBase) -> TensorDictBase:
        return td  # the observation path (samples read from a buffer) leaves data as it is

    def _step(self, td: TensorDictBase, next_td: TensorDictBase) -> TensorDictBase:
        raise ValueError(self.ENV_ERR)

    def _inv_call(self, td: TensorDictBase) -> TensorDictBase:
        done_key = unravel_key(("next", self.done_key))
        done = td.get(done_key, None)
        if done is None:
            done = td.get(self.done_key, None)
        if done is None:
            raise KeyError(
                f"Reward2GoTransform: Could not find the done flags {done_key!r} (nor "
                f"{self.done_key!r}); the data has {sorted(map(str, td.keys(True, True)))}"
            )
        done = self._with_truncations(td, done)
        for in_key, out_key in zip(self.in_keys, self.out_keys):
            reward = td.get(in_key, None)
            if reward is None:
                raise KeyError(
                    f"Reward2GoTransform: Could not find the reward {in_key!r}; the data has "
                    f"{sorted(map(str, td.keys(True, True)))}"
                )
            td.set(out_key, self._reward_to_go(reward, done, in_key))
        return td

    def _with_truncations(self, td: TensorDictBase, done: torch.Tensor) -> torch.Tensor:
        if self.truncated_key is None:
            return done
        truncated = td.get(unravel_key(("next", self.truncated_key)), None)
        if truncated is None:
            return done
        if truncated.numel() != done.numel():
            raise ValueError(
                f"Reward2GoTransform: expected the truncated flags {self.truncated_key!r} to "
                f"have as many entries as the done flags (shape {tuple(done.shape)}), found "
                f"shape {tuple(truncated.shape)}"
            )
        return done.bool() | truncated.reshape(done.shape).bool()

    def _reward_to_go(self, reward: torch.Tensor, done: torch.Tensor, key: Any) -> torch.Tensor:
        if reward.ndim < 2:
            raise ValueError(
                f"Reward2GoTransform needs a time dim: expected the reward {key!r} of shape "
                f"[..., T, F] (time, then features), found shape {tuple(reward.shape)}"
            )
        t_dim = reward.ndim - 2
        lead = reward.shape[: t_dim + 1]
        if done.numel() != lead.numel():
            raise ValueError(
                f"Reward2GoTransform: expected done flags of shape {tuple(lead)} (the reward "
                f"{key!r}'s [..., T]), found shape {tuple(done.shape)}"
            )
        keep = (~done.reshape(*lead, 1).bool()).to(reward.dtype)
        gamma = self.gamma.to(device=reward.device, dtype=reward.dtype)
        out = torch.empty_like(reward)
        acc = torch.zeros_like(reward.select(t_dim, 0))
        for t in range(reward.shape[t_dim] - 1, -1, -1):
            acc = reward.select(t_dim, t) + gamma * acc * keep.select(t_dim, t)
            out.select(t_dim, t).copy_(acc)
        return out

    def __repr__(self) -> str:
        return (
            f"Reward2GoTransform(gamma={self.gamma.item()}, in_keys={self.in_keys!r}, "
            f"out_keys={self.out_keys!r}, done_key={self.done_key!r}, "
            f"truncated_key={self.truncated_key!r})"
        )
