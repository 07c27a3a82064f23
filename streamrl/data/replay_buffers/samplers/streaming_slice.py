"""Slices of a stream: each newly completed window is sampled once, first."""

from __future__ import annotations

from collections import deque
from typing import Any

import torch

from streamrl.data.replay_buffers._state import Commit, entry, list_entry, tensor_entry
from streamrl.data.replay_buffers.samplers.base import _check_batch_size, _check_nonempty
from streamrl.data.replay_buffers.samplers.slice_sampler import SliceSampler, _as_key

__all__ = ["StreamingSliceSampler"]


class StreamingSliceSampler(SliceSampler):
    """A :class:`SliceSampler` that first returns the windows the latest writes completed.

    Written steps are cut, in write order, into non-overlapping windows of ``slice_len`` steps
    that never cross a trajectory boundary (a change of ``traj_key``, or a step whose end flag
    is set; the steps of an unfinished window are dropped at a boundary). Each completed
    window is queued once; a batch takes the queued windows first, oldest first, and fills the
    rest with uniform :class:`SliceSampler` windows. A queued window whose slots were
    overwritten before it was sampled is dropped. Made for one stream per buffer, written in
    time order. Without the boundary keys in the storage, writes are cut only by length.

    Args:
        slice_len: length of every window (the batch size must be a multiple of it).
        **slice_sampler_kwargs: the other keyword arguments of :class:`SliceSampler`
            (``end_key``, ``end_keys``, ``traj_key``, ``cache_values``, ``truncated_key``,
            ``init_key``, ``strict_length``, ``span``, ``seed``); they apply to the boundaries,
            the flags and the uniform windows.

    >>> import torch
    >>> from tensordict import TensorDict
    >>> from streamrl.data import LazyTensorStorage, TensorDictReplayBuffer
    >>> rb = TensorDictReplayBuffer(storage=LazyTensorStorage(16),
    ...     sampler=StreamingSliceSampler(slice_len=3), batch_size=6)
    >>> done = torch.zeros(6, 1, dtype=torch.bool)
    >>> _ = rb.extend(TensorDict({"value": torch.arange(6), ("next", "done"): done}, [6]))
    >>> rb.sample()["value"].reshape(2, 3).tolist()
    [[0, 1, 2], [3, 4, 5]]
    """

    keeps_write_state = True

    def __init__(self, *, slice_len: int, **slice_sampler_kwargs: Any) -> None:
        if "num_slices" in slice_sampler_kwargs:
            raise TypeError("StreamingSliceSampler takes slice_len, not num_slices")
        super().__init__(slice_len=slice_len, **slice_sampler_kwargs)
        self._stamps = torch.zeros(0, dtype=torch.long)  # write generation of each slot
        self._queue: deque[tuple[torch.Tensor, torch.Tensor]] = deque()
        self._pending: list[tuple[int, int]] = []  # (slot, stamp) of the unfinished window
        self._pending_id: list | None = None  # trajectory id of the unfinished window

    # -- writes ------------------------------------------------------------------------------
    def _row_boundaries(self, storage, index: torch.Tensor):
        """``(ids, ends)`` of the written rows (either may be ``None``)."""
        if not hasattr(storage, "column"):
            return None, None
        try:
            kind, keys = self._boundary_keys(storage)
        except KeyError:
            return None, None
        n = index.numel()
        if kind == "traj":
            if _as_key(keys[0]) not in getattr(storage, "_key_set", set()):
                return None, None
            return storage.column(keys[0])[index].reshape(n, -1).cpu(), None
        ends = torch.zeros(n, dtype=torch.bool)
        for key in keys:
            ends |= storage.column(key)[index].reshape(n, -1).cpu().bool().any(-1)
        return None, ends

    def on_write(self, index, start, storage) -> None:
        """Stamp the written slots and queue the windows they complete."""
        super().on_write(index, start, storage)
        if self._stamps.numel() < storage.max_size:
            grow = storage.max_size - self._stamps.numel()
            self._stamps = torch.cat([self._stamps, torch.zeros(grow, dtype=torch.long)])
        self._stamps[index] += 1
        ids, ends = self._row_boundaries(storage, index)
        slice_len = self.slice_len
        stamps = self._stamps[index].tolist()
        for i, slot in enumerate(index.tolist()):
            if ids is not None:
                tid = ids[i].tolist()
                if tid != self._pending_id:
                    self._pending = []
                    self._pending_id = tid
            self._pending.append((slot, stamps[i]))
            if len(self._pending) == slice_len:
                slots, marks = zip(*self._pending)
                self._queue.append((torch.tensor(slots), torch.tensor(marks)))
                self._pending = []
            if ends is not None and bool(ends[i]):
                self._pending = []

    # -- sampling ----------------------------------------------------------------------------
    def _valid(self, slots: torch.Tensor, marks: torch.Tensor, length: int) -> bool:
        return bool((slots < length).all()) and torch.equal(self._stamps[slots], marks)

    def sample(self, storage, batch_size: int):
        """Queued windows first (oldest first), then uniform windows for the rest."""
        n = _check_nonempty(storage)
        num_slices, slice_len = self._split(_check_batch_size(batch_size))
        windows: list[torch.Tensor] = []
        while self._queue and len(windows) < num_slices:
            slots, marks = self._queue.popleft()
            if self._valid(slots, marks, n):
                windows.append(slots)
        lens = torch.full((len(windows),), slice_len, dtype=torch.long)
        index = torch.cat(windows) if windows else torch.empty(0, dtype=torch.long)
        first = torch.stack([w[0] for w in windows]) if windows else lens.new_empty(0)
        rest = num_slices - len(windows)
        if rest:
            more, info = super().sample(storage, rest * slice_len)
            index = torch.cat([index, more])
            first = torch.cat([first, info["slice_start"]])
            lens = torch.cat([lens, info["slice_lengths"]])
        return index, self._slice_info(first, lens)

    # -- state -------------------------------------------------------------------------------
    def empty(self) -> None:
        """Drop the queue, the unfinished window and the slot stamps."""
        super().empty()
        self._stamps = torch.zeros(0, dtype=torch.long)
        self._queue.clear()
        self._pending = []
        self._pending_id = None

    def sampling_state(self) -> dict[str, Any]:
        """RNG state, slot stamps, queued windows and the unfinished window."""
        queue = list(self._queue)
        empty = torch.zeros(0, self.slice_len, dtype=torch.long)
        return {
            **super().sampling_state(),
            "stamps": self._stamps.clone(),
            "queue_slots": torch.stack([q[0] for q in queue]) if queue else empty,
            "queue_stamps": torch.stack([q[1] for q in queue]) if queue else empty.clone(),
            "pending": [list(p) for p in self._pending],
            "pending_id": self._pending_id,
        }

    def _prepare_sampling_load(self, state: dict[str, Any]) -> Commit:
        base = super()._prepare_sampling_load(state)
        where = f"{type(self).__name__} sampling state"
        stamps = tensor_entry(state, "stamps", where, dtype=torch.long, ndim=1).clone()
        slots = tensor_entry(state, "queue_slots", where, dtype=torch.long, ndim=2)
        marks = tensor_entry(state, "queue_stamps", where, dtype=torch.long, shape=slots.shape)
        if slots.shape[1] != self.slice_len:
            raise ValueError(f"{where}: queued windows of {slots.shape[1]} steps, this "
                             f"sampler's slice_len is {self.slice_len}")
        queue = deque((s.clone(), m.clone()) for s, m in zip(slots, marks))
        pending = [(int(s), int(m)) for s, m in list_entry(state, "pending", where)]
        pending_id = entry(state, "pending_id", where)
        pending_id = list(pending_id) if pending_id is not None else None

        def commit() -> None:
            base()
            self._stamps, self._queue = stamps, queue
            self._pending, self._pending_id = pending, pending_id

        return commit
