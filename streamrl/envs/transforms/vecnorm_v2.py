"""VecNormV2: VecNorm's running normalization with statistics that worker processes share,
or that travel in the data (stateless).

>>> import torch
>>> from tensordict import TensorDict
>>> from streamrl.envs.transforms import VecNormV2
>>> t = VecNormV2(in_keys=["observation"], decay=1.0)
>>> td = TensorDict({"observation": torch.tensor([[1.0], [3.0]])}, batch_size=[2])
>>> t(td)["observation"]
tensor([[-1.],
        [ 1.]])
>>> t.loc["observation"], t.scale["observation"]
(tensor([2.], dtype=torch.float64), tensor([1.], dtype=torch.float64))
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase
from tensordict.utils import NestedKey

from streamrl.data.specs import Unbounded
from streamrl.envs.transforms._shared import (
    deepcopy_sharing,
    getstate_sharing,
    new_lock,
    setstate_sharing,
)
from streamrl.envs.transforms.transform import _check_td, reset_mask
from streamrl.envs.transforms.vecnorm import _STATS, VecNorm, _stat_prefix

__all__ = ["VecNormV2"]

STATS_KEY = "vecnorm_stats"  # where a stateless VecNormV2 carries its statistics
_SHARED = ("_shared_stats",)


class VecNormV2(VecNorm):
    """:class:`VecNorm` (same statistics: decayed sums, float64) with TorchRL 0.14's newer
    interface.

    Stateful (default): the statistics live in a shared-memory TensorDict, updated in place
    under a process lock, so that copies of the transform (``copy.deepcopy``, the envs a
    ``ParallelEnv`` builds in its workers from a transform made in the parent) pool what
    they see. The statistics are created from the env's specs (or the first data): build
    the transform once, read its env's specs, then give each worker a copy. ``state_dict``
    holds them (``_extra_state``); ``loc`` / ``scale`` give the mean and standard deviation
    per key, :meth:`denorm` undoes the normalization.

    Stateless (``stateful=False``): the statistics travel in the data, under
    ``("vecnorm_stats", <key>, "sum" | "ssq" | "count")``: reset writes empty ones, each step
    reads them from its input and writes the updated ones with its output.

    Args:
        in_keys: entries to normalize (e.g. ``["observation", "reward"]``).
        out_keys: where the normalized values go (default ``in_keys``).

    Keyword Args:
        lock: the process lock guarding updates (default: a new one).
        stateful: keep the statistics in the transform (default True).
        decay: weight of the past statistics at each update (default 0.9999).
        eps: lower bound of the variance (default 1e-4).
        shared_data: statistics to start from and share: a TensorDict
            ``{<key>: {"sum", "ssq", "count"}}`` (e.g. another VecNormV2's ``shared_data``);
            stateful only.
        reduce_batch_dims: update with the mean over the batch dims (one sample per update)
            instead of every element; stateful only.
    """

    def __init__(
        self,
        in_keys: Sequence[NestedKey],
        out_keys: Sequence[NestedKey] | None = None,
        *,
        lock: Any = None,
        stateful: bool = True,
        decay: float = 0.9999,
        eps: float = 1e-4,
        shared_data: TensorDictBase | None = None,
        reduce_batch_dims: bool = False,
    ) -> None:
        if in_keys is None:
            raise ValueError("VecNormV2 needs in_keys (e.g. ['observation', 'reward'])")
        if not stateful and (shared_data is not None or reduce_batch_dims):
            raise ValueError(
                "shared_data and reduce_batch_dims need stateful=True (a stateless VecNormV2 "
                "reads its statistics from the data)"
            )
        if shared_data is not None and not isinstance(shared_data, TensorDictBase):
            raise TypeError(f"shared_data must be a TensorDict, found {type(shared_data).__name__}")
        super().__init__(in_keys, out_keys, decay=decay, eps=eps)
        self.stateful = bool(stateful)
        self.reduce_batch_dims = bool(reduce_batch_dims)
        object.__setattr__(self, "_lock", new_lock() if lock is None else lock)
        if shared_data is not None:
            self._check_shared(shared_data)
            if not shared_data.is_shared():
                shared_data.share_memory_()
        object.__setattr__(self, "_shared_stats", shared_data)
        self._feature_shapes: dict = {}  # non-batch shape of each in_key, from the specs

    def _check_shared(self, data: TensorDictBase) -> None:
        for key in self.in_keys:
            p = _stat_prefix(key)
            found = set(data.get(p).keys()) if p in data.keys() else set()
            if found != set(_STATS):
                raise ValueError(
                    f"shared_data must hold {list(_STATS)} under {p!r} for in_key {key!r}, "
                    f"found {sorted(found)}"
                )

    # ------------------------------------------------------------------ copies share
    def __deepcopy__(self, memo: dict) -> VecNormV2:
        return deepcopy_sharing(self, memo)

    def __getstate__(self) -> dict:
        return getstate_sharing(super().__getstate__(), _SHARED)

    def __setstate__(self, state: dict) -> None:
        super().__setstate__(state)
        setstate_sharing(self, _SHARED)

    def clone(self) -> VecNormV2:
        """An independent copy (its own statistics and lock)."""
        new = deepcopy_sharing(self, {})
        stats = self._shared_stats
        object.__setattr__(new, "_shared_stats", None if stats is None else stats.clone())
        if stats is not None:
            new._shared_stats.share_memory_()
        object.__setattr__(new, "_lock", new_lock())
        return new

    def frozen_copy(self) -> VecNormV2:
        """A copy that reads the same (shared) statistics and never updates them."""
        new = copy.deepcopy(self)
        new.frozen = True
        return new

    @property
    def shared_data(self) -> TensorDictBase | None:
        """The shared statistics (None until created)."""
        return self._shared_stats

    # ------------------------------------------------------------------ statistics
    def _stats(self, key: Any) -> tuple[torch.Tensor | None, ...]:
        p = _stat_prefix(key)
        source = self._shared_stats
        if source is None or p not in source.keys():
            return (None, None, None)
        return tuple(source.get((p, s)) for s in _STATS)

    def _store(self, key: Any, total: torch.Tensor, ssq: torch.Tensor, count: torch.Tensor) -> None:
        p = _stat_prefix(key)
        stats = self._shared_stats
        if stats is None or p not in stats.keys():
            self._create(key, total.shape, total.device)
            stats = self._shared_stats
        stats.get((p, "sum")).copy_(total)
        stats.get((p, "ssq")).copy_(ssq)
        stats.get((p, "count")).copy_(count)

    def _create(self, key: Any, shape: torch.Size, device: Any) -> None:
        """Add zero statistics of ``key`` to the shared TensorDict (copies made from now on
        share them)."""
        zeros = torch.zeros(shape, dtype=torch.float64, device=device)
        entry = TensorDict(
            {"sum": zeros, "ssq": zeros.clone(), "count": torch.zeros((), dtype=torch.float64)}
        )
        old = self._shared_stats
        new = TensorDict() if old is None else old.copy()
        new.set(_stat_prefix(key), entry.share_memory_())
        object.__setattr__(self, "_shared_stats", new)

    def _update(self, key: Any, value: torch.Tensor, batch_dims: int) -> None:
        with self._lock:
            super()._update(key, value, batch_dims)

    def _samples(self, value: torch.Tensor, batch_dims: int) -> torch.Tensor:
        flat = super()._samples(value, batch_dims)
        return flat.mean(0, keepdim=True) if self.reduce_batch_dims else flat

    @property
    def loc(self) -> TensorDict:
        """The mean of each in_key (a TensorDict keyed like the data)."""
        return TensorDict({k: self.mean_std(k)[0] for k in self.in_keys})

    @property
    def scale(self) -> TensorDict:
        """The standard deviation of each in_key (a TensorDict keyed like the data)."""
        return TensorDict({k: self.mean_std(k)[1] for k in self.in_keys})

    @property
    def standard_normal(self) -> bool:
        """Always True: values are normalized as ``(x - loc) / scale``."""
        return True

    def denorm(self, tensordict: TensorDictBase) -> TensorDictBase:
        """A shallow copy of ``tensordict`` with ``in_keys = out_keys * scale + loc``."""
        _check_td(tensordict, self)
        if not self.stateful:
            raise RuntimeError("denorm needs a stateful VecNormV2 (stateful=True)")
        out = tensordict.copy()
        for in_key, out_key in zip(self.in_keys, self.out_keys):
            mean, std = self.mean_std(in_key)
            value = self._get(out, out_key)
            out.set(in_key, (value * std + mean).to(value.dtype))
        return out

    def to_observation_norm(self) -> Any:
        """Fixed normalizations with the current statistics: one :class:`ObservationNorm`
        per in_key (a :class:`Compose` of them when there are several)."""
        from streamrl.envs.transforms.compose import Compose
        from streamrl.envs.transforms.observation_norm import ObservationNorm

        norms = []
        for in_key, out_key in zip(self.in_keys, self.out_keys):
            mean, std = self.mean_std(in_key)
            norms.append(ObservationNorm(loc=mean.float(), scale=std.float(), in_keys=[in_key],
                                         out_keys=[out_key], standard_normal=True))
        return norms[0] if len(norms) == 1 else Compose(*norms)

    # ------------------------------------------------------------------ state_dict
    def get_extra_state(self) -> dict:
        """The statistics, for ``state_dict`` (stateful only)."""
        if not self.stateful or self._shared_stats is None:
            return {}
        return {k: v.clone() for k, v in self._shared_stats.items(True, True)}

    def set_extra_state(self, state: dict) -> None:
        """Load statistics saved by :meth:`get_extra_state` (in place when they exist)."""
        if not self.stateful:
            return
        for key, value in state.items():
            p = key[0] if isinstance(key, tuple) else key
            in_key = next((k for k in self.in_keys if _stat_prefix(k) == p), None)
            if in_key is None:
                raise ValueError(f"VecNormV2: saved statistics for {p!r}, not an in_key "
                                 f"prefix of {self.in_keys}")
            stats = self._shared_stats
            if stats is None or p not in stats.keys():
                self._create(in_key, state[(p, "sum")].shape, value.device)
            self._shared_stats.get(key).copy_(value)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        super(VecNorm, self)._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    # ------------------------------------------------------------------ stateless
    # Each row carries its own statistics (decayed sums over its trajectory so far), reset
    # to empty at every reset, so any copy of the transform gives the same result.
    def _row_stats(self, td: TensorDictBase | None, key: Any, batch: torch.Size) -> TensorDict:
        carried = None if td is None else td.get((STATS_KEY, _stat_prefix(key)), None)
        if carried is None:
            raise KeyError(
                f"stateless VecNormV2: no statistics of {key!r} at {STATS_KEY!r} in the step "
                "input; step from the output of reset() (or of a previous step)"
            )
        return carried

    def _row_update(self, stats: TensorDict, value: torch.Tensor, batch_dims: int) -> Any:
        x = value.detach().to(torch.float64)
        count = self.decay * stats.get("count") + 1.0
        total = self.decay * stats.get("sum") + x
        ssq = self.decay * stats.get("ssq") + x.pow(2)
        c = count.reshape(*count.shape, *([1] * (x.ndim - batch_dims)))
        mean = total / c
        std = (ssq / c - mean.pow(2)).clamp_min(self.eps).sqrt()
        dtype = value.dtype if value.is_floating_point() else torch.float32
        new = TensorDict({"sum": total, "ssq": ssq, "count": count}, stats.batch_size)
        return ((value - mean) / std).to(dtype), new

    def _stateless(self, src: TensorDictBase | None, dst: TensorDictBase) -> TensorDictBase:
        batch = dst.batch_size
        for in_key, out_key in zip(self.in_keys, self.out_keys):
            stats = self._row_stats(src, in_key, batch)
            value = dst.get(in_key, None)
            if value is not None:
                normed, stats = self._row_update(stats, value, dst.batch_dims)
                dst.set(out_key, normed)
            dst.set((STATS_KEY, _stat_prefix(in_key)), stats)
        return dst

    def _step(self, td: TensorDictBase, next_td: TensorDictBase) -> TensorDictBase:
        if self.stateful:
            return super()._step(td, next_td)
        return self._stateless(td, next_td)

    def _reset(self, td: TensorDictBase | None, td_reset: TensorDictBase) -> TensorDictBase:
        if self.stateful:
            return super()._reset(td, td_reset)
        empty = td_reset.empty()
        for key, shape in self._feature_shapes.items():
            zeros = torch.zeros((*td_reset.batch_size, *shape), dtype=torch.float64,
                                device=td_reset.device)
            empty.set((STATS_KEY, _stat_prefix(key)), TensorDict(
                {"sum": zeros, "ssq": zeros.clone(),
                 "count": torch.zeros(td_reset.batch_size, dtype=torch.float64)},
                td_reset.batch_size))
        fresh = self._stateless(empty, td_reset.copy())
        mask = reset_mask(td, td_reset)
        if mask is None or td is None or STATS_KEY not in td.keys():
            return fresh
        # a partial reset: rows still running keep their statistics
        kept = td.get(STATS_KEY)
        m = mask.reshape(td_reset.batch_size).bool()
        stats = fresh.get(STATS_KEY).clone()
        stats[~m] = kept[~m]
        td_reset.update(fresh.exclude(STATS_KEY))
        td_reset.set(STATS_KEY, stats)
        return td_reset

    def transform_output_spec(self, output_spec: Any) -> Any:
        """Normalized entries are float; a stateless transform adds its statistics."""
        feats = {}
        for part in ("full_observation_spec", "full_reward_spec"):
            composite = output_spec[part]
            for key in self.in_keys:
                if key in composite.keys(True, True):
                    spec = composite[key]
                    feats[key] = (spec.shape[composite.ndim:], spec.device)
        output_spec = super().transform_output_spec(output_spec)
        self._feature_shapes = {k: v[0] for k, v in feats.items()}
        if self.stateful:
            for key, (shape, device) in feats.items():
                stats = self._shared_stats
                if stats is None or _stat_prefix(key) not in stats.keys():
                    self._create(key, shape, device)
            return output_spec
        obs = output_spec["full_observation_spec"]
        batch = obs.shape
        for key, (shape, device) in feats.items():
            p = _stat_prefix(key)
            for stat in _STATS:
                s = () if stat == "count" else shape
                obs[(STATS_KEY, p, stat)] = Unbounded(
                    shape=(*batch, *s), device=device, dtype=torch.float64
                )
        output_spec["full_observation_spec"] = obs
        return output_spec

    def __repr__(self) -> str:
        return (
            f"VecNormV2(keys={self.in_keys}, decay={self.decay}, eps={self.eps}, "
            f"stateful={self.stateful}, frozen={self.frozen})"
        )
