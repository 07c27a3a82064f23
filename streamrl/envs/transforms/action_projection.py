"""DiscreteActionProjection: let a policy with ``max_actions`` one-hot actions drive an env
with fewer (``num_actions_effective``); out-of-range choices become random legal ones.

>>> import torch
>>> from tensordict import TensorDict
>>> from streamrl.envs.transforms import DiscreteActionProjection
>>> t = DiscreteActionProjection(num_actions_effective=2, max_actions=3)
>>> t.inv(TensorDict({"action": torch.tensor([1, 0, 0])}))["action"]
tensor([1, 0])
>>> t(TensorDict({"action": torch.tensor([0, 1])}))["action"]
tensor([0, 1, 0])
"""

from __future__ import annotations

from typing import Any

import torch
from tensordict import TensorDictBase
from tensordict.utils import NestedKey

from streamrl._utils.one_hot import one_hot
from streamrl.data.specs import OneHot
from streamrl.envs.transforms.transform import Transform, _check_td, as_keys

__all__ = ["DiscreteActionProjection"]


class DiscreteActionProjection(Transform):
    """Map one-hot actions over ``max_actions`` choices (what the policy writes) to one-hot
    actions over the env's ``num_actions_effective`` choices; a choice ``>=
    num_actions_effective`` is replaced by a uniformly random one below it.

    Args:
        num_actions_effective: the env's number of actions (M).
        max_actions: the policy's number of actions (N >= M).
        action_key: the action entry (default ``"action"``).
        include_forward: ``forward`` (a replay buffer or module chain) maps stored env
            actions back to the policy's size (zero-padded to N); default True. Inside an
            env only the action path runs.

    The action spec users see is a OneHot over N choices.
    """

    def __init__(
        self,
        num_actions_effective: int,
        max_actions: int,
        action_key: NestedKey = "action",
        include_forward: bool = True,
    ) -> None:
        for name, v in (
            ("num_actions_effective", num_actions_effective),
            ("max_actions", max_actions),
        ):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive int, found {v!r}")
        if max_actions < num_actions_effective:
            raise ValueError(
                f"max_actions must be >= num_actions_effective, found {max_actions} < "
                f"{num_actions_effective}"
            )
        keys = as_keys(action_key, "action_key")
        if len(keys) != 1:
            raise ValueError(f"action_key must be one key, found {action_key!r}")
        super().__init__(in_keys_inv=keys)
        self.num_actions_effective = num_actions_effective
        self.max_actions = max_actions
        self.action_key = keys[0]
        self.include_forward = bool(include_forward)

    def _check_size(self, value: torch.Tensor, n: int) -> None:
        if value.ndim == 0 or value.shape[-1] != n:
            raise ValueError(
                f"DiscreteActionProjection: expected one-hot actions with {n} choices (last "
                f"dim), found shape {tuple(value.shape)}"
            )

    def _inv_apply_transform(self, value: torch.Tensor) -> torch.Tensor:
        self._check_size(value, self.max_actions)
        m = self.num_actions_effective
        idx = (value.to(torch.uint8) if value.dtype == torch.bool else value).argmax(-1)
        out_of_range = idx >= m
        if bool(out_of_range.any()):
            random = torch.randint(m, idx.shape, device=idx.device)
            idx = torch.where(out_of_range, random, idx)
        return one_hot(idx, m, value.dtype)

    def _apply_transform(self, value: torch.Tensor) -> torch.Tensor:
        self._check_size(value, self.num_actions_effective)
        pad = self.max_actions - self.num_actions_effective
        return torch.nn.functional.pad(value, (0, pad))

    def _call(self, td: TensorDictBase) -> TensorDictBase:
        return td  # inside an env the observation path has no action to touch

    def forward(self, td: TensorDictBase) -> TensorDictBase:
        """With ``include_forward``, pad the stored env actions to ``max_actions`` choices."""
        _check_td(td, self)
        if self.include_forward:
            td.set(self.action_key, self._apply_transform(self._get(td, self.action_key)))
        return td

    def _inv_transform_spec(self, spec: Any) -> Any:
        if not isinstance(spec, OneHot):
            raise TypeError(
                f"DiscreteActionProjection needs a OneHot action spec, found {type(spec).__name__}"
            )
        if spec.shape[-1] != self.num_actions_effective:
            raise ValueError(
                f"the env has {spec.shape[-1]} actions, num_actions_effective is "
                f"{self.num_actions_effective}"
            )
        return OneHot(
            self.max_actions,
            shape=(*spec.shape[:-1], self.max_actions),
            device=spec.device,
            dtype=spec.dtype,
        )

    def __repr__(self) -> str:
        return (
            f"DiscreteActionProjection(num_actions_effective={self.num_actions_effective}, "
            f"max_actions={self.max_actions}, action_key={self.action_key!r})"
        )
