"""TrajCounter: number every trajectory (every sub-env reset) with a counter that worker
processes share.

>>> from streamrl.envs.libs.gym import GymEnv
>>> from streamrl.envs.transforms import Compose, StepCounter, TrajCounter, TransformedEnv
>>> env = TransformedEnv(GymEnv("Pendulum-v1"), Compose(StepCounter(2), TrajCounter()))
>>> env.rollout(6, break_when_any_done=False)["next", "traj_count"].squeeze(-1)
tensor([0, 0, 1, 1, 2, 2])
>>> env.close()
"""

from __future__ import annotations

from typing import Any

import torch
from tensordict import TensorDictBase
from tensordict.utils import NestedKey

from streamrl.data.specs import Unbounded
from streamrl.envs.transforms._shared import (
    deepcopy_sharing,
    getstate_sharing,
    new_lock,
    setstate_sharing,
)
from streamrl.envs.transforms.transform import Transform, as_keys, reset_mask

__all__ = ["TrajCounter"]


class TrajCounter(Transform):
    """Write ``out_key`` (int64, trailing dim 1): the number of the trajectory each step
    belongs to, counted from 0 across everything that shares the counter.

    Each reset of a sub-env takes the next number; steps carry their trajectory's number.
    The counter lives in shared memory behind a process lock: copies of the transform
    (``copy.deepcopy``, ``ParallelEnv`` workers, forked processes) keep sharing it (a
    plain ``pickle`` round trip makes an independent counter), so no two trajectories get the same number. Build the transform once
    and give each worker's env a copy of it to count across workers.

    Args:
        out_key: the entry written (default ``"traj_count"``).

    >>> import copy, torch
    >>> t = TrajCounter()
    >>> copy.deepcopy(t)._counter is t._counter
    True
    """

    def __init__(self, out_key: NestedKey = "traj_count") -> None:
        keys = as_keys(out_key, "out_key")
        if len(keys) != 1:
            raise ValueError(f"out_key must be one key, found {out_key!r}")
        super().__init__()
        self.out_keys = keys
        self.out_key = keys[0]
        object.__setattr__(self, "_counter", torch.zeros((), dtype=torch.int64).share_memory_())
        object.__setattr__(self, "_lock", new_lock())

    def __deepcopy__(self, memo: dict) -> TrajCounter:
        # nn.Module state is per copy; the counter and its lock are shared
        return deepcopy_sharing(self, memo)

    def __getstate__(self) -> dict:
        return getstate_sharing(super().__getstate__(), ("_counter",))

    def __setstate__(self, state: dict) -> None:
        super().__setstate__(state)
        setstate_sharing(self, ("_counter",))

    def _take(self, n: int) -> torch.Tensor:
        with self._lock:
            start = int(self._counter.item())
            self._counter.fill_(start + n)
        return torch.arange(start, start + n, dtype=torch.int64)

    def _call(self, td: TensorDictBase) -> TensorDictBase:
        raise ValueError("TrajCounter counts env resets: put it in a TransformedEnv")

    def _reset(self, td: TensorDictBase | None, td_reset: TensorDictBase) -> TensorDictBase:
        batch = td_reset.batch_size
        mask = reset_mask(td, td_reset)
        prev = None if td is None else td.get(self.out_key, None)
        if mask is None or prev is None:
            value = self._take(batch.numel()).reshape(*batch, 1)
        else:
            m = mask.reshape(batch)
            value = prev.clone().reshape(*batch, 1)
            value[m] = self._take(int(m.sum())).reshape(-1, 1)
        td_reset.set(self.out_key, value.to(td_reset.device) if td_reset.device else value)
        return td_reset

    def _step(self, td: TensorDictBase, next_td: TensorDictBase) -> TensorDictBase:
        value = td.get(self.out_key, None)
        if value is None:
            raise KeyError(
                f"TrajCounter: the step input has no {self.out_key!r}; step from the output of "
                "reset() (or of a previous step)"
            )
        next_td.set(self.out_key, value)
        return next_td

    def transform_output_spec(self, output_spec: Any) -> Any:
        """Add the int64 trajectory number to the observations."""
        obs = output_spec["full_observation_spec"]
        obs[self.out_key] = Unbounded(
            shape=(*obs.shape, 1), device=getattr(obs, "device", None), dtype=torch.int64
        )
        output_spec["full_observation_spec"] = obs
        return output_spec

    def __repr__(self) -> str:
        return f"TrajCounter(out_key={self.out_key!r}, count={int(self._counter.item())})"
