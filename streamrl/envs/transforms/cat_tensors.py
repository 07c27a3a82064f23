"""CatTensors: concatenate several entries into one (e.g. position and velocity into one
observation vector).

>>> import torch
>>> from tensordict import TensorDict
>>> from streamrl.envs.transforms import CatTensors
>>> td = TensorDict({"key1": torch.zeros(1, 1), "key2": torch.ones(1, 1)}, [1])
>>> CatTensors(in_keys=["key1", "key2"])(td)["observation_vector"]
tensor([[0., 1.]])
>>> "key1" in td.keys()
False
"""

from __future__ import annotations

from typing import Any

import torch
from tensordict import TensorDictBase
from tensordict.utils import NestedKey

from streamrl.data.specs import Bounded, Unbounded
from streamrl.envs.transforms.transform import Transform, as_keys

__all__ = ["CatTensors"]


def _sort_key(key: NestedKey) -> tuple:
    return (key,) if isinstance(key, str) else tuple(key)


class CatTensors(Transform):
    """Concatenate ``in_keys`` along ``dim`` into ``out_key``.

    Args:
        in_keys: the entries to concatenate. None: every observation entry of the parent env
            (resolved the first time the specs are read; the transform must then be in an env).
        out_key: the entry written (default ``"observation_vector"``).
        dim: the (negative, so batch-size independent) dim to concatenate along; default -1.

    Keyword Args:
        del_keys: remove the ``in_keys`` entries once concatenated (default True).
        unsqueeze_if_oor: give entries that lack ``dim`` (fewer dims than ``-dim``) a dim of
            size 1 there before concatenating (default False: such entries raise).
        sort: concatenate in sorted key order (default True) instead of the given order.

    The observation spec gains ``out_key`` (Bounded when every input is Bounded, Unbounded
    otherwise) and loses the ``in_keys`` when ``del_keys``.

    >>> import torch
    >>> from tensordict import TensorDict
    >>> t = CatTensors(in_keys=["b", "a"], dim=-2, unsqueeze_if_oor=True, sort=False)
    >>> t(TensorDict({"a": torch.zeros(3), "b": torch.ones(3)}))["observation_vector"]
    tensor([[1., 1., 1.],
            [0., 0., 0.]])
    """

    _per_step = True

    def __init__(
        self,
        in_keys: Any = None,
        out_key: NestedKey = "observation_vector",
        dim: int = -1,
        *,
        del_keys: bool = True,
        unsqueeze_if_oor: bool = False,
        sort: bool = True,
    ) -> None:
        if isinstance(dim, bool) or not isinstance(dim, int):
            raise TypeError(f"dim must be an int, found {dim!r}")
        if dim >= 0:
            raise ValueError(
                f"dim must be negative (counted from the end, whatever the batch size), found {dim}"
            )
        out = as_keys(out_key, "out_key")
        if len(out) != 1:
            raise ValueError(f"out_key must be one key, found {out_key!r}")
        self._resolved = in_keys is not None
        keys = as_keys(in_keys, "in_keys") if in_keys is not None else []
        if self._resolved and not keys:
            raise ValueError("in_keys must name at least one entry")
        self.sort = bool(sort)
        if self.sort:
            keys = sorted(keys, key=_sort_key)
        super().__init__(keys, keys)
        self.out_keys = out
        self.out_key = out[0]
        self.dim = dim
        self.del_keys = bool(del_keys)
        self.unsqueeze_if_oor = bool(unsqueeze_if_oor)

    # ------------------------------------------------------------------ keys
    def _resolve(self, observation_spec: Any) -> None:
        keys = [k for k in observation_spec.keys(True, True) if k != self.out_key]
        if not keys:
            raise ValueError("CatTensors: the parent env has no observation entry to concatenate")
        self.in_keys = sorted(keys, key=_sort_key) if self.sort else keys
        self._resolved = True

    def _ensure_keys(self) -> None:
        if self._resolved:
            return
        parent = self.parent
        if parent is None:
            raise ValueError(
                "CatTensors was built without in_keys: it learns them from its parent env, and "
                "has none; pass in_keys to use it outside an env"
            )
        self._resolve(parent.full_observation_spec)

    # ------------------------------------------------------------------ data
    def _prepare(self, value: torch.Tensor, batch_dims: int) -> torch.Tensor:
        if value.ndim - batch_dims < -self.dim:
            if not self.unsqueeze_if_oor:
                raise ValueError(
                    f"CatTensors: an entry of shape {tuple(value.shape)} has no dim {self.dim} "
                    "beyond its batch dims (pass unsqueeze_if_oor=True to add it)"
                )
            value = value.unsqueeze(self.dim)
        return value

    def _call(self, td: TensorDictBase) -> TensorDictBase:
        self._ensure_keys()
        values = [self._prepare(self._get(td, k), td.batch_dims) for k in self.in_keys]
        td.set(self.out_key, torch.cat(values, self.dim))
        if self.del_keys:
            for key in self.in_keys:
                if key != self.out_key:
                    td.del_(key)
        return td

    def _reset(self, td: TensorDictBase | None, td_reset: TensorDictBase) -> TensorDictBase:
        return self._call(td_reset)

    # ------------------------------------------------------------------ specs
    def transform_observation_spec(self, spec: Any) -> Any:
        """Add ``out_key``; drop the ``in_keys`` when ``del_keys``."""
        if not self._resolved:
            self._resolve(spec)
        present = set(spec.keys(True, True))
        missing = [k for k in self.in_keys if k not in present]
        if missing:
            raise KeyError(
                f"CatTensors: in_keys {missing} are not observation entries; the env has "
                f"{sorted(str(k) for k in present)}"
            )
        nb = len(spec.shape)
        subs = [spec[k] for k in self.in_keys]
        zeros = [self._prepare(s.zero(), nb) for s in subs]
        try:
            cat = torch.cat(zeros, self.dim)
        except RuntimeError as err:
            shapes = [tuple(s.shape) for s in subs]
            raise ValueError(
                f"CatTensors: entries {self.in_keys} of shapes {shapes} cannot be concatenated "
                f"along dim {self.dim}"
            ) from err
        device = subs[0].device
        if all(isinstance(s, Bounded) for s in subs):
            low = torch.cat([self._prepare(s.low, nb) for s in subs], self.dim).to(cat.dtype)
            high = torch.cat([self._prepare(s.high, nb) for s in subs], self.dim).to(cat.dtype)
            new = Bounded(low, high, shape=cat.shape, device=device, dtype=cat.dtype)
        else:
            new = Unbounded(shape=cat.shape, device=device, dtype=cat.dtype)
        if self.del_keys:
            for key in self.in_keys:
                if key != self.out_key:
                    del spec[key]
        spec[self.out_key] = new
        return spec

    def transform_reward_spec(self, spec: Any) -> Any:
        """Unchanged: CatTensors concatenates observations."""
        return spec

    def __repr__(self) -> str:
        return (
            f"CatTensors(in_keys={self.in_keys!r}, out_key={self.out_key!r}, dim={self.dim}, "
            f"del_keys={self.del_keys})"
        )
