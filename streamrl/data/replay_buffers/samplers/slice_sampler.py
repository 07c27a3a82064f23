"""Contiguous sub-trajectories that never cross a trajectory end."""

from __future__ import annotations

import torch

from streamrl.data.replay_buffers.samplers.base import Sampler, _check_batch_size, _check_nonempty

__all__ = ["SliceSampler"]


def _pos_int(name, value):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive int, found {value!r}")
    return value


class SliceSampler(Sampler):
    """Sample ``num_slices`` windows of ``slice_len`` consecutive steps of one trajectory each.

    Give exactly one of ``num_slices`` or ``slice_len``; the batch size must be a multiple of
    it. Trajectory boundaries come from ``traj_key`` (a new id starts a new trajectory) or,
    when it is not given, from ``end_key`` (a true flag ends the trajectory at that step). The
    write head of a full circular storage is also a boundary (older and newer data meet
    there), as is the end of the storage. Every valid window start is equally likely; only
    trajectories with at least ``slice_len`` steps are used. The result is flat:
    ``[num_slices * slice_len]``, window after window.

    Args:
        num_slices: number of windows per batch.
        slice_len: length of each window.
        traj_key: key of trajectory ids, e.g. ``("collector", "traj_ids")``.
        end_key: key of end-of-trajectory flags (default ``("next", "done")``).
        seed: seed of the private generator.
    """

    def __init__(
        self,
        *,
        num_slices: int | None = None,
        slice_len: int | None = None,
        traj_key=None,
        end_key=None,
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
        if traj_key is not None and end_key is not None:
            raise ValueError("give traj_key or end_key, not both")
        self.traj_key = traj_key
        self.end_key = ("next", "done") if traj_key is None and end_key is None else end_key
        # ((slice_len, len), starts, lengths, counts, cumulative counts) of the segments
        self._cache: tuple[tuple[int, int], torch.Tensor, torch.Tensor, torch.Tensor,
                           torch.Tensor] | None = None

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

    def _segments(self, storage) -> tuple[torch.Tensor, torch.Tensor]:
        """(starts, lengths) of the maximal runs that belong to one trajectory."""
        if not hasattr(storage, "column"):
            raise TypeError(
                f"SliceSampler needs a tensor storage (LazyTensorStorage, LazyMemmapStorage), "
                f"found {type(storage).__name__}"
            )
        n = len(storage)
        if self.traj_key is not None:
            ids = storage.column(self.traj_key).reshape(n, -1).cpu()
            brk = (ids[1:] != ids[:-1]).any(-1)
        else:
            done = storage.column(self.end_key).reshape(n, -1).cpu()
            brk = done[:-1].bool().any(-1)
        head = storage.head
        if n == storage.max_size and 0 < head < n:
            brk = brk.clone()
            brk[head - 1] = True
        cuts = brk.nonzero().reshape(-1) + 1
        starts = torch.cat([torch.zeros(1, dtype=torch.long), cuts])
        ends = torch.cat([cuts, torch.tensor([n])])
        return starts, ends - starts

    def sample(self, storage, batch_size: int):
        """Flat indices of ``num_slices`` windows; ``info`` holds the window starts."""
        n = _check_nonempty(storage)
        num_slices, slice_len = self._split(_check_batch_size(batch_size))
        key = (slice_len, n)
        if self._cache is None or self._cache[0] != key:
            starts, lengths = self._segments(storage)
            counts = (lengths - slice_len + 1).clamp_min(0)
            self._cache = (key, starts, lengths, counts, counts.cumsum(0))
        _, starts, lengths, counts, cum = self._cache
        total = int(cum[-1])
        if total == 0:
            raise RuntimeError(
                f"no trajectory in the buffer has {slice_len} steps (longest: {int(lengths.max())})"
            )
        u = torch.randint(0, total, (num_slices,), generator=self._generator)
        seg = torch.searchsorted(cum, u, right=True)
        first = starts[seg] + u - (cum[seg] - counts[seg])
        index = (first[:, None] + torch.arange(slice_len)).reshape(-1)
        return index, {"slice_start": first}

    def on_write(self, index, start, storage) -> None:
        """Any write may move trajectory boundaries: drop the cache."""
        self._cache = None

    def empty(self) -> None:
        """Drop the cache."""
        self._cache = None
