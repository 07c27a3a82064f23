"""Seed a replay buffer with the content of another one (e.g. an offline dataset)."""

from __future__ import annotations

import torch

from streamrl.data.replay_buffers.replay_buffer import ReplayBuffer

__all__ = ["prefill_replay_buffer"]


def prefill_replay_buffer(
    rb: ReplayBuffer,
    dataset: ReplayBuffer | str,
    n_samples: int | None = None,
    chunk_size: int = 1000,
) -> ReplayBuffer:
    """Copy the items of ``dataset`` into ``rb``, in storage order, ``chunk_size`` at a time.

    The copy goes through ``rb.extend``, so ``rb``'s writer, sampler and write transforms see
    it as ordinary writes; ``dataset``'s sample transforms are not applied.

    Args:
        rb: the buffer to fill (returned, for chaining).
        dataset: a replay buffer holding the data, or a dataset id for
            :func:`streamrl.data.datasets.load_dataset` (``"minari:ID"``, ``"d4rl:PATH"``).
        n_samples: copy only the first ``n_samples`` items (default: all).
        chunk_size: items per ``extend`` (and the batch size of a dataset loaded by id).

    >>> import torch
    >>> from tensordict import TensorDict
    >>> from streamrl.data import LazyTensorStorage
    >>> dataset = ReplayBuffer(storage=LazyTensorStorage(500))
    >>> _ = dataset.extend(TensorDict({"obs": torch.randn(500, 4)}, [500]))
    >>> online = ReplayBuffer(storage=LazyTensorStorage(10_000))
    >>> len(prefill_replay_buffer(online, dataset, n_samples=200))
    200
    """
    if not isinstance(rb, ReplayBuffer):
        raise TypeError(f"rb must be a ReplayBuffer, found {type(rb).__name__}")
    if isinstance(dataset, str):
        # imported here: the datasets build on the replay buffers
        from streamrl.data.datasets.registry import load_dataset

        dataset = load_dataset(dataset, batch_size=chunk_size)
    if not isinstance(dataset, ReplayBuffer):
        raise TypeError(
            f"dataset must be a ReplayBuffer or a dataset id ('minari:ID', 'd4rl:PATH'), "
            f"found {type(dataset).__name__}"
        )
    if dataset is rb:
        raise ValueError("cannot prefill a replay buffer from itself")
    if n_samples is not None and (
        isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 0
    ):
        raise ValueError(f"n_samples must be an int >= 0 or None, found {n_samples!r}")
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive int, found {chunk_size!r}")
    total = len(dataset.storage)
    if n_samples is not None:
        total = min(total, n_samples)
    for lo in range(0, total, chunk_size):
        rb.extend(dataset[torch.arange(lo, min(total, lo + chunk_size))])
    return rb
