"""CatFrames: stack the last N observations along a dim (frame stacking).

Inside an env the transform keeps the last N frames of each sub-env in a buffer, so later
transforms may rewrite the stacked entry (normalize it, cast it) without disturbing the
history. Outside an env, ``transform(td)`` stacks along the last batch dim of a trajectory,
starting afresh wherever an episode starts.

>>> import torch
>>> from tensordict import TensorDict
>>> from streamrl.envs.transforms import CatFrames
>>> traj = TensorDict({"obs": torch.arange(4.0).reshape(4, 1)}, batch_size=[4])
>>> CatFrames(N=2, dim=-1, in_keys=["obs"])(traj)["obs"]
tensor([[0., 0.],
        [0., 1.],
        [1., 2.],
        [2., 3.]])
"""

from __future__ import annotations

from typing import Any

import torch
from tensordict import TensorDictBase

from streamrl.envs.transforms._spec_utils import map_spec
from streamrl.envs.transforms.transform import (
    ObservationTransform,
    as_keys,
    keys_repr,
    reset_mask,
)

__all__ = ["CatFrames"]


class CatFrames(ObservationTransform):
    """Concatenate the last ``N`` frames of each ``in_keys`` entry along ``dim`` (< 0).

    After a reset the history is padded: with copies of the first frame
    (``padding="same"``) or with ``padding_value`` (``padding="constant"``).

    Args:
        N: number of frames.
        dim: the (negative) dim to concatenate along, e.g. -3 for ``[C, H, W]`` images.
        in_keys: entries to stack (default ``["pixels"]``).
        padding: ``"same"`` or ``"constant"``.
        padding_value: the constant for ``padding="constant"``.
        done_key: outside an env, the entry marking the last step of an episode
            (default ``("next", "done")``); the frame after it starts a new history.
    """

    # the frame history is not in state_dict (TorchRL's keys): an env's capture_state refuses
    keeps_state_outside_state_dict = True

    def __init__(
        self,
        N: int,
        dim: int,
        in_keys: Any = None,
        out_keys: Any = None,
        padding: str = "same",
        padding_value: float = 0.0,
        done_key: Any = ("next", "done"),
    ) -> None:
        if isinstance(N, bool) or not isinstance(N, int) or N < 1:
            raise ValueError(f"N must be a positive int, found {N!r}")
        if not isinstance(dim, int) or dim >= 0:
            raise ValueError(
                f"dim must be negative (counted from the end, so any batch size works), "
                f"found {dim!r}"
            )
        if padding not in ("same", "constant"):
            raise ValueError(f"padding must be 'same' or 'constant', found {padding!r}")
        super().__init__(["pixels"] if in_keys is None else in_keys, out_keys)
        self.N = N
        self.dim = dim
        self.padding = padding
        self.padding_value = padding_value
        self.done_key = as_keys(done_key, "done_key")[0]
        # Frame history per in_key: [*batch, *stacked_shape]; rebuilt on reset.
        self._history: dict[Any, torch.Tensor] = {}

    # ------------------------------------------------------------------ env path
    def _pad(self, frame: torch.Tensor) -> torch.Tensor:
        if self.padding == "same":
            return torch.cat([frame] * self.N, dim=self.dim)
        pad = torch.full_like(frame, self.padding_value)
        return torch.cat([pad] * (self.N - 1) + [frame], dim=self.dim)

    def _check(self, key: Any, frame: torch.Tensor) -> None:
        if frame.ndim < -self.dim:
            raise ValueError(
                f"CatFrames(dim={self.dim}): entry {key!r} of shape {tuple(frame.shape)} has "
                f"fewer than {-self.dim} dims"
            )

    def _reset(self, td: TensorDictBase | None, td_reset: TensorDictBase) -> TensorDictBase:
        mask = reset_mask(td, td_reset)
        for in_key, out_key in zip(self.in_keys, self.out_keys):
            frame = self._get(td_reset, in_key)
            self._check(in_key, frame)
            fresh = self._pad(frame)
            old = self._history.get(in_key)
            if mask is not None and old is not None and old.shape == fresh.shape:
                keep = mask.reshape(*mask.shape, *([1] * (fresh.ndim - mask.ndim)))
                fresh = torch.where(keep, fresh, old)
            self._history[in_key] = fresh
            td_reset.set(out_key, fresh.clone())
        return td_reset

    def _step(self, td: TensorDictBase, next_td: TensorDictBase) -> TensorDictBase:
        for in_key, out_key in zip(self.in_keys, self.out_keys):
            frame = self._get(next_td, in_key)
            self._check(in_key, frame)
            old = self._history.get(in_key)
            if old is None or old.shape != self._pad(frame).shape:
                # No reset seen for this shape: start the history from this frame.
                stacked = self._pad(frame)
            else:
                size = frame.shape[self.dim]
                kept = old.narrow(self.dim, size, old.shape[self.dim] - size)
                stacked = torch.cat([kept, frame], dim=self.dim)
            self._history[in_key] = stacked
            next_td.set(out_key, stacked.clone())
        return next_td

    def reset_state(self) -> None:
        """Drop the frame history."""
        self._history.clear()

    # ------------------------------------------------------------------ data path
    def _call(self, td: TensorDictBase) -> TensorDictBase:
        if td.batch_dims < 1:
            raise ValueError(
                "CatFrames on data needs a time dim (the last batch dim); found batch_size "
                f"{tuple(td.batch_size)}"
            )
        t = td.batch_size[-1]
        steps = torch.arange(t, device=td.device)
        done = td.get(self.done_key, None)
        if done is not None:
            # A step starts an episode when the previous step ended one.
            ended = done.reshape(*td.batch_size, -1).any(-1)
            starts = torch.zeros_like(ended)
            starts[..., 1:] = ended[..., :-1]
            starts[..., 0] = True
            start_idx = torch.where(starts, steps, torch.zeros_like(steps)).cummax(-1).values
        else:
            start_idx = torch.zeros(td.batch_size, dtype=torch.long, device=td.device)
        for in_key, out_key in zip(self.in_keys, self.out_keys):
            frames = self._get(td, in_key)
            self._check(in_key, frames)
            parts = []
            for lag in range(self.N - 1, -1, -1):
                idx = steps - lag
                valid = idx >= start_idx
                src = torch.maximum(idx.expand_as(start_idx), start_idx)
                gathered = _take_time(frames, src, td.batch_dims)
                if self.padding == "constant":
                    v = valid.reshape(*valid.shape, *([1] * (frames.ndim - valid.ndim)))
                    gathered = torch.where(
                        v, gathered, torch.full_like(gathered, self.padding_value)
                    )
                parts.append(gathered)
            td.set(out_key, torch.cat(parts, dim=self.dim))
        return td

    # ------------------------------------------------------------------ specs
    def _transform_spec(self, spec: Any) -> Any:
        return map_spec(spec, lambda v: torch.cat([v] * self.N, dim=self.dim))

    def __repr__(self) -> str:
        return f"CatFrames(N={self.N}, dim={self.dim}, keys={keys_repr(self.in_keys)})"


def _take_time(frames: torch.Tensor, src: torch.Tensor, batch_dims: int) -> torch.Tensor:
    """``frames[..., src[..., t], ...]`` along time (the last batch dim)."""
    idx = src.reshape(*src.shape, *([1] * (frames.ndim - batch_dims)))
    return torch.gather(frames, batch_dims - 1, idx.expand_as(frames))
