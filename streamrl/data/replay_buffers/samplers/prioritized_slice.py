"""Slices whose start steps are drawn by priority (prioritized experience replay)."""

from __future__ import annotations

import numpy as np
import torch

from streamrl.data.replay_buffers._state import Commit, entry
from streamrl.data.replay_buffers.samplers.base import _check_batch_size, _check_nonempty
from streamrl.data.replay_buffers.samplers.prioritized import PrioritizedSampler
from streamrl.data.replay_buffers.samplers.slice_sampler import SliceSampler

__all__ = ["PrioritizedSliceSampler"]


class PrioritizedSliceSampler(SliceSampler):
    """A :class:`SliceSampler` whose slice starts are drawn with probability ``P(i)``.

    Each stored step has a priority, as in :class:`PrioritizedSampler`:
    ``p_i = (priority_i + eps)^alpha``, new steps get the largest value seen so far. Among the
    steps that can start a slice (the window fits in the trajectory, or, with
    ``strict_length=False``, the first step of a shorter trajectory), start ``i`` is drawn with
    ``p_i / sum_j p_j``. Every step of a slice carries the importance weight of its start,
    ``(p_i / p_min)^-beta`` with ``p_min`` the smallest start priority, under ``_weight`` (and
    ``priority_weight`` in ``info``). Priorities are per step: update them with the sample's
    ``index`` (:meth:`update_priority`; a step that is not a valid start is never drawn).

    Args:
        max_capacity: number of slots (the storage's ``max_size``).
        alpha, beta, eps: as in :class:`PrioritizedSampler`.
        num_slices, slice_len, end_key, end_keys, traj_key, cache_values, truncated_key,
        init_key, strict_length, span: as in :class:`SliceSampler`.
        seed: seed of the private generator.

    >>> from streamrl.data import LazyTensorStorage, TensorDictReplayBuffer
    >>> from tensordict import TensorDict
    >>> rb = TensorDictReplayBuffer(storage=LazyTensorStorage(16), batch_size=8,
    ...     sampler=PrioritizedSliceSampler(16, alpha=1.0, beta=1.0, slice_len=4,
    ...                                     traj_key="episode"))
    >>> _ = rb.extend(TensorDict({"episode": torch.zeros(16, dtype=torch.long)}, [16]))
    >>> rb.update_priority(torch.arange(16), torch.zeros(16))
    >>> rb.update_priority(5, 1.0)
    >>> rb.sample()["index"].tolist()
    [5, 6, 7, 8, 5, 6, 7, 8]
    """

    def __init__(
        self,
        max_capacity: int,
        alpha: float,
        beta: float,
        eps: float = 1e-8,
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
        super().__init__(
            num_slices=num_slices,
            slice_len=slice_len,
            end_key=end_key,
            end_keys=end_keys,
            traj_key=traj_key,
            cache_values=cache_values,
            truncated_key=truncated_key,
            init_key=init_key,
            strict_length=strict_length,
            span=span,
            seed=seed,
        )
        # The priorities: one PrioritizedSampler's trees, sharing this sampler's generator.
        self._prio = PrioritizedSampler(max_capacity, alpha, beta, eps, seed=0)
        self._prio._generator = self._generator

    @property
    def max_capacity(self) -> int:
        """Number of slots the priorities cover."""
        return self._prio.max_capacity

    @property
    def alpha(self) -> float:
        """Priority exponent."""
        return self._prio.alpha

    @property
    def beta(self) -> float:
        """Importance-sampling exponent (may be changed)."""
        return self._prio.beta

    @beta.setter
    def beta(self, value: float) -> None:
        self._prio.beta = float(value)

    def __setstate__(self, state) -> None:
        super().__setstate__(state)
        self._prio._generator = self._generator  # one generator, as before pickling

    def _use_generator(self, generator: torch.Generator) -> None:
        super()._use_generator(generator)
        self._prio._generator = generator

    def sample(self, storage, batch_size: int):
        """Slices whose starts are drawn by priority; ``info`` adds ``_weight`` per step."""
        n = _check_nonempty(storage)
        num_slices, slice_len = self._split(_check_batch_size(batch_size))
        if n > self.max_capacity:
            raise ValueError(
                f"storage holds {n} items but the sampler covers {self.max_capacity} slots"
            )
        starts, lengths, lo, counts, _ = self._windows(storage, slice_len)
        seg = torch.repeat_interleave(torch.arange(counts.numel()), counts)
        offset = torch.arange(int(counts.sum())) - torch.repeat_interleave(
            counts.cumsum(0) - counts, counts
        )
        offset = offset + lo[seg]
        if seg.numel() == 0:
            raise RuntimeError(
                f"no trajectory in the buffer has {slice_len} steps (longest: {int(lengths.max())})"
            )
        positions = (starts[seg] + offset).numpy()
        p = self._prio._sum_tree.leaves[positions]
        cum = np.cumsum(p)
        total = float(cum[-1])
        if not total > 0:
            raise RuntimeError("all slice-start priorities are zero: cannot sample (use eps > 0)")
        u = torch.rand(num_slices, generator=self._generator, dtype=torch.float64).numpy()
        pick = np.minimum(np.searchsorted(cum, u * total, side="right"), cum.size - 1)
        pick_t = torch.from_numpy(pick)
        first, lens = self._clip(seg[pick_t], offset[pick_t], slice_len, starts, lengths)
        p_min = float(p[p > 0].min())
        weight = torch.from_numpy(np.power(p[pick] / p_min, -self.beta).astype(np.float32))
        index, info = self._gather(first, lens, slice_len)
        weight = torch.repeat_interleave(weight, lens)
        info["_weight"] = weight
        info["priority_weight"] = weight
        return index, info

    def on_write(self, index, start, storage) -> None:
        """Written steps get the max priority; trajectory boundaries are recomputed."""
        super().on_write(index, start, storage)
        self._prio.on_write(index, start, storage)

    def update_priority(self, index, priority, length: int | None = None) -> None:
        """Set per-step priorities (see :meth:`PrioritizedSampler.update_priority`)."""
        self._prio.update_priority(index, priority, length)

    def check_priority(self, priority) -> None:
        """See :meth:`PrioritizedSampler.check_priority`."""
        self._prio.check_priority(priority)

    def empty(self) -> None:
        """Drop the cache and every priority."""
        super().empty()
        self._prio.empty()

    def state_dict(self):
        """RNG state and the priorities."""
        return {**super().state_dict(), "priorities": self._prio.state_dict()}

    def _prepare_load(self, state) -> Commit:
        """Check :meth:`state_dict`'s output (the capacity must match); return the commit."""
        base = super()._prepare_load(state)
        prio = self._prio._prepare_load(entry(state, "priorities", "PrioritizedSliceSampler state"))

        def commit() -> None:
            base()
            prio()
            self._prio._generator = self._generator

        return commit
