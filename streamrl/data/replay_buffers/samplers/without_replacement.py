"""Epoch-based sampling: every written index once per epoch."""

from __future__ import annotations

import torch

from streamrl.data.replay_buffers._state import Commit, check_tensor, entry, int_entry
from streamrl.data.replay_buffers.samplers.base import Sampler, _check_batch_size, _check_nonempty

__all__ = ["SamplerWithoutReplacement"]


class SamplerWithoutReplacement(Sampler):
    """Visit each index once per epoch, in a random (or sequential) order.

    An epoch is a permutation of the indices written when it starts; items written during an
    epoch join the next one. The last batch of an epoch is shorter unless ``drop_last``, in
    which case the leftover indices are skipped. :attr:`ran_out` is true right after the batch
    that ended an epoch, and iterating a buffer with this sampler stops there.

    Args:
        drop_last: skip the incomplete last batch of each epoch.
        shuffle: random order (default) or ``0, 1, 2, ...``.
        seed: seed of the private generator.
    """

    def __init__(self, *, drop_last: bool = False, shuffle: bool = True, seed: int | None = None):
        super().__init__(seed=seed)
        self.drop_last = bool(drop_last)
        self.shuffle = bool(shuffle)
        self._perm: torch.Tensor | None = None
        self._pos = 0
        self._ran_out = False

    @property
    def ran_out(self) -> bool:
        """True after the batch that completed an epoch."""
        return self._ran_out

    @property
    def has_epochs(self) -> bool:
        """Iteration over a buffer stops at the end of each epoch."""
        return True

    def _left(self) -> int:
        return 0 if self._perm is None else self._perm.numel() - self._pos

    def _exhausted(self, batch_size: int) -> bool:
        left = self._left()
        return left == 0 or (self.drop_last and left < batch_size)

    def sample(self, storage, batch_size: int):
        """The next ``batch_size`` indices of the current epoch (a new one when exhausted)."""
        n = _check_nonempty(storage)
        batch_size = _check_batch_size(batch_size)
        if self.drop_last and n < batch_size:
            raise ValueError(
                f"drop_last=True needs at least batch_size={batch_size} items, found {n}"
            )
        perm = self._perm
        if perm is None or self._exhausted(batch_size):  # no epoch yet counts as exhausted
            if self.shuffle:
                perm = torch.randperm(n, generator=self._generator)
            else:
                perm = torch.arange(n)
            self._perm = perm
            self._pos = 0
        index = perm[self._pos : self._pos + batch_size]
        self._pos += index.numel()
        self._ran_out = self._exhausted(batch_size)
        return index, {}

    def empty(self) -> None:
        """Drop the current epoch."""
        self._perm = None
        self._pos = 0
        self._ran_out = False

    def sampling_state(self):
        """RNG state plus the current epoch's permutation and position."""
        return {
            **super().sampling_state(),
            "perm": self._perm.clone() if self._perm is not None else None,
            "pos": self._pos,
            "ran_out": self._ran_out,
        }

    def _prepare_sampling_load(self, state) -> Commit:
        base = super()._prepare_sampling_load(state)
        where = f"{type(self).__name__} sampling state"
        perm = entry(state, "perm", where)
        if perm is not None:
            perm = check_tensor(perm, f"{where}: 'perm'", dtype=torch.long, ndim=1).clone()
        pos = int_entry(state, "pos", where, 0, perm.numel() if perm is not None else 0)
        ran_out = entry(state, "ran_out", where)
        if not isinstance(ran_out, bool):
            raise ValueError(f"{where}: 'ran_out' must be a bool, found {ran_out!r}")

        def commit() -> None:
            base()
            self._perm, self._pos, self._ran_out = perm, pos, ran_out

        return commit
