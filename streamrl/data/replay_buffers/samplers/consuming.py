"""Sampling that consumes items: each is returned at most ``max_sample_count`` times."""

from __future__ import annotations

import torch

from streamrl.data.replay_buffers._state import Commit, list_entry, tensor_entry
from streamrl.data.replay_buffers.samplers.base import Sampler, _check_batch_size

__all__ = ["ConsumingSampler"]


class ConsumingSampler(Sampler):
    """Uniform sampling without replacement inside a batch; an item returned
    ``max_sample_count`` times is consumed.

    Consumed items are no longer sampled and no longer counted by ``len(rb)``; their slots go
    to a free list, in the order they were consumed, which the buffer's next writes fill
    before the writer's own slots. A batch holds at most the items still live (it is shorter
    when fewer are left); sampling when none is left raises ``RuntimeError``.

    Args:
        max_sample_count: how many times an item is returned before it is consumed.
        seed: seed of the private generator.

    >>> import torch
    >>> from streamrl.data import ListStorage, ReplayBuffer
    >>> rb = ReplayBuffer(storage=ListStorage(10), sampler=ConsumingSampler(), batch_size=3)
    >>> rb.extend([torch.tensor(i) for i in range(4)]).tolist()
    [0, 1, 2, 3]
    >>> len(rb.sample()), len(rb)
    (3, 1)
    >>> len(rb.sample()), len(rb)
    (1, 0)
    """

    keeps_write_state = True

    def __init__(self, max_sample_count: int = 1, *, seed: int | None = None) -> None:
        super().__init__(seed=seed)
        if (
            isinstance(max_sample_count, bool)
            or not isinstance(max_sample_count, int)
            or max_sample_count < 1
        ):
            raise ValueError(f"max_sample_count must be an int >= 1, found {max_sample_count!r}")
        self.max_sample_count = max_sample_count
        self._counts = torch.zeros(0, dtype=torch.long)  # per slot; -1: consumed
        self._live = torch.zeros(0, dtype=torch.bool)
        self._free: list[int] = []

    def _grow(self, size: int) -> None:
        if self._live.numel() < size:
            extra = size - self._live.numel()
            self._live = torch.cat([self._live, torch.zeros(extra, dtype=torch.bool)])
            self._counts = torch.cat([self._counts, torch.zeros(extra, dtype=torch.long)])

    def on_write(self, index, start, storage) -> None:
        """Written slots are live again, with a count of 0."""
        self._grow(storage.max_size)
        self._live[index] = True
        self._counts[index] = 0
        if self._free:
            written = set(index.tolist())
            self._free = [i for i in self._free if i not in written]

    def sampleable_count(self, storage) -> int:
        """Live items among the written slots."""
        n = len(storage)
        return int(self._live[:n].sum()) if self._live.numel() else 0

    def free_slots(self, n: int) -> torch.Tensor:
        """Up to ``n`` consumed slots, oldest consumed first (removed from the free list)."""
        taken, self._free = self._free[:n], self._free[n:]
        return torch.tensor(taken, dtype=torch.long)

    def sample(self, storage, batch_size: int):
        """Up to ``batch_size`` distinct live indices; consume those that reached the count."""
        batch_size = _check_batch_size(batch_size)
        live = self._live[: len(storage)].nonzero().reshape(-1)
        if live.numel() == 0:
            raise RuntimeError(
                "cannot sample: every item of the buffer was consumed (or none was written)"
            )
        pick = torch.randperm(live.numel(), generator=self._generator)[:batch_size]
        index = live[pick]
        self._counts[index] += 1
        done = index[self._counts[index] >= self.max_sample_count]
        self._live[done] = False
        self._free.extend(done.tolist())
        return index, {}

    def empty(self) -> None:
        """Forget every item and the free list."""
        self._counts = torch.zeros(0, dtype=torch.long)
        self._live = torch.zeros(0, dtype=torch.bool)
        self._free = []

    def sampling_state(self):
        """RNG state, per-slot counts and liveness, and the free list."""
        return {
            **super().sampling_state(),
            "counts": self._counts.clone(),
            "live": self._live.clone(),
            "free": list(self._free),
        }

    def _prepare_sampling_load(self, state) -> Commit:
        base = super()._prepare_sampling_load(state)
        where = f"{type(self).__name__} sampling state"
        counts = tensor_entry(state, "counts", where, dtype=torch.long, ndim=1).clone()
        live = tensor_entry(state, "live", where, dtype=torch.bool, shape=counts.shape).clone()
        free = list_entry(state, "free", where)
        if any(isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < counts.numel()
               for i in free):
            raise ValueError(f"{where}: 'free' must hold slots in [0, {counts.numel()})")

        def commit() -> None:
            base()
            self._counts, self._live, self._free = counts, live, list(free)

        return commit
