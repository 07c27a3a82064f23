"""VecNorm: normalize entries with running (exponentially decayed) statistics.

>>> import torch
>>> from tensordict import TensorDict
>>> from streamrl.envs.transforms import VecNorm
>>> t = VecNorm(in_keys=["observation"], decay=1.0)
>>> td = TensorDict({"observation": torch.tensor([[1.0], [3.0]])}, batch_size=[2])
>>> t(td)["observation"]
tensor([[-1.],
        [ 1.]])
"""

from __future__ import annotations

from typing import Any

import torch
from tensordict import TensorDictBase

from streamrl.data.specs import Unbounded
from streamrl.envs.transforms.observation_norm import ObservationNorm
from streamrl.envs.transforms.transform import Transform, keys_repr, reset_mask

__all__ = ["VecNorm"]

_STATS = ("sum", "ssq", "count")


def _stat_prefix(key: Any) -> str:
    name = "__".join(key) if isinstance(key, tuple) else key
    return name.replace(".", "_")


class VecNorm(Transform):
    """Normalize each ``in_keys`` entry by a running mean and standard deviation.

    Every batch of outputs (reset and step, all sub-envs of a batched env) updates
    decayed sums ``sum = decay * sum + sum(x)``, ``ssq = decay * ssq + sum(x**2)`` and
    ``count = decay * count + n`` (float64), then the entry becomes
    ``(x - mean) / sqrt(max(var, eps))``. The statistics are buffers, saved in
    ``state_dict``; :meth:`freeze` stops updating them (evaluation, replay data), and
    :meth:`to_observation_norm` exports them as a fixed :class:`ObservationNorm`.

    Args:
        in_keys: entries to normalize (default ``["observation"]``).
        decay: weight of the past statistics at each update (1.0 keeps all history).
        eps: lower bound of the variance.
    """

    def __init__(
        self,
        in_keys: Any = None,
        out_keys: Any = None,
        decay: float = 0.9999,
        eps: float = 1e-4,
    ) -> None:
        super().__init__(["observation"] if in_keys is None else in_keys, out_keys)
        if not 0.0 < decay <= 1.0:
            raise ValueError(f"decay must be in (0, 1], found {decay}")
        if eps <= 0:
            raise ValueError(f"eps must be positive, found {eps}")
        self.decay = float(decay)
        self.eps = float(eps)
        self.frozen = False
        for key in self.in_keys:
            for stat in _STATS:
                self.register_buffer(f"{_stat_prefix(key)}_{stat}", None)

    # ------------------------------------------------------------------ statistics
    def freeze(self) -> VecNorm:
        """Stop updating the statistics (outputs are still normalized)."""
        self.frozen = True
        return self

    def unfreeze(self) -> VecNorm:
        """Resume updating the statistics."""
        self.frozen = False
        return self

    def _stats(self, key: Any) -> tuple[torch.Tensor | None, ...]:
        p = _stat_prefix(key)
        return tuple(getattr(self, f"{p}_{s}") for s in _STATS)

    def _samples(self, value: torch.Tensor, batch_dims: int) -> torch.Tensor:
        """The rows an update adds: every batch element, as float64 ``[n, *feature]``."""
        return value.detach().reshape(-1, *value.shape[batch_dims:]).to(torch.float64)

    def _store(self, key: Any, total: torch.Tensor, ssq: torch.Tensor, count: torch.Tensor) -> None:
        p = _stat_prefix(key)
        setattr(self, f"{p}_sum", total)
        setattr(self, f"{p}_ssq", ssq)
        setattr(self, f"{p}_count", count)

    def _update(self, key: Any, value: torch.Tensor, batch_dims: int) -> None:
        flat = self._samples(value, batch_dims)
        feat = flat.shape[1:]
        total, ssq, count = self._stats(key)
        if total is None:
            total = torch.zeros(feat, dtype=torch.float64, device=value.device)
            ssq = torch.zeros_like(total)
            count = torch.zeros((), dtype=torch.float64, device=value.device)
        elif total.shape != feat:
            raise ValueError(
                f"{type(self).__name__}: entry {key!r} has non-batch shape {tuple(feat)}, but "
                f"the statistics were gathered for shape {tuple(total.shape)}"
            )
        self._store(
            key,
            self.decay * total + flat.sum(0),
            self.decay * ssq + flat.pow(2).sum(0),
            self.decay * count + flat.shape[0],
        )

    def mean_std(self, key: Any = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The current mean and standard deviation of ``key`` (the first in_key by default)."""
        key = self.in_keys[0] if key is None else key
        total, ssq, count = self._stats(key)
        if total is None or float(count) == 0.0:
            raise RuntimeError(f"{type(self).__name__} has no statistics for {key!r} yet")
        mean = total / count
        var = (ssq / count - mean.pow(2)).clamp_min(self.eps)
        return mean, var.sqrt()

    def to_observation_norm(self) -> ObservationNorm:
        """A fixed :class:`ObservationNorm` with the current statistics (one in_key only)."""
        if len(self.in_keys) != 1:
            raise ValueError(f"to_observation_norm needs a single in_key, found {self.in_keys}")
        mean, std = self.mean_std()
        return ObservationNorm(
            loc=mean.float(),
            scale=std.float(),
            in_keys=self.in_keys,
            out_keys=self.out_keys,
            standard_normal=True,
        )

    # ------------------------------------------------------------------ data
    def _call(self, td: TensorDictBase, rows: torch.Tensor | None = None) -> TensorDictBase:
        for in_key, out_key in zip(self.in_keys, self.out_keys):
            value = self._get(td, in_key)
            if not self.frozen:
                if rows is None:
                    self._update(in_key, value, td.batch_dims)
                else:
                    self._update(in_key, value[rows], 1)
            mean, std = self.mean_std(in_key)
            dtype = value.dtype if value.is_floating_point() else torch.float32
            td.set(out_key, ((value - mean) / std).to(dtype))
        return td

    def _reset(self, td: TensorDictBase | None, td_reset: TensorDictBase) -> TensorDictBase:
        # A partial reset returns every row, but only the reset rows are new data.
        mask = reset_mask(td, td_reset)
        if mask is None:
            return super()._reset(td, td_reset)
        present = [k for k in self.in_keys if k in td_reset.keys(True)]
        if not present:
            return td_reset
        in_keys, out_keys = self.in_keys, self.out_keys
        pairs = [(i, o) for i, o in zip(in_keys, out_keys) if i in present]
        self.in_keys, self.out_keys = [p[0] for p in pairs], [p[1] for p in pairs]
        try:
            return self._call(td_reset, rows=mask.reshape(td_reset.batch_size).bool())
        finally:
            self.in_keys, self.out_keys = in_keys, out_keys

    def _transform_spec(self, spec: Any) -> Any:
        dtype = spec.dtype if spec.dtype.is_floating_point else torch.float32
        return Unbounded(shape=spec.shape, device=spec.device, dtype=dtype)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # Lazily created statistics: adopt the saved shapes before loading values.
        for key in self.in_keys:
            for stat in _STATS:
                name = f"{_stat_prefix(key)}_{stat}"
                saved = state_dict.get(prefix + name)
                if saved is not None:
                    setattr(self, name, torch.empty_like(saved))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def __repr__(self) -> str:
        return (
            f"VecNorm(decay={self.decay}, eps={self.eps}, frozen={self.frozen}, "
            f"keys={keys_repr(self.in_keys)})"
        )
