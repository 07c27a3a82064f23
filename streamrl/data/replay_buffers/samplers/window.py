"""Windows of consecutive steps that end at the items another sampler picks."""

from __future__ import annotations

from typing import Any

import torch

from streamrl.data.replay_buffers._state import Commit, check_type, entry
from streamrl.data.replay_buffers.samplers.base import Sampler, _check_batch_size, _check_nonempty

__all__ = ["WindowSampler"]


class WindowSampler(Sampler):
    """Draw window ends with ``sampler``, then read each end with the up to ``window - 1``
    steps before it in the same trajectory: the layout of
    :meth:`~streamrl.envs.transforms.CatFrames.make_rb_transform_and_sampler`'s
    :class:`SliceSampler` (windows clipped at their trajectory's start), with the ends chosen
    by any sampler, e.g. a :class:`StalenessAwareSampler` that bounds how old a sampled
    transition may be (the steps before it are only its frame history).

    A sample of ``batch_size`` (a multiple of ``window``) reads ``batch_size // window``
    windows, laid out one after the other, oldest step first; a window stops at a change of
    ``traj_key``, at the storage's first row, or, in a full circular storage, at the write head
    (older and newer data meet there), so windows may be shorter and the sample with them.
    ``init_key`` is set at each window's first step. ``consumer_version`` (and whether the
    buffer :meth:`can_sample`) are the inner sampler's.

    Args:
        sampler: picks the windows' last steps.
        window: the most steps per window.
        traj_key: the storage key of trajectory ids (e.g. ``("collector", "traj_ids")``).
        init_key: where the window-start flag goes.

    >>> from tensordict import TensorDict
    >>> from streamrl.data import LazyTensorStorage, RandomSampler, TensorDictReplayBuffer
    >>> rb = TensorDictReplayBuffer(storage=LazyTensorStorage(10), sampler=WindowSampler(
    ...     RandomSampler(seed=0), 3, traj_key="traj"), batch_size=6)
    >>> _ = rb.extend(TensorDict({"traj": torch.tensor([0, 0, 0, 0, 1, 1])}, [6]))
    >>> s = rb.sample()  # 2 windows; one that ends at step 4 (trajectory 1) has 1 step
    >>> bool((s["traj"][s["is_init"].squeeze(-1).cumsum(0) == 1] == s["traj"][0]).all())
    True
    """

    def __init__(self, sampler: Sampler, window: int, *, traj_key: Any,
                 init_key: Any = "is_init") -> None:
        if not isinstance(sampler, Sampler):
            raise TypeError(f"sampler must be a Sampler, found {type(sampler).__name__}")
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise ValueError(f"window must be a positive int, found {window!r}")
        super().__init__(seed=0)  # unused: every draw is the inner sampler's
        self.sampler = sampler
        self.window = window
        self.traj_key = traj_key
        self.init_key = init_key
        self.keeps_write_state = sampler.keeps_write_state

    # -- the inner sampler's staleness bound ------------------------------------------------
    @property
    def consumer_version(self) -> int:
        """The inner sampler's ``consumer_version`` (``AttributeError`` when it has none)."""
        return self.sampler.consumer_version  # type: ignore[attr-defined]

    @consumer_version.setter
    def consumer_version(self, value: int) -> None:
        if not hasattr(self.sampler, "consumer_version"):
            raise AttributeError(f"{type(self.sampler).__name__} has no consumer_version")
        self.sampler.consumer_version = value

    def _ends(self, batch_size: int) -> int:
        batch_size = _check_batch_size(batch_size)
        if batch_size % self.window:
            raise ValueError(f"batch_size {batch_size} is not a multiple of window="
                             f"{self.window}")
        return batch_size // self.window

    def can_sample(self, storage, batch_size: int) -> bool:
        """Whether the inner sampler can draw the windows' ends."""
        return self.sampler.can_sample(storage, self._ends(batch_size))

    def sample(self, storage, batch_size: int) -> tuple[torch.Tensor, dict[str, Any]]:
        """Flat indices of the windows; ``info[init_key]`` flags their first steps."""
        n = _check_nonempty(storage)
        ends, _ = self.sampler.sample(storage, self._ends(batch_size))
        ends = ends.reshape(-1).long()
        full = n == storage.max_size
        back = torch.arange(self.window)  # steps back from the end
        pos = ends[:, None] - back  # [ends, window], newest first
        ok = pos >= 0
        if full:
            ok = torch.ones_like(ok)
            # stepping back from the oldest row (at the head) would reach the newest
            head = storage.head % n
            crossed = (pos[:, :-1] % n) == head
            ok[:, 1:] &= ~crossed
            pos = pos % n
        try:
            ids = storage.column(self.traj_key)
        except (KeyError, TypeError, AttributeError):
            raise KeyError(f"WindowSampler: the storage has no {self.traj_key!r} entry (the "
                           "trajectory id of each step)") from None
        ids = ids.reshape(n, -1)[:, 0]
        ok &= ids[pos.clamp_min(0)] == ids[ends][:, None]
        ok = ok.long().cumprod(1).bool()  # a window stops at its first break
        ordered, keep = pos.flip(1), ok.flip(1)  # oldest step first
        index = ordered[keep]
        first = torch.zeros_like(keep)
        first[torch.arange(len(keep)), keep.long().argmax(1)] = True
        return index, {self.init_key: first[keep].unsqueeze(-1)}

    # -- delegated hooks and state ----------------------------------------------------------
    def on_write(self, index, start, storage) -> None:
        """The inner sampler's hook."""
        self.sampler.on_write(index, start, storage)

    def empty(self) -> None:
        """The inner sampler's hook."""
        self.sampler.empty()

    def sampling_state(self) -> dict[str, Any]:
        """The inner sampler's :meth:`~Sampler.sampling_state`."""
        return self.sampler.sampling_state()

    def _prepare_sampling_load(self, state: dict[str, Any]) -> Commit:
        return self.sampler._prepare_sampling_load(state)

    def state_dict(self) -> dict[str, Any]:
        """``type`` and the inner sampler's state."""
        return {"type": type(self).__name__, "sampler": self.sampler.state_dict()}

    def _prepare_load(self, state: dict[str, Any]) -> Commit:
        check_type(state, type(self).__name__, "sampler")
        return self.sampler._prepare_load(entry(state, "sampler", "WindowSampler state"))

    def __repr__(self) -> str:
        return (f"WindowSampler({self.sampler!r}, window={self.window}, "
                f"traj_key={self.traj_key!r})")
