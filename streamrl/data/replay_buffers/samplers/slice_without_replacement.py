"""Slices without replacement: each stored step at most once per epoch."""

from __future__ import annotations

import torch

from streamrl.data.replay_buffers._state import Commit, check_tensor, entry, int_entry, list_entry
from streamrl.data.replay_buffers.samplers.base import _check_batch_size, _check_nonempty
from streamrl.data.replay_buffers.samplers.slice_sampler import SliceSampler

__all__ = ["SliceSamplerWithoutReplacement"]


class SliceSamplerWithoutReplacement(SliceSampler):
    """Sample slices so that no stored step is sampled twice in an epoch.

    An epoch cuts every trajectory into consecutive, non-overlapping windows of ``slice_len``
    steps (a shorter remainder is a window of its own when ``strict_length=False``, and is
    skipped otherwise) and visits them in a random order (``shuffle``) or in storage order.
    A batch holds the next ``num_slices`` windows; the epoch's last batch is shorter unless
    ``drop_last``, which skips it. :attr:`ran_out` turns true after the batch that ends an
    epoch (iterating a buffer stops there). Any write starts a new epoch. Slices carry the same
    ``init_key``/``truncated_key`` marks as :class:`SliceSampler`. Unlike TorchRL, a batch may
    hold two (non-overlapping) windows of one trajectory.

    Args:
        num_slices, slice_len, end_key, end_keys, traj_key, truncated_key, init_key,
        strict_length: as in :class:`SliceSampler`.
        drop_last: skip the incomplete last batch of each epoch.
        shuffle: visit the windows in a random order (default) or in storage order.
        seed: seed of the private generator.

    >>> from streamrl.data import LazyTensorStorage, ReplayBuffer
    >>> from tensordict import TensorDict
    >>> rb = ReplayBuffer(storage=LazyTensorStorage(20), batch_size=8,
    ...     sampler=SliceSamplerWithoutReplacement(slice_len=4, traj_key="episode"))
    >>> _ = rb.extend(TensorDict({"episode": torch.zeros(16, dtype=torch.long),
    ...                           "x": torch.arange(16)}, [16]))
    >>> sorted(torch.cat([rb.sample()["x"], rb.sample()["x"]]).tolist()) == list(range(16))
    True
    """

    def __init__(
        self,
        *,
        num_slices: int | None = None,
        slice_len: int | None = None,
        drop_last: bool = False,
        end_key=None,
        end_keys=None,
        traj_key=None,
        truncated_key=("next", "truncated"),
        init_key="is_init",
        strict_length: bool = True,
        shuffle: bool = True,
        seed: int | None = None,
    ) -> None:
        super().__init__(
            num_slices=num_slices,
            slice_len=slice_len,
            end_key=end_key,
            end_keys=end_keys,
            traj_key=traj_key,
            truncated_key=truncated_key,
            init_key=init_key,
            strict_length=strict_length,
            seed=seed,
        )
        self.drop_last = bool(drop_last)
        self.shuffle = bool(shuffle)
        self._epoch: tuple[int, torch.Tensor, torch.Tensor] | None = None  # slice_len, firsts, lens
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

    def _new_epoch(self, storage, slice_len: int) -> tuple[int, torch.Tensor, torch.Tensor]:
        starts, lengths = self._segments(storage)
        full = lengths // slice_len
        rest = lengths - full * slice_len
        seg = torch.repeat_interleave(torch.arange(lengths.numel()), full)
        within = torch.arange(int(full.sum())) - torch.repeat_interleave(full.cumsum(0) - full, full)
        firsts = [starts[seg] + within * slice_len]
        lens = [torch.full_like(firsts[0], slice_len)]
        if not self.strict_length:
            has_rest = rest > 0
            firsts.append((starts + full * slice_len)[has_rest])
            lens.append(rest[has_rest])
        first, length = torch.cat(firsts), torch.cat(lens)
        if self.shuffle:
            order = torch.randperm(first.numel(), generator=self._generator)
        else:
            order = torch.argsort(first)
        return slice_len, first[order], length[order]

    def sample(self, storage, batch_size: int):
        """The next ``num_slices`` windows of the epoch (a new epoch when it is exhausted)."""
        _check_nonempty(storage)
        num_slices, slice_len = self._split(_check_batch_size(batch_size))
        epoch = self._epoch
        left = 0 if epoch is None else epoch[1].numel() - self._pos
        if (
            epoch is None
            or epoch[0] != slice_len
            or left == 0
            or (self.drop_last and left < num_slices)
        ):
            epoch = self._new_epoch(storage, slice_len)
            if epoch[1].numel() == 0 or (self.drop_last and epoch[1].numel() < num_slices):
                raise RuntimeError(
                    f"an epoch holds {epoch[1].numel()} windows of {slice_len} steps, fewer than "
                    f"the {num_slices} slices a batch needs"
                    if epoch[1].numel()
                    else f"no trajectory in the buffer has {slice_len} steps"
                )
            self._epoch, self._pos = epoch, 0
        first = epoch[1][self._pos : self._pos + num_slices]
        lens = epoch[2][self._pos : self._pos + num_slices]
        self._pos += first.numel()
        left = epoch[1].numel() - self._pos
        self._ran_out = left == 0 or (self.drop_last and left < num_slices)
        return self._gather(first, lens, slice_len)

    def on_write(self, index, start, storage) -> None:
        """A write starts a new epoch."""
        super().on_write(index, start, storage)
        self.empty()

    def empty(self) -> None:
        """Drop the current epoch."""
        super().empty()
        self._epoch = None
        self._pos = 0
        self._ran_out = False

    def sampling_state(self):
        """RNG state plus the current epoch's windows and position."""
        epoch = self._epoch
        return {
            **super().sampling_state(),
            "epoch": None if epoch is None else [epoch[0], epoch[1].clone(), epoch[2].clone()],
            "pos": self._pos,
            "ran_out": self._ran_out,
        }

    def _prepare_sampling_load(self, state) -> Commit:
        base = super()._prepare_sampling_load(state)
        where = f"{type(self).__name__} sampling state"
        epoch = entry(state, "epoch", where)
        if epoch is not None:
            epoch = list_entry(state, "epoch", where, 3)
            first = int_entry({"epoch[0]": epoch[0]}, "epoch[0]", where)
            starts = check_tensor(epoch[1], f"{where}: 'epoch[1]'").clone()
            lens = check_tensor(epoch[2], f"{where}: 'epoch[2]'").clone()
            epoch = (first, starts, lens)
        pos = int_entry(state, "pos", where)
        ran_out = entry(state, "ran_out", where)
        if not isinstance(ran_out, bool):
            raise ValueError(f"{where}: 'ran_out' must be a bool, found {ran_out!r}")

        def commit() -> None:
            base()
            self._epoch, self._pos, self._ran_out = epoch, pos, ran_out

        return commit
