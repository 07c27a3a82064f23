"""Batch hooks: select, mask, sub-sample and normalize collected batches; value estimates."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from tensordict import TensorDictBase
from tensordict.utils import NestedKey

from streamrl.trainers._checks import check_name, check_trainer, positive_int
from streamrl.trainers.hook_base import TrainerHookBase
from streamrl.trainers.replay import MASK_KEY

__all__ = ["BatchSubSampler", "RewardNormalizer", "SelectKeys", "ValueEstimatorHook",
           "mask_batch"]


def mask_batch(batch: TensorDictBase) -> TensorDictBase:
    """The valid steps of a batch of padded trajectories (``batch[batch["collector", "mask"]]``,
    a flat batch); a batch without a mask is returned as it is.

    >>> from tensordict import TensorDict
    >>> batch = TensorDict({"x": torch.arange(4.0),
    ...                     ("collector", "mask"): torch.tensor([True, False, True, True])}, [4])
    >>> mask_batch(batch)["x"]
    tensor([0., 2., 3.])
    """
    mask = batch.get(MASK_KEY, None)
    return batch if mask is None else batch[mask]


class SelectKeys(TrainerHookBase):
    """Keeps only ``keys`` in each collected batch (``"batch_process"``).

    >>> from tensordict import TensorDict
    >>> SelectKeys(["a"])(TensorDict({"a": torch.zeros(2), "b": torch.ones(2)}, [2])).keys()
    _StringKeys(dict_keys(['a']))
    """

    def __init__(self, keys: Sequence[NestedKey]) -> None:
        if isinstance(keys, (str, tuple)):
            keys = [keys]
        keys = list(keys)
        if not keys or not all(isinstance(k, (str, tuple)) for k in keys):
            raise ValueError(f"keys must be a non-empty sequence of keys, found {keys!r}")
        self.keys = keys

    def __call__(self, batch: TensorDictBase) -> TensorDictBase:
        return batch.select(*self.keys)

    def register(self, trainer: Any, name: str = "select_keys") -> None:
        """At ``"batch_process"``."""
        check_trainer(trainer, self)
        trainer.register_op("batch_process", self)
        trainer.register_module(check_name(name), self)


class BatchSubSampler(TrainerHookBase):
    """Draws ``batch_size`` steps of a collected ``[N, T]`` batch as
    ``[batch_size // L, L]`` sub-trajectories (``"process_optim_batch"``).

    ``L`` is ``sub_traj_len`` (0: the whole length ``T``), never more than ``T``. Each row is a
    window of ``L`` consecutive steps of a trajectory drawn at random (torch's global
    generator). With a ``("collector", "mask")`` (padded trajectories) windows lie within the
    valid steps; if no trajectory has ``L`` valid steps, ``L`` drops to the longest valid length
    but not under ``min_sub_traj_len``. A 1-D batch ``[N]`` gives ``batch_size`` random rows.

    >>> from tensordict import TensorDict
    >>> batch = TensorDict({"x": torch.arange(20).view(2, 10)}, [2, 10])
    >>> BatchSubSampler(batch_size=6, sub_traj_len=3)(batch).batch_size
    torch.Size([2, 3])
    """

    def __init__(self, batch_size: int, sub_traj_len: int = 0, min_sub_traj_len: int = 0) -> None:
        self.batch_size = positive_int(batch_size, "batch_size")
        for name, value in (("sub_traj_len", sub_traj_len),
                            ("min_sub_traj_len", min_sub_traj_len)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be an int >= 0, found {value!r}")
        if sub_traj_len and min_sub_traj_len > sub_traj_len:
            raise ValueError(f"min_sub_traj_len ({min_sub_traj_len}) exceeds sub_traj_len "
                             f"({sub_traj_len})")
        self.sub_traj_len = sub_traj_len
        self.min_sub_traj_len = min_sub_traj_len

    def __call__(self, batch: TensorDictBase) -> TensorDictBase:
        if batch.batch_dims == 1:
            return batch[torch.randint(batch.shape[0], (self.batch_size,))]
        if batch.batch_dims != 2:
            raise ValueError(f"BatchSubSampler expects a [N, T] or [N] batch, found shape "
                             f"{tuple(batch.shape)}")
        n, t = batch.shape
        length = min(self.sub_traj_len or t, t)
        mask = batch.get(MASK_KEY, None)
        valid = mask.sum(-1) if mask is not None else torch.full((n,), t)
        if int(valid.max()) < length:
            length = max(int(valid.max()), self.min_sub_traj_len)
        rows = self.batch_size // length
        if rows == 0:
            raise ValueError(f"batch_size {self.batch_size} is smaller than the sub-trajectory "
                             f"length {length}: no row fits")
        eligible = (valid >= length).nonzero().squeeze(-1)
        if eligible.numel() == 0:
            raise ValueError(f"no trajectory has {length} valid steps (min_sub_traj_len="
                             f"{self.min_sub_traj_len}); the longest has {int(valid.max())}")
        traj = eligible[torch.randint(eligible.numel(), (rows,))]
        # the window starts where it still ends within the trajectory's valid steps
        start = (torch.rand(rows) * (valid[traj] - length + 1)).long()
        steps = start.unsqueeze(-1) + torch.arange(length)
        return batch[traj.unsqueeze(-1), steps]

    def register(self, trainer: Any, name: str = "batch_subsampler") -> None:
        """At ``"process_optim_batch"``."""
        check_trainer(trainer, self)
        trainer.register_op("process_optim_batch", self)
        trainer.register_module(check_name(name), self)


class RewardNormalizer(TrainerHookBase):
    """Normalizes rewards with running statistics of the collected rewards.

    :meth:`update_reward_stats` (``"batch_process"``) updates exponentially decayed sums of
    the rewards, their squares and their count (``decay`` per batch); :meth:`normalize_reward`
    (``"process_optim_batch"``, after the sampling hook) returns the batch with
    ``(reward - mean) / std * scale``, ``std`` floored at ``eps``.

    >>> from tensordict import TensorDict
    >>> norm = RewardNormalizer()
    >>> batch = TensorDict({("next", "reward"): torch.tensor([[0.0], [2.0]])}, [2])
    >>> norm.update_reward_stats(batch)
    >>> norm.normalize_reward(batch)["next", "reward"].flatten()
    tensor([-0.7071,  0.7071])
    """

    def __init__(self, decay: float = 0.999, scale: float = 1.0, eps: float | None = None,
                 reward_key: NestedKey | None = None) -> None:
        if not 0.0 <= decay <= 1.0:
            raise ValueError(f"decay must be in [0, 1], found {decay!r}")
        if not scale > 0:
            raise ValueError(f"scale must be > 0, found {scale!r}")
        if eps is None:
            eps = torch.finfo(torch.get_default_dtype()).eps
        if not eps > 0:
            raise ValueError(f"eps must be > 0, found {eps!r}")
        self.decay = float(decay)
        self.scale = float(scale)
        self.eps = float(eps)
        self.reward_key = ("next", "reward") if reward_key is None else reward_key
        self._stats: dict[str, torch.Tensor] = {}

    def update_reward_stats(self, batch: TensorDictBase) -> None:
        """Fold the batch's rewards (its valid steps) into the running statistics."""
        reward = batch.get(self.reward_key, None)
        if reward is None:
            raise KeyError(f"RewardNormalizer: the batch has no {self.reward_key!r} entry")
        mask = batch.get(MASK_KEY, None)
        if mask is not None:
            reward = reward[mask]
        reward = reward.detach().double()
        new = {"sum": reward.sum(), "ssq": reward.pow(2).sum(),
               "count": torch.tensor(float(reward.numel()), dtype=torch.float64)}
        for k, v in new.items():
            self._stats[k] = self._stats[k] * self.decay + v if k in self._stats else v

    @property
    def mean(self) -> torch.Tensor:
        """The running mean of the rewards."""
        self._check_updated()
        return self._stats["sum"] / self._stats["count"]

    @property
    def std(self) -> torch.Tensor:
        """The running standard deviation of the rewards (at least ``eps``)."""
        self._check_updated()
        count = self._stats["count"]
        var = (self._stats["ssq"] - self._stats["sum"] ** 2 / count) / (count - 1).clamp_min(1)
        return var.clamp_min(0).sqrt().clamp_min(self.eps)

    def _check_updated(self) -> None:
        if not self._stats:
            raise RuntimeError("RewardNormalizer has no statistics yet: update_reward_stats() "
                               "must run (at batch_process) before normalize_reward()")

    def normalize_reward(self, tensordict: TensorDictBase) -> TensorDictBase:
        """A shallow copy of ``tensordict`` with its reward normalized."""
        reward = tensordict.get(self.reward_key, None)
        if reward is None:
            raise KeyError(f"RewardNormalizer: the batch has no {self.reward_key!r} entry")
        normalized = (reward - self.mean.to(reward.dtype)) / self.std.to(reward.dtype)
        return tensordict.copy().set(self.reward_key, normalized * self.scale)

    def register(self, trainer: Any, name: str = "reward_normalizer") -> None:
        """:meth:`update_reward_stats` at ``"batch_process"``, :meth:`normalize_reward` at
        ``"process_optim_batch"``."""
        check_trainer(trainer, self)
        trainer.register_op("batch_process", self.update_reward_stats)
        trainer.register_op("process_optim_batch", self.normalize_reward)
        trainer.register_module(check_name(name), self)

    def state_dict(self) -> dict[str, Any]:
        """The running sums (rewards, squares, count)."""
        return {"stats": {k: v.clone() for k, v in self._stats.items()}}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        self._stats = {k: v.clone() for k, v in state_dict["stats"].items()}


class ValueEstimatorHook(TrainerHookBase):
    """Runs a value estimator (e.g. :class:`~streamrl.objectives.GAE`) over each collected
    batch before an epoch (``"pre_epoch"``), without gradients, so advantages and value
    targets are in the batch the loss's sub-batches are drawn from.

    >>> from tensordict import TensorDict
    >>> hook = ValueEstimatorHook(lambda td: td.set("advantage", td["x"] * 2))
    >>> hook(TensorDict({"x": torch.ones(2)}, [2]))["advantage"]
    tensor([2., 2.])
    """

    def __init__(self, value_estimator: Callable[[TensorDictBase], TensorDictBase]) -> None:
        if not callable(value_estimator):
            raise TypeError(f"value_estimator must be callable, found "
                            f"{type(value_estimator).__name__}")
        self.value_estimator = value_estimator

    def __call__(self, batch: TensorDictBase | None) -> TensorDictBase | None:
        if batch is None:
            return None
        with torch.no_grad():
            out = self.value_estimator(batch)
        return batch if out is None else out

    def register(self, trainer: Any, name: str = "value_estimator") -> None:
        """At ``"pre_epoch"``."""
        check_trainer(trainer, self)
        trainer.register_op("pre_epoch", self)
        trainer.register_module(check_name(name), self)
