"""TimeMaxPool: each observation becomes its elementwise maximum over the last ``T`` steps
of the episode (e.g. Atari frames that flicker).

>>> from streamrl.envs.libs.gym import GymEnv
>>> from streamrl.envs.transforms import TimeMaxPool, TransformedEnv
>>> env = TransformedEnv(GymEnv("Pendulum-v1"), TimeMaxPool(["observation"], T=3))
>>> env.rollout(4)["next", "observation"].shape
torch.Size([4, 3])
>>> env.close()
"""

from __future__ import annotations

from typing import Any

import torch
from tensordict import TensorDictBase
from tensordict.utils import NestedKey

from streamrl.envs.transforms.transform import Transform, as_keys, reset_mask

__all__ = ["TimeMaxPool"]


class TimeMaxPool(Transform):
    """Replace each ``in_keys`` entry by its elementwise max over the episode's last ``T``
    steps (fewer right after a reset: the reset observation counts from the start).

    Args:
        in_keys: the entries pooled (default ``["observation"]``).
        out_keys: where the pooled values go (default: in place).
        T: the window (steps, >= 1; 1 leaves values as they are).
        reset_key: the reset-mask entry of the reset input (default ``"_reset"``): in a
            partial reset of a batched env only those sub-envs restart their window.

    The window is per env (state kept between steps), so the transform works inside a
    TransformedEnv only. Specs are unchanged (a max of values in a spec is in it).
    """

    def __init__(
        self,
        in_keys: Any = None,
        out_keys: Any = None,
        T: int = 1,
        reset_key: NestedKey | None = None,
    ) -> None:
        if isinstance(T, bool) or not isinstance(T, int) or T < 1:
            raise ValueError(f"T must be a positive int, found {T!r}")
        super().__init__(["observation"] if in_keys is None else in_keys, out_keys)
        self.T = T
        self.reset_key = "_reset" if reset_key is None else as_keys(reset_key, "reset_key")[0]
        # per in_key: the last T values, [T, *batch, *feature]
        self._window: dict[Any, torch.Tensor] = {}
        self._slot: dict[Any, int] = {}  # where the next value goes in each window

    def _call(self, td: TensorDictBase) -> TensorDictBase:
        raise ValueError("TimeMaxPool pools over an env's last steps: use it in a TransformedEnv")

    def _reset(self, td: TensorDictBase | None, td_reset: TensorDictBase) -> TensorDictBase:
        mask = None
        if td is not None and td.get(self.reset_key, None) is not None:
            mask = reset_mask(_with_mask(td, self.reset_key), td_reset)
        for in_key, out_key in zip(self.in_keys, self.out_keys):
            value = td_reset.get(in_key, None)
            if value is None:
                continue
            fresh = value.unsqueeze(0).expand(self.T, *value.shape).clone()
            old = self._window.get(in_key)
            if mask is not None and old is not None and old.shape == fresh.shape:
                m = mask.reshape(1, *mask.shape, *([1] * (value.ndim - mask.ndim)))
                fresh = torch.where(m, fresh, old)
            self._window[in_key] = fresh
            td_reset.set(out_key, torch.amax(fresh, 0))
        return td_reset

    def _step(self, td: TensorDictBase, next_td: TensorDictBase) -> TensorDictBase:
        for in_key, out_key in zip(self.in_keys, self.out_keys):
            value = next_td.get(in_key, None)
            if value is None:
                continue
            window = self._window.get(in_key)
            if window is None or window.shape[1:] != value.shape:
                window = value.unsqueeze(0).expand(self.T, *value.shape).clone()
                self._window[in_key] = window
            else:
                # a ring: the oldest value is overwritten in place (no copy of the window)
                slot = self._slot.get(in_key, 0)
                window[slot].copy_(value)
                self._slot[in_key] = (slot + 1) % self.T
            pooled = torch.maximum(window[0], window[1]) if self.T == 2 else torch.amax(window, 0)
            next_td.set(out_key, pooled)
        return next_td

    def reset_state(self) -> None:
        """Forget the windows."""
        self._window.clear()
        self._slot.clear()

    def __repr__(self) -> str:
        return f"TimeMaxPool(T={self.T}, in_keys={self.in_keys!r}, out_keys={self.out_keys!r})"


def _with_mask(td: TensorDictBase, key: NestedKey) -> TensorDictBase:
    """``td`` with its reset mask under ``"_reset"`` (where ``reset_mask`` reads it)."""
    if key == "_reset":
        return td
    return td.select(key).set("_reset", td.get(key))
