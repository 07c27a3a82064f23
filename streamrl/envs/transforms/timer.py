"""Timer: how long resets, steps and the policy between steps take, written into the data.

>>> from streamrl.envs.libs.gym import GymEnv
>>> from streamrl.envs.transforms import Timer, TransformedEnv
>>> env = TransformedEnv(GymEnv("Pendulum-v1"), Timer())
>>> r = env.rollout(3)
>>> bool((r["next", "time_step"] > 0).all()), r["time_policy"][0].item()
(True, 0.0)
>>> env.close()
"""

from __future__ import annotations

import time
from typing import Any

import torch
from tensordict import TensorDictBase

from streamrl.data.specs import Unbounded
from streamrl.envs.transforms.transform import Transform, as_keys

__all__ = ["Timer"]


class Timer(Transform):
    """Write three durations in seconds (default float dtype, one per env of the batch):

    - ``{time_key}_step``: the env step, from the action path to the step's output;
    - ``{time_key}_policy``: from the previous reset or step output to this step's action
      path (the policy's time);
    - ``{time_key}_reset``: the reset, from its input to its output.

    A reset writes its own duration and 0 for the other two; a step writes 0 for the reset.

    Args:
        out_keys: the three entries (step, policy, reset), default from ``time_key``.
        time_key: the prefix of the default entries (default ``"time"``).

    It times an env, so it works inside a TransformedEnv only.
    """

    def __init__(self, out_keys: Any = None, time_key: str = "time") -> None:
        if not isinstance(time_key, str):
            raise TypeError(f"time_key must be a str, found {time_key!r}")
        if out_keys is None:
            out_keys = [f"{time_key}_step", f"{time_key}_policy", f"{time_key}_reset"]
        keys = as_keys(out_keys, "out_keys")
        if len(keys) != 3:
            raise ValueError(f"out_keys must be 3 keys (step, policy, reset), found {out_keys!r}")
        super().__init__()
        self.out_keys = keys
        self.time_key = time_key
        self._t_reset = self._t_step = self._t_last = None
        self._policy = 0.0

    def _has_inverse(self) -> bool:
        return True  # the action path marks the start of a step

    def _write(self, td: TensorDictBase, step: float, policy: float, reset: float) -> None:
        dtype = torch.get_default_dtype()
        for key, value in zip(self.out_keys, (step, policy, reset)):
            td.set(key, torch.full(td.batch_size, value, dtype=dtype, device=td.device))

    def _call(self, td: TensorDictBase) -> TensorDictBase:
        raise ValueError("Timer times an env's resets and steps: use it in a TransformedEnv")

    def _reset_env_preprocess(self, td: TensorDictBase | None) -> TensorDictBase | None:
        self._t_reset = time.perf_counter()
        return td

    def _reset(self, td: TensorDictBase | None, td_reset: TensorDictBase) -> TensorDictBase:
        now = time.perf_counter()
        start = self._t_reset if self._t_reset is not None else now
        self._write(td_reset, 0.0, 0.0, now - start)
        self._t_last, self._t_reset = now, None
        return td_reset

    def _inv_call(self, td: TensorDictBase) -> TensorDictBase:
        now = time.perf_counter()
        self._policy = now - self._t_last if self._t_last is not None else 0.0
        self._t_step = now
        return td

    def _step(self, td: TensorDictBase, next_td: TensorDictBase) -> TensorDictBase:
        now = time.perf_counter()
        start = self._t_step if self._t_step is not None else now
        self._write(next_td, now - start, self._policy, 0.0)
        self._t_last, self._t_step = now, None
        return next_td

    def transform_output_spec(self, output_spec: Any) -> Any:
        """Add the three durations to the observations."""
        obs = output_spec["full_observation_spec"]
        for key in self.out_keys:
            obs[key] = Unbounded(
                shape=obs.shape,
                device=getattr(obs, "device", None),
                dtype=torch.get_default_dtype(),
            )
        output_spec["full_observation_spec"] = obs
        return output_spec

    def __repr__(self) -> str:
        return f"Timer(out_keys={self.out_keys!r})"
