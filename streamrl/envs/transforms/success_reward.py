"""SuccessReward: a sparse reward from a binary success signal.

>>> import torch
>>> from tensordict import TensorDict
>>> from streamrl.envs.transforms import SuccessReward
>>> td = TensorDict({"success": torch.tensor([[True], [False]])}, [2])
>>> SuccessReward(scale=2.0)(td)["reward"].squeeze(-1).tolist()
[2.0, 0.0]
"""

from __future__ import annotations

import math
from typing import Any

import torch
from tensordict import TensorDictBase
from tensordict.utils import NestedKey

from streamrl.data.specs import Bounded
from streamrl.envs.transforms._spec_utils import OUTPUT_PARTS
from streamrl.envs.transforms.expand_as import _one_key
from streamrl.envs.transforms.transform import Transform

__all__ = ["SuccessReward"]


class SuccessReward(Transform):
    """Write ``reward_key`` = ``scale`` where ``success_key`` is true and ``0`` elsewhere.

    In an env the reward is written by each step (never at reset) and the reward spec
    becomes a float32 :class:`~streamrl.data.specs.Bounded` spec over ``[0, scale]``
    shaped like the success entry's spec; on plain data (a replay-buffer sample) the
    transform reads and writes the given TensorDict.

    Args:
        success_key: the boolean (or 0/1) success entry. Default ``"success"``.
        reward_key: the reward entry written. Default ``"reward"``.

    Keyword Args:
        scale: the reward on success (a finite number). Default ``1.0``.

    >>> import torch
    >>> from tensordict import TensorDict
    >>> t = SuccessReward("done", "r", scale=-1.0)
    >>> t(TensorDict({"done": torch.tensor([0, 1])}))["r"]
    tensor([-0., -1.])
    """

    _per_step = True

    def __init__(
        self,
        success_key: NestedKey = "success",
        reward_key: NestedKey = "reward",
        *,
        scale: float = 1.0,
    ) -> None:
        success_key = _one_key(success_key, "success_key")
        reward_key = _one_key(reward_key, "reward_key")
        if (
            isinstance(scale, bool)
            or not isinstance(scale, (int, float))
            or not math.isfinite(scale)
        ):
            raise TypeError(f"scale must be a finite number, found {scale!r}")
        super().__init__([success_key], [reward_key])
        self.success_key = success_key
        self.reward_key = reward_key
        self.scale = float(scale)

    def _call(self, td: TensorDictBase) -> TensorDictBase:
        success = self._get(td, self.success_key)
        if success.dtype != torch.bool:
            if success.is_floating_point() or success.is_complex():
                bad = ~((success == 0) | (success == 1))
            else:
                bad = (success != 0) & (success != 1)
            if bool(bad.any()):
                raise ValueError(
                    f"SuccessReward: {self.success_key!r} must hold booleans or 0/1, found "
                    f"{success[bad].flatten()[:3].tolist()}"
                )
        td.set(self.reward_key, success.to(torch.float32) * self.scale)
        return td

    def _reset(self, td: TensorDictBase | None, td_reset: TensorDictBase) -> TensorDictBase:
        return td_reset  # rewards come with steps only

    def transform_output_spec(self, output_spec: Any) -> Any:
        """The reward spec: Bounded over ``[min(0, scale), max(0, scale)]``, float32."""
        success = None
        for part in OUTPUT_PARTS:
            if self.success_key in output_spec[part].keys(True, True):
                success = output_spec[part][self.success_key]
        if success is None:
            return output_spec
        low, high = min(0.0, self.scale), max(0.0, self.scale)
        output_spec["full_reward_spec"][self.reward_key] = Bounded(
            low, high, shape=success.shape, device=success.device, dtype=torch.float32
        )
        return output_spec

    def __repr__(self) -> str:
        return (
            f"SuccessReward(success_key={self.success_key!r}, reward_key={self.reward_key!r}, "
            f"scale={self.scale})"
        )
