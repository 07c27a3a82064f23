"""MultiAction: several actions per step, executed one by one in the parent env.

>>> import torch
>>> from tensordict import TensorDict
>>> from streamrl.envs.libs.gym import GymEnv
>>> from streamrl.envs.transforms import MultiAction, TransformedEnv
>>> env = TransformedEnv(GymEnv("Pendulum-v1"), MultiAction(chunk_size=4))
>>> env.action_spec.shape
torch.Size([4, 1])
>>> td = env.step(env.reset().set("action", torch.zeros(4, 1)))
>>> td["next", "reward"].shape  # one reward per action
torch.Size([4, 1])
>>> env.close()
"""

from __future__ import annotations

from typing import Any

import torch
from tensordict import TensorDictBase
from tensordict.utils import NestedKey

from streamrl.envs.transforms.expand_as import _one_key
from streamrl.envs.transforms.frame_skip import parent_input
from streamrl.envs.transforms.transform import Transform

__all__ = ["MultiAction"]


class MultiAction(Transform):
    """Execute a stack of actions (along ``dim``) one after the other in the parent env
    (the base env wrapped in the transforms before this one) within one step.

    Users (policies) write ``chunk_key`` with an extra dim at ``dim``; each action is
    stepped in turn, each step starting from the previous one's outputs. The repetition
    stops at the first step where any (sub-)env is done. Transforms before this one run
    once per action, transforms after it once per chunk.

    Keyword Args:
        dim: where the actions are stacked, counted in dims of the root TensorDict (``1``
            is the first dim after the batch dims); must be > 0. Default ``1``.
        stack_rewards: return every action's reward stacked at ``dim`` (zeros for actions
            skipped after a done step), else only the last step's reward. Default ``True``.
        stack_observations: return every step's observations stacked at ``dim`` (the last
            one repeated for skipped actions; a reset repeats its observations), else the
            last step's. Default ``False``. Transforms before this one that read the
            previous step's entries (a StepCounter) would then read stacked ones: put them
            after it.
        action_key: the one-step action the parent env reads; defaults to the parent's
            action key.
        chunk_key: the stacked actions users write; defaults to ``action_key``.
        chunk_size: the number of actions per step, which makes the specs' stack dim that
            size. ``None`` (the default, as in TorchRL) leaves it ``-1``: any chunk length,
            but no random actions from the spec.

    >>> import torch
    >>> from tensordict import TensorDict
    >>> t = MultiAction(action_key="action")
    >>> t.inv(TensorDict({"action": torch.tensor([[1.0], [2.0]])}))["action"]  # the first
    tensor([1.])
    """

    def __init__(
        self,
        *,
        dim: int = 1,
        stack_rewards: bool = True,
        stack_observations: bool = False,
        action_key: NestedKey | None = None,
        chunk_key: NestedKey | None = None,
        chunk_size: int | None = None,
    ) -> None:
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise ValueError(
                f"dim must be an int > 0 (counted after the batch dims), found {dim!r}"
            )
        if chunk_size is not None and (
            isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1
        ):
            raise ValueError(f"chunk_size must be a positive int or None, found {chunk_size!r}")
        super().__init__()
        self.dim = dim
        self.stack_rewards = bool(stack_rewards)
        self.stack_observations = bool(stack_observations)
        self._action_key = None if action_key is None else _one_key(action_key, "action_key")
        self._chunk_key = None if chunk_key is None else _one_key(chunk_key, "chunk_key")
        self.chunk_size = chunk_size
        self._obs_keys: list = []

    # ------------------------------------------------------------------ keys
    @property
    def action_key(self) -> NestedKey:
        """The one-step action the parent env reads."""
        if self._action_key is not None:
            return self._action_key
        parent = self.parent
        return "action" if parent is None else parent.action_key

    @property
    def chunk_key(self) -> NestedKey:
        """The stacked actions users write."""
        return self.action_key if self._chunk_key is None else self._chunk_key

    def _has_inverse(self) -> bool:
        return True

    def _abs(self, batch_dims: int) -> int:
        return batch_dims + self.dim - 1

    # ------------------------------------------------------------------ data
    def _inv_call(self, td: TensorDictBase) -> TensorDictBase:
        chunk = self._get(td, self.chunk_key)
        d = self._abs(td.batch_dims)
        if chunk.ndim <= d or chunk.shape[d] == 0:
            raise ValueError(
                f"MultiAction: {self.chunk_key!r} of shape {tuple(chunk.shape)} has no actions "
                f"stacked at dim {self.dim} (after {td.batch_dims} batch dims)"
            )
        if self.chunk_size is not None and chunk.shape[d] != self.chunk_size:
            raise ValueError(
                f"MultiAction: {self.chunk_key!r} holds {chunk.shape[d]} actions at dim "
                f"{self.dim}, expected chunk_size={self.chunk_size}"
            )
        td.set(self.action_key, chunk.select(d, 0))
        # the parent reads one step's observations, not their stack
        for key in self._obs_keys:
            value = td.get(key, None)
            if value is not None and value.ndim > d:
                td.set(key, value.select(d, -1))
        return td

    def _step(self, td: TensorDictBase, next_td: TensorDictBase) -> TensorDictBase:
        parent = self.parent
        if parent is None:
            raise ValueError("MultiAction steps its parent env: put it in a TransformedEnv")
        reward_keys = list(parent.full_reward_spec.keys(True, True))
        done_keys = list(parent.full_done_spec.keys(True, True))
        full = parent_input(self, td)
        chunk = self._get(full, self.chunk_key)
        td_in = self._inv_call(full.clone(False))
        d = self._abs(td.batch_dims)
        n = chunk.shape[d]
        steps = [next_td]
        for k in range(1, n):
            if any(bool(next_td.get(key).any()) for key in done_keys if key in next_td.keys(True)):
                break
            td_k = td_in.clone(False).update(next_td.exclude(*reward_keys, *done_keys))
            td_k.set(self.action_key, chunk.select(d, k))
            next_td = parent._step(td_k)
            steps.append(next_td)
        out = next_td
        if self.stack_rewards:
            for key in reward_keys:
                values = [s.get(key) for s in steps]
                values += [torch.zeros_like(values[0])] * (n - len(values))
                out.set(key, torch.stack(values, d))
        if self.stack_observations:
            for key in self._obs_keys:
                values = [s.get(key) for s in steps if key in s.keys(True)]
                if values:
                    values += [values[-1]] * (n - len(values))
                    out.set(key, torch.stack(values, d))
        return out

    def _reset(self, td: TensorDictBase | None, td_reset: TensorDictBase) -> TensorDictBase:
        if self.stack_observations and self.chunk_size is not None:
            d = self._abs(td_reset.batch_dims)
            for key in self._obs_keys:
                value = td_reset.get(key, None)
                if value is not None:
                    value = value.unsqueeze(d)
                    shape = list(value.shape)
                    shape[d] = self.chunk_size
                    td_reset.set(key, value.expand(shape).clone())
        return td_reset

    def _call(self, td: TensorDictBase) -> TensorDictBase:
        return td  # on plain data there is nothing to step

    # ------------------------------------------------------------------ specs
    def _stacked(self, spec: Any, batch_dims: int) -> Any:
        d = self._abs(batch_dims)
        spec = spec.unsqueeze(d)
        shape = list(spec.shape)
        shape[d] = -1 if self.chunk_size is None else self.chunk_size
        return spec.expand(shape)

    def transform_observation_spec(self, spec: Any) -> Any:
        """With ``stack_observations``, every observation gets the stack dim."""
        self._obs_keys = list(spec.keys(True, True))
        if self.stack_observations:
            nb = len(spec.shape)
            for key in self._obs_keys:
                spec[key] = self._stacked(spec[key], nb)
        return spec

    def transform_reward_spec(self, spec: Any) -> Any:
        """With ``stack_rewards``, every reward gets the stack dim."""
        if self.stack_rewards:
            nb = len(spec.shape)
            for key in list(spec.keys(True, True)):
                spec[key] = self._stacked(spec[key], nb)
        return spec

    def transform_action_spec(self, spec: Any) -> Any:
        """The action users write: the parent's, stacked at ``dim``, under ``chunk_key``."""
        action_key = self._action_key
        if action_key is None:
            action_key = next(iter(spec.keys(True, True)))
        if action_key not in spec.keys(True, True):
            return spec
        chunk_key = action_key if self._chunk_key is None else self._chunk_key
        stacked = self._stacked(spec[action_key], len(spec.shape))
        if chunk_key != action_key:
            del spec[action_key]
        spec[chunk_key] = stacked
        return spec

    def __repr__(self) -> str:
        return (
            f"MultiAction(dim={self.dim}, stack_rewards={self.stack_rewards}, "
            f"stack_observations={self.stack_observations}, chunk_size={self.chunk_size})"
        )
