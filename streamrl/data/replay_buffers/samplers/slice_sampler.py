"""Contiguous sub-trajectories (slices) that never cross a trajectory end."""

from __future__ import annotations

from typing import Any

import torch

from streamrl.data.replay_buffers.samplers.base import Sampler, _check_batch_size, _check_nonempty
from streamrl.data.replay_buffers.trajectories import find_start_stop_traj

__all__ = ["SliceSampler"]

# Keys of the info dict that describe the slices and are not written into a sampled TensorDict.
SLICE_INFO_KEYS = ("slice_start", "slice_lengths")


def _pos_int(name, value):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive int, found {value!r}")
    return value


def _as_key(key):
    return key if isinstance(key, tuple) else (key,)


def _sibling(key, name: str):
    """``("next", "truncated") -> ("next", name)``; ``"truncated" -> name``."""
    if isinstance(key, tuple):
        return (*key[:-1], name) if len(key) > 1 else name
    return name


def _span_side(name: str, value) -> bool | int:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value >= 0:
        return value
    raise ValueError(f"span {name} must be a bool or an int >= 0, found {value!r}")


class SliceSampler(Sampler):
    """Sample ``num_slices`` windows of ``slice_len`` consecutive steps of one trajectory each.

    Give exactly one of ``num_slices`` or ``slice_len``; the batch size must be a multiple of
    it. Trajectory boundaries come from ``traj_key`` (a new id starts a new trajectory; when
    ``end_key``/``end_keys`` are given too, only if the storage holds it), else from
    ``end_key`` or ``end_keys`` (a true flag, OR-ed over the keys present, ends the
    trajectory at that step); with none of them, an ``"episode"`` entry is used when the
    storage has one and ``("next", "done")`` otherwise. The write head of a full circular
    storage is also a boundary (older and newer data meet there), as is the end of the storage.
    Every valid window is equally likely. The result is flat, window after window.

    Each slice is marked so that value estimators and recurrent modules see where it breaks:
    ``init_key`` is set at its first step and ``truncated_key`` (and the ``"done"`` entry
    beside it) at its last step, OR-ed with the stored flags. A :class:`TensorDictReplayBuffer`
    writes them into the sample; a plain buffer returns them in ``info`` (``return_info=True``).

    Args:
        num_slices: number of windows per batch.
        slice_len: length of each window.
        end_key: key of end-of-trajectory flags (default ``("next", "done")``).
        end_keys: several such keys, OR-ed (keys absent from the storage are skipped).
        traj_key: key of trajectory ids, e.g. ``("collector", "traj_ids")``.
        cache_values: keep the trajectory boundaries between samples (recomputed after any
            write, so this is safe with a growing buffer); ``False`` recomputes them per sample.
        truncated_key: where the slice-end flag goes (``None``: not written).
        init_key: where the slice-start flag goes (``None``: not written).
        strict_length: ``False`` also samples trajectories shorter than the window (those
            slices are shorter, and so is the batch).
        span: let windows hang over the start and/or end of a trajectory, clipped to it, so
            that edge steps are sampled as often as middle ones: ``True`` (a slice keeps at
            least one step), an int ``i`` (it keeps at least ``slice_len - i`` steps), or a
            ``(left, right)`` pair of those. Clipped slices make the batch shorter.
        seed: seed of the private generator.

    >>> from tensordict import TensorDict
    >>> from streamrl.data import LazyTensorStorage, TensorDictReplayBuffer
    >>> rb = TensorDictReplayBuffer(storage=LazyTensorStorage(32),
    ...     sampler=SliceSampler(num_slices=4, traj_key="episode"), batch_size=32)
    >>> _ = rb.extend(TensorDict({"episode": torch.zeros(32, dtype=torch.long)}, [32]))
    >>> rb.sample()["is_init"].reshape(-1).nonzero().reshape(-1).tolist()
    [0, 8, 16, 24]
    """

    def __init__(
        self,
        *,
        num_slices: int | None = None,
        slice_len: int | None = None,
        end_key=None,
        end_keys=None,
        traj_key=None,
        cache_values: bool = False,
        truncated_key=("next", "truncated"),
        init_key="is_init",
        strict_length: bool = True,
        span: bool | int | tuple[bool | int, bool | int] = False,
        seed: int | None = None,
    ) -> None:
        super().__init__(seed=seed)
        if (num_slices is None) == (slice_len is None):
            raise ValueError(
                f"give exactly one of num_slices or slice_len, found num_slices={num_slices!r}, "
                f"slice_len={slice_len!r}"
            )
        self.num_slices = _pos_int("num_slices", num_slices)
        self.slice_len = _pos_int("slice_len", slice_len)
        if end_key is not None and end_keys is not None:
            raise ValueError("give at most one of end_key and end_keys; found both")
        if end_keys is not None:
            end_keys = list(end_keys)
            if not end_keys:
                raise ValueError("end_keys must hold at least one key, found []")
        self.traj_key = traj_key
        self.end_key = end_key
        self.end_keys = end_keys
        self.cache_values = bool(cache_values)
        self.truncated_key = truncated_key
        self.init_key = init_key
        self.strict_length = bool(strict_length)
        left, right = span if isinstance(span, (tuple, list)) and len(span) == 2 else (span, span)
        self.span = (_span_side("left", left), _span_side("right", right))
        self._cache: tuple[Any, ...] | None = None

    # -- trajectory structure ----------------------------------------------------------------
    def _split(self, batch_size: int) -> tuple[int, int]:
        div = self.num_slices if self.num_slices is not None else self.slice_len
        if batch_size % div:
            raise ValueError(
                f"batch_size {batch_size} is not a multiple of "
                f"{'num_slices' if self.num_slices is not None else 'slice_len'}={div}"
            )
        if self.num_slices is not None:
            return self.num_slices, batch_size // self.num_slices
        return batch_size // self.slice_len, self.slice_len

    def _boundary_keys(self, storage) -> tuple[str, list]:
        """``("traj", [key])`` (trajectory ids) or ``("end", keys)`` (end flags present)."""
        keys: set = getattr(storage, "_key_set", set())
        traj_key = self.traj_key
        if traj_key is None and self.end_key is None and self.end_keys is None:
            traj_key = "episode" if ("episode",) in keys else None
        ends_given = self.end_key is not None or self.end_keys is not None
        # with end keys too, trajectory ids are used where the storage has them (TorchRL)
        if traj_key is not None and (not ends_given or _as_key(traj_key) in keys):
            return "traj", [traj_key]
        end_keys = self.end_keys if self.end_keys is not None else [
            self.end_key if self.end_key is not None else ("next", "done")
        ]
        present = [k for k in end_keys if _as_key(k) in keys]
        if not present:
            raise KeyError(
                f"{type(self).__name__}: none of the end keys {end_keys} is in the storage; "
                f"keys: {sorted(keys)}"
            )
        return "end", present

    def _breaks(self, storage, n: int) -> torch.Tensor:
        """``brk[i]``: a trajectory ends at step ``i`` (length ``n - 1``, the last is implied)."""
        kind, keys = self._boundary_keys(storage)
        if kind == "traj":
            ids = storage.column(keys[0]).reshape(n, -1).cpu()
            return (ids[1:] != ids[:-1]).any(-1)
        done = torch.zeros(n, dtype=torch.bool)
        for key in keys:
            done |= storage.column(key).reshape(n, -1).cpu().bool().any(-1)
        return done[:-1]

    def _segments(self, storage) -> tuple[torch.Tensor, torch.Tensor]:
        """(starts, lengths) of the maximal runs that belong to one trajectory."""
        if not hasattr(storage, "column"):
            raise TypeError(
                f"{type(self).__name__} needs a tensor storage (LazyTensorStorage, "
                f"LazyMemmapStorage), found {type(storage).__name__}"
            )
        n = len(storage)
        end = torch.zeros(n, dtype=torch.bool)
        end[:-1] = self._breaks(storage, n)
        head = storage.head
        if n == storage.max_size and 0 < head < n:
            end[head - 1] = True  # older and newer data meet at the write head
        starts, _, lengths = find_start_stop_traj(end=end, at_capacity=False)
        return starts[:, 0], lengths

    def _overhang(self, slice_len: int) -> tuple[int, int]:
        sides = []
        for side in self.span:
            if side is True:
                sides.append(slice_len - 1)
            elif side is False:
                sides.append(0)
            else:
                sides.append(min(int(side), slice_len - 1))
        return sides[0], sides[1]

    def _windows(self, storage, slice_len: int):
        """Segments with their first window offset and number of windows (cached)."""
        n = len(storage)
        key = (slice_len, n)
        if self._cache is not None and self._cache[0] == key:
            return self._cache[1:]
        starts, lengths = self._segments(storage)
        left, right = self._overhang(slice_len)
        lo = torch.full_like(lengths, -left)
        counts = (lengths - slice_len + right + left + 1).clamp_min(0)
        if not self.strict_length:
            short = counts == 0
            lo = torch.where(short, torch.zeros_like(lo), lo)
            counts = torch.where(short, torch.ones_like(counts), counts)
        out = (starts, lengths, lo, counts, counts.cumsum(0))
        if self.cache_values:
            self._cache = (key, *out)
        return out

    # -- sampling ----------------------------------------------------------------------------
    def _clip(self, seg, offset, slice_len, starts, lengths):
        """First storage step and length of windows at ``offset`` in segments ``seg``."""
        begin = offset.clamp_min(0)
        end = torch.minimum(offset + slice_len, lengths[seg])
        return starts[seg] + begin, end - begin

    def _gather(self, first: torch.Tensor, lens: torch.Tensor, slice_len: int):
        """Flat index of the slices and the info dict with their start and end flags."""
        if bool((lens == slice_len).all()):
            index = (first[:, None] + torch.arange(slice_len)).reshape(-1)
        else:
            begin = lens.cumsum(0) - lens
            pos = torch.arange(int(lens.sum())) - torch.repeat_interleave(begin, lens)
            index = torch.repeat_interleave(first, lens) + pos
        return index, self._slice_info(first, lens)

    def _slice_info(self, first: torch.Tensor, lens: torch.Tensor) -> dict[str, Any]:
        """Slice starts and lengths, and the start/end flags of slices laid out one by one."""
        info: dict[str, Any] = {"slice_start": first, "slice_lengths": lens}
        total = int(lens.sum())
        ends = lens.cumsum(0) - 1
        if self.init_key is not None:
            flag = torch.zeros(total, 1, dtype=torch.bool)
            flag[ends - lens + 1] = True
            info[self.init_key] = flag
        if self.truncated_key is not None:
            flag = torch.zeros(total, 1, dtype=torch.bool)
            flag[ends] = True
            info[self.truncated_key] = flag
            info[_sibling(self.truncated_key, "done")] = flag.clone()
        return info

    def sample(self, storage, batch_size: int):
        """Flat indices of ``num_slices`` windows; ``info`` holds the slice flags and starts."""
        _check_nonempty(storage)
        num_slices, slice_len = self._split(_check_batch_size(batch_size))
        starts, lengths, lo, counts, cum = self._windows(storage, slice_len)
        total = int(cum[-1])
        if total == 0:
            raise RuntimeError(
                f"no trajectory in the buffer has {slice_len} steps (longest: {int(lengths.max())})"
            )
        u = torch.randint(0, total, (num_slices,), generator=self._generator)
        seg = torch.searchsorted(cum, u, right=True)
        offset = lo[seg] + u - (cum[seg] - counts[seg])
        first, lens = self._clip(seg, offset, slice_len, starts, lengths)
        return self._gather(first, lens, slice_len)

    def on_write(self, index, start, storage) -> None:
        """Any write may move trajectory boundaries: drop the cache."""
        self._cache = None

    def empty(self) -> None:
        """Drop the cache."""
        self._cache = None
