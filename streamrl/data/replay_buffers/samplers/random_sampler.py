"""Uniform sampling with replacement."""

from __future__ import annotations

import torch

from streamrl.data.replay_buffers.samplers.base import Sampler, _check_batch_size, _check_nonempty

__all__ = ["RandomSampler"]


class RandomSampler(Sampler):
    """Sample indices uniformly, with replacement, among the written slots.

    >>> s = RandomSampler(seed=0)
    """

    def sample(self, storage, batch_size: int):
        """Uniform indices in ``[0, len(storage))``."""
        n = _check_nonempty(storage)
        batch_size = _check_batch_size(batch_size)
        index = torch.randint(0, n, (batch_size,), generator=self._generator)
        return index, {}
