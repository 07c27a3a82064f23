"""AutoResetTransform: the TorchRL view of an env that resets itself when an episode ends.

Some envs (vectorized simulators, gymnasium's vector envs) start the next episode inside the
step that ends one: the step returns the first observation of the next episode where the
last observation of the finished one should be. The transform keeps that observation for
the reset that follows, and (``replace``) fills the step's observations with a marker value.

>>> import torch
>>> from streamrl.envs.libs.gym import GymEnv
>>> from streamrl.envs.transforms import AutoResetTransform, TransformedEnv
>>> class AutoResettingCartPole(GymEnv):
...     def _step(self, td):
...         out = super()._step(td)
...         if out["done"].any():  # start the next episode at once
...             out.update(super()._reset(None).exclude("done", "terminated", "truncated"))
...         return out
...     def _reset(self, td=None, **kwargs):
...         if td is not None and "_reset" in td.keys():
...             return td.copy()  # already reset by the step
...         return super()._reset(td, **kwargs)
>>> env = TransformedEnv(AutoResettingCartPole("CartPole-v1"), AutoResetTransform())
>>> _ = env.set_seed(0), torch.manual_seed(0)
>>> r = env.rollout(100, break_when_any_done=False)
>>> done = r["next", "done"].squeeze(-1)
>>> bool(done.any()), bool(r["next", "observation"][done].isnan().all())
(True, True)
>>> # the step after a done one starts from the kept observation
>>> bool(r["observation"][1:][done[:-1]].isfinite().all())
True
>>> env.close()
"""

from __future__ import annotations

from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase

from streamrl.envs.transforms.transform import RESET_KEY, Transform, reset_mask

__all__ = ["AutoResetTransform"]

_FLAGS = ("done", "terminated", "truncated")


def _fill_value(value: Any, name: str, kind: type) -> Any:
    if value is None:
        return None
    if kind is float:
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                raise ValueError(f"{name} must be a float, 'nan' or None, found {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"{name} must be a float or None, found {value!r}")
        return float(value)
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must be an int or None, found {value!r}")
        return value
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool or None, found {value!r}")
    return value


class AutoResetTransform(Transform):
    """Make an auto-resetting env look like one that resets when asked.

    The env it wraps must start the next episode inside the step that ends one (the
    step's observations are those of the next episode) and, when its reset is given a
    ``"_reset"`` entry, leave the env as it is (the reset already happened). On a done
    step the transform keeps the observation entries of the done rows and, unless
    ``replace=False``, replaces them in the step output with ``fill_float`` (floating point
    entries), ``fill_int`` (signed integers) or ``fill_bool`` (booleans); unsigned entries
    (images) and entries whose fill value is None are left as they are. The reset that
    follows (``maybe_reset`` and rollouts call it for the done rows) passes ``"_reset"`` to
    the env and returns the kept observations, with the done flags cleared.

    Put it first (nearest the env), and inside the sub-envs of a batched env: a
    ``SerialEnv`` resets its sub-envs without ``"_reset"``.

    Keyword Args:
        replace: fill the observations of done steps (default True); False keeps them
            as the env returned them and overrides the fill values.
        fill_float: value for floating point entries (default ``"nan"``).
        fill_int: value for signed integer entries (default -1).
        fill_bool: value for boolean entries (default False).
    """

    def __init__(
        self,
        *,
        replace: bool | None = None,
        fill_float: Any = "nan",
        fill_int: Any = -1,
        fill_bool: Any = False,
    ) -> None:
        super().__init__()
        self.replace = True if replace is None else bool(replace)
        self.fill_float = _fill_value(fill_float, "fill_float", float)
        self.fill_int = _fill_value(fill_int, "fill_int", int)
        self.fill_bool = _fill_value(fill_bool, "fill_bool", bool)
        self._obs_keys: list | None = None  # learnt from the specs
        self._kept: dict = {}  # observation entries of the last done step
        self._pending: torch.Tensor | None = None  # rows whose kept observation awaits reset

    def reset_state(self) -> None:
        """Forget the kept observations."""
        self._kept = {}
        self._pending = None

    def _fill_for(self, value: torch.Tensor) -> Any:
        if value.dtype == torch.bool:
            return self.fill_bool
        if value.is_floating_point():
            return self.fill_float
        if value.dtype.is_signed and not value.is_complex():
            return self.fill_int
        return None

    def _keys(self, td: TensorDictBase) -> list:
        if self._obs_keys is not None:
            return [k for k in self._obs_keys if k in td.keys(True, True)]
        return [k for k in td.keys(True, True) if (k if isinstance(k, str) else k[0]) not in
                (*_FLAGS, "reward")]

    # ------------------------------------------------------------------ data
    def _step(self, td: TensorDictBase, next_td: TensorDictBase) -> TensorDictBase:
        done = next_td.get("done", None)
        if done is None:
            raise KeyError("AutoResetTransform: the step output has no 'done' entry")
        rows = done.reshape(*next_td.batch_size, -1).any(-1)
        if not bool(rows.any()):
            return next_td
        pending = rows if self._pending is None else self._pending | rows
        for key in self._keys(next_td):
            value = next_td.get(key)
            kept = self._kept.get(key)
            m = rows.reshape(*rows.shape, *([1] * (value.ndim - rows.ndim)))
            self._kept[key] = value.clone() if kept is None else torch.where(m, value, kept)
            fill = self._fill_for(value) if self.replace else None
            if fill is not None:
                next_td.set(key, torch.where(m, torch.full_like(value, fill), value))
        self._pending = pending
        return next_td

    def _call(self, td: TensorDictBase) -> TensorDictBase:
        return td

    def _reset_env_preprocess(self, td: TensorDictBase | None) -> TensorDictBase | None:
        pending = self._pending
        if pending is None or not bool(pending.any()):
            return td
        if td is not None and RESET_KEY in td.keys():
            return td  # a partial reset: the env leaves the other rows as they are
        if not bool(pending.all()):
            self.reset_state()  # a full reset of an env with rows still running: a real one
            return td
        batch = pending.shape
        if td is None:
            td = TensorDict(batch_size=batch)
        td.set(RESET_KEY, torch.ones(*batch, 1, dtype=torch.bool, device=td.device))
        return td

    def _reset(self, td: TensorDictBase | None, td_reset: TensorDictBase) -> TensorDictBase:
        if RESET_KEY in td_reset.keys():  # the mask this transform may have added is no output
            td_reset = td_reset.exclude(RESET_KEY)
        pending = self._pending
        if pending is None:
            return td_reset
        asked = reset_mask(td, td_reset)
        if asked is None:
            asked = torch.ones_like(pending) if td is not None and RESET_KEY in td.keys() else None
        if asked is None:  # a reset the env really did (the first one, or a full one)
            self.reset_state()
            return td_reset
        rows = pending & asked.reshape(pending.shape).bool()
        for key, kept in self._kept.items():
            m = rows.reshape(*rows.shape, *([1] * (kept.ndim - rows.ndim)))
            current = td_reset.get(key, None)
            td_reset.set(key, kept.clone() if current is None else torch.where(m, kept, current))
        for key in _FLAGS:
            flag = td_reset.get(key, None)
            if flag is not None:
                m = rows.reshape(*rows.shape, *([1] * (flag.ndim - rows.ndim)))
                td_reset.set(key, flag & ~m)
        self._pending = pending & ~rows
        return td_reset

    # ------------------------------------------------------------------ specs
    def transform_output_spec(self, output_spec: Any) -> Any:
        """Unchanged; the observation keys are learnt from it."""
        self._obs_keys = list(output_spec["full_observation_spec"].keys(True, True))
        return output_spec

    def __repr__(self) -> str:
        return (
            f"AutoResetTransform(replace={self.replace}, fill_float={self.fill_float}, "
            f"fill_int={self.fill_int}, fill_bool={self.fill_bool})"
        )
