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
    Transform,
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
        done = td.get(self.done_key, None)
        starts = torch.zeros(td.batch_size, dtype=torch.bool, device=td.device)
        if done is not None:
            # A step starts an episode when the previous step ended one.
            ended = done.reshape(*td.batch_size, -1).any(-1)
            starts[..., 1:] = ended[..., :-1]
        return self._stack_in_time(td, starts)

    def _stack_in_time(
        self, td: TensorDictBase, starts: torch.Tensor, at: torch.Tensor | None = None
    ) -> TensorDictBase:
        """Stack ``in_keys`` along time (the last batch dim), each step's history starting
        at the last True of ``starts`` (shaped like the batch) up to it. A ``("next", *k)``
        key whose root ``k`` is in ``td`` is stacked as the env does: the root frames of the
        last ``N - 1`` steps, then the step's next frame. With ``at`` (time positions, for a
        1-D batch) only those steps are returned, stacked."""
        starts = starts.clone()
        starts[..., 0] = True
        steps = torch.arange(td.batch_size[-1], device=td.device)
        start_idx = torch.where(starts, steps, torch.zeros_like(steps)).cummax(-1).values
        out = td
        if at is not None:
            steps, start_idx, out = at, start_idx[at], td[at]
        source = td.clone(False)  # the frames as given, whatever the out_keys overwrite
        for in_key, out_key in zip(self.in_keys, self.out_keys):
            frames = self._get(source, in_key)
            self._check(in_key, frames)
            root_key = _root_of(in_key)
            root = None if root_key is None else source.get(root_key, None)
            dims = td.batch_dims
            if root is None:
                lags, last = range(self.N - 1, -1, -1), []
            else:
                lags, last = range(self.N - 2, -1, -1), [_take_time(frames, steps, dims)]
                frames = root
            parts = [self._at(frames, steps - lag, start_idx, dims) for lag in lags]
            out.set(out_key, torch.cat(parts + last, dim=self.dim))
        return out

    def _at(
        self, frames: torch.Tensor, idx: torch.Tensor, start_idx: torch.Tensor, batch_dims: int
    ) -> torch.Tensor:
        """``frames`` at time ``idx`` (per step), padded before each history's start."""
        src = torch.maximum(idx.expand_as(start_idx), start_idx)
        gathered = _take_time(frames, src, batch_dims)
        if self.padding == "constant":
            valid = idx >= start_idx
            v = valid.reshape(*valid.shape, *([1] * (gathered.ndim - valid.ndim)))
            if not bool(v.all()):
                gathered = gathered.masked_fill(~v, self.padding_value)
        return gathered

    def make_rb_transform_and_sampler(
        self, batch_size: int, **sampler_kwargs: Any
    ) -> tuple[Transform, Any]:
        """A replay-buffer transform and a :class:`~streamrl.data.SliceSampler` that rebuild
        the frame stacks at sampling time, so the buffer stores each frame once.

        Store the single frames (the ``in_keys`` entries before this transform, root and
        ``"next"``; with the env's stacks, the newest frame of each); give a
        :class:`~streamrl.data.TensorDictReplayBuffer` (which writes the windows' starts
        into the sample) the sampler, the transform and a batch size of ``batch_size * N``. The sampler draws windows of
        ``N`` consecutive steps of one trajectory, ending anywhere in it (clipped at its
        start); the transform stacks each window and returns its last step: ``batch_size``
        transitions whose ``in_keys`` (root and ``"next"``) are the stacks the env made.
        Windows end at the storage's trajectory boundaries (``traj_key`` / ``end_key``):
        the first ``N - 1`` steps of a stored segment that continues an episode (e.g. each
        collector batch of an env) get padded stacks.

        Args:
            batch_size: transitions per sample (the transform checks it).
            **sampler_kwargs: more :class:`~streamrl.data.SliceSampler` arguments
                (``end_key``, ``traj_key``, ``cache_values``...).

        >>> from tensordict import TensorDict
        >>> from streamrl.data import LazyTensorStorage, TensorDictReplayBuffer
        >>> cat = CatFrames(N=2, dim=-1, in_keys=["obs", ("next", "obs")])
        >>> transform, sampler = cat.make_rb_transform_and_sampler(batch_size=3)
        >>> rb = TensorDictReplayBuffer(storage=LazyTensorStorage(10), sampler=sampler,
        ...                             transform=transform, batch_size=3 * 2)
        >>> obs = torch.arange(5.0).reshape(5, 1)
        >>> _ = rb.extend(TensorDict({"obs": obs, "next": {"obs": obs + 1,
        ...     "done": torch.zeros(5, 1, dtype=torch.bool)}}, [5]))
        >>> s = rb.sample()
        >>> bool(((s["obs"][:, 1] == s["next", "obs"][:, 0]) & (s["obs"][:, 0] <= s["obs"][:, 1])).all())
        True
        """
        from streamrl.data.replay_buffers.samplers import SliceSampler

        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, found {batch_size!r}")
        kwargs = {
            "span": (True, False),  # a window may start before its trajectory: clipped there
            "strict_length": False,
            "truncated_key": None,  # a window's end is no trajectory end
            **sampler_kwargs,
        }
        if "init_key" in kwargs:
            raise TypeError("init_key is the transform's: it marks where each window starts")
        kwargs["init_key"] = _WINDOW_START
        sampler = SliceSampler(slice_len=self.N, **kwargs)
        frames = CatFrames(
            self.N, self.dim, self.in_keys, self.out_keys, self.padding, self.padding_value,
            done_key=self.done_key,
        )
        return _LastOfWindows(frames, batch_size), sampler

    # ------------------------------------------------------------------ specs
    def _transform_spec(self, spec: Any) -> Any:
        return map_spec(spec, lambda v: torch.cat([v] * self.N, dim=self.dim))

    def __repr__(self) -> str:
        return f"CatFrames(N={self.N}, dim={self.dim}, keys={keys_repr(self.in_keys)})"


_WINDOW_START = "_window_start"


def _root_of(key: Any) -> Any:
    """``k`` for a ``("next", *k)`` key, else None."""
    if isinstance(key, tuple) and len(key) > 1 and key[0] == "next":
        return key[1] if len(key) == 2 else key[1:]
    return None


class _LastOfWindows(Transform):
    """The replay-buffer transform of :meth:`CatFrames.make_rb_transform_and_sampler`: the
    sample is windows of consecutive steps (each starting where ``_window_start`` is set);
    stack the frames within each window and keep its last step."""

    def __init__(self, frames: CatFrames, batch_size: int) -> None:
        super().__init__()
        self.frames = frames
        self.batch_size = batch_size

    def _call(self, td: TensorDictBase) -> TensorDictBase:
        starts = td.get(_WINDOW_START, None)
        if starts is None or td.batch_dims != 1:
            raise ValueError(
                "the frame-stacking replay transform expects a flat sample from its "
                f"SliceSampler with the window starts ({_WINDOW_START!r}), which a "
                "TensorDictReplayBuffer writes into the sample; found batch_size "
                f"{tuple(td.batch_size)} and keys {sorted(map(str, td.keys()))}"
            )
        starts = starts.reshape(td.batch_size).bool()
        last = torch.ones_like(starts)
        last[:-1] = starts[1:]
        at = last.nonzero().squeeze(-1)
        if at.numel() != self.batch_size:
            raise ValueError(
                f"expected {self.batch_size} windows of up to {self.frames.N} steps (sample "
                f"{self.batch_size * self.frames.N} items), found {at.numel()} in a sample of "
                f"{td.batch_size[0]}"
            )
        return self.frames._stack_in_time(td.exclude(_WINDOW_START), starts, at=at)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(frames={self.frames!r}, batch_size={self.batch_size})"


def _take_time(frames: torch.Tensor, src: torch.Tensor, batch_dims: int) -> torch.Tensor:
    """``frames[..., src[..., t], ...]`` along time (the last batch dim): rows copied whole
    (an index per row, not per element). ``src`` is ``[*lead, T']`` (or ``[T']``)."""
    t_dim = batch_dims - 1
    feature = frames.shape[batch_dims:]
    flat = frames.reshape(-1, frames.shape[t_dim], *feature)
    index = src.expand(*frames.shape[:t_dim], src.shape[-1]).reshape(flat.shape[0], -1)
    rows = torch.arange(flat.shape[0], device=frames.device).unsqueeze(-1)
    return flat[rows, index].reshape(*frames.shape[:t_dim], index.shape[-1], *feature)
