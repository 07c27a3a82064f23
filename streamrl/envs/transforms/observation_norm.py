"""ObservationNorm: an affine map of observations, with statistics gathered from the env.

>>> import torch
>>> from tensordict import TensorDict
>>> from streamrl.envs.transforms import ObservationNorm
>>> t = ObservationNorm(loc=1.0, scale=2.0, in_keys=["observation"], standard_normal=True)
>>> t(TensorDict({"observation": torch.tensor([3.0])}))["observation"]
tensor([1.])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from streamrl.envs.transforms._spec_utils import map_spec
from streamrl.envs.transforms.transform import ObservationTransform, Transform, keys_repr

__all__ = ["ObservationNorm"]


def _stat_repr(t: torch.Tensor) -> str:
    if t.numel() == 1:
        return f"{t.item():.4f}"
    return f"Tensor(shape={t.shape}, dtype={t.dtype})"


def _dims(dims: int | Sequence[int], name: str) -> tuple[int, ...]:
    dims = (dims,) if isinstance(dims, int) else tuple(dims)
    if not all(isinstance(d, int) and not isinstance(d, bool) for d in dims):
        raise TypeError(f"{name} must be an int or a sequence of ints, found {dims!r}")
    return dims


class ObservationNorm(ObservationTransform):
    """``obs * scale + loc`` (default) or ``(obs - loc) / scale`` with ``standard_normal``.

    ``loc`` and ``scale`` are buffers (saved in ``state_dict``) broadcast against the
    observation. Leave them out and call :meth:`init_stats` to estimate them from the env so
    that the output has zero mean and unit variance. ``in_keys_inv`` applies the inverse map
    to inputs (e.g. actions a policy writes in normalized units).
    """

    _per_step = True

    def __init__(
        self,
        loc: Any = None,
        scale: Any = None,
        in_keys: Any = None,
        out_keys: Any = None,
        in_keys_inv: Any = None,
        out_keys_inv: Any = None,
        standard_normal: bool = False,
        eps: float = 1e-6,
    ) -> None:
        super().__init__(
            ["observation"] if in_keys is None else in_keys, out_keys, in_keys_inv, out_keys_inv
        )
        if (loc is None) != (scale is None):
            raise ValueError("give both loc and scale, or neither (then call init_stats)")
        self.standard_normal = standard_normal
        self.eps = eps
        if loc is None:
            self.register_buffer("loc", None)
            self.register_buffer("scale", None)
        else:
            self.register_buffer("loc", torch.as_tensor(loc, dtype=torch.float32).clone())
            self.register_buffer("scale", torch.as_tensor(scale, dtype=torch.float32).clone())
            self._check_scale()

    @property
    def initialized(self) -> bool:
        """Whether ``loc`` and ``scale`` are set."""
        return self.loc is not None

    def _check_scale(self) -> None:
        if bool((self.scale == 0).any()):
            raise ValueError("scale must be non-zero")

    def _stats_for(self, value: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.initialized:
            raise RuntimeError(
                "ObservationNorm has no loc/scale yet: pass them or call init_stats() first"
            )
        dtype = value.dtype if value.is_floating_point() else torch.float32
        return self.loc.to(value.device, dtype), self.scale.to(value.device, dtype)

    def _apply_transform(self, value: torch.Tensor) -> torch.Tensor:
        loc, scale = self._stats_for(value)
        if self.standard_normal:
            return (value - loc) / scale.clamp_min(self.eps)
        return value * scale + loc

    def _inv_apply_transform(self, value: torch.Tensor) -> torch.Tensor:
        loc, scale = self._stats_for(value)
        if self.standard_normal:
            return value * scale.clamp_min(self.eps) + loc
        return (value - loc) / scale

    def _transform_spec(self, spec: Any) -> Any:
        if not self.initialized:
            return spec  # init_stats() refreshes the env's specs once the stats exist
        return map_spec(spec, self._apply_transform)

    def _inv_transform_spec(self, spec: Any) -> Any:
        # Users write the action in the normalized space: the base bounds go through the
        # forward map (the inverse of what the action path applies).
        if not self.initialized:
            return spec
        return map_spec(spec, self._apply_transform)

    def init_stats(
        self,
        num_iter: int,
        reduce_dim: int | Sequence[int] = 0,
        cat_dim: int | None = None,
        key: Any = None,
        keep_dims: Sequence[int] | None = None,
    ) -> None:
        """Estimate ``loc`` and ``scale`` from ``num_iter`` random steps of the parent env.

        The env up to this transform (``self.parent``) runs ``num_iter`` random steps
        (episodes that end are reset and go on); the mean and standard deviation of the
        entry over ``reduce_dim`` give the stats, which then map the entry to zero mean and
        unit variance. The data is laid out ``[*batch_size, num_iter, *entry_shape]`` (for a
        single env, dim 0 is time). ``keep_dims`` keeps reduced dims with size 1 (e.g.
        ``(-2, -1)`` gives per-channel stats ``[C, 1, 1]`` for images). ``cat_dim`` is
        accepted for compatibility: one rollout always holds all the steps.
        """
        if isinstance(num_iter, bool) or not isinstance(num_iter, int) or num_iter < 1:
            raise ValueError(f"num_iter must be a positive int, found {num_iter!r}")
        if self.initialized:
            raise RuntimeError("ObservationNorm already has loc/scale; init_stats sets them once")
        if len(self.in_keys) > 1 and key is None:
            raise ValueError(f"several in_keys {self.in_keys}: say which one with key=")
        key = self.in_keys[0] if key is None else key
        reduce = _dims(reduce_dim, "reduce_dim")
        if cat_dim is not None and not isinstance(cat_dim, int):
            raise TypeError(f"cat_dim must be an int or None, found {cat_dim!r}")
        parent = self.parent
        if parent is None:
            raise RuntimeError("init_stats needs the transform to be in a TransformedEnv")
        rollout = parent.rollout(max_steps=num_iter, break_when_any_done=False)
        data = rollout.get(("next", *((key,) if isinstance(key, str) else key)), None)
        if data is None:
            raise KeyError(f"ObservationNorm.init_stats: key {key!r} not in the env outputs")
        data = data.float()
        ndim = data.ndim
        for d in reduce:
            if not -ndim <= d < ndim:
                raise ValueError(
                    f"reduce_dim {d} out of range for data of shape {tuple(data.shape)}"
                )
        reduce_abs = sorted({d % ndim for d in reduce})
        loc = data.mean(reduce_abs, keepdim=True)
        std = data.std(reduce_abs, keepdim=True).clamp_min(self.eps)
        keep = {d % ndim for d in _dims(keep_dims or (), "keep_dims")}
        squeeze = [d for d in reduce_abs if d not in keep]
        for d in reversed(squeeze):
            loc, std = loc.squeeze(d), std.squeeze(d)
        if self.standard_normal:
            self.loc, self.scale = loc, std
        else:
            self.loc, self.scale = -loc / std, 1.0 / std
        env = self._owning_env()
        if env is not None:
            env._invalidate_specs()

    def _owning_env(self) -> Any:
        c = self.container
        while isinstance(c, Transform):
            c = c.container
        return c

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # Stats created by init_stats (or never created) may differ in shape from the ones
        # saved: take the saved tensors as they are.
        for name in ("loc", "scale"):
            saved = state_dict.get(prefix + name)
            if saved is not None:
                setattr(self, name, torch.empty_like(saved))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def __repr__(self) -> str:
        if not self.initialized:
            return f"ObservationNorm(keys={keys_repr(self.in_keys)})"
        return (
            f"ObservationNorm(loc={_stat_repr(self.loc)}, scale={_stat_repr(self.scale)}, "
            f"keys={keys_repr(self.in_keys)})"
        )
