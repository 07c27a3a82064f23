"""Replay buffers as torch datasets and torchdata nodes."""

from __future__ import annotations

from typing import Any

import torch.utils.data._utils.collate as _collate
from tensordict import TensorDictBase
from torch.utils.data import IterableDataset, get_worker_info
from torchdata.nodes import BaseNode

__all__ = ["ReplayDataset", "ReplayNode"]


def _install_tensordict_passthrough() -> None:
    """Let ``DataLoader(..., batch_size=None)`` pass TensorDict batches through unchanged.

    With ``batch_size=None`` a DataLoader converts each item with torch's ``default_convert``,
    which treats a TensorDict as a mapping and fails (iterating a TensorDict walks its first
    dim, not its keys). This wraps ``default_convert`` so that TensorDicts are returned as they
    are; every other input goes to the original function. Installed once, on import.
    """
    original = _collate.default_convert
    if getattr(original, "_streamrl_passthrough", False):
        return

    def default_convert(data):
        if isinstance(data, TensorDictBase):
            return data
        return original(data)

    default_convert.__doc__ = original.__doc__
    # mypy does not model attributes set on a function
    default_convert._streamrl_passthrough = True  # type: ignore[attr-defined]
    _collate.default_convert = default_convert


_install_tensordict_passthrough()


def _check_num_batches(num_batches):
    if num_batches is not None and (
        isinstance(num_batches, bool) or not isinstance(num_batches, int) or num_batches < 0
    ):
        raise ValueError(f"num_batches must be an int >= 0 or None, found {num_batches!r}")
    return num_batches


class ReplayDataset(IterableDataset):
    """An ``IterableDataset`` that yields ``rb.sample(batch_size)`` batches.

    Iteration stops after ``num_batches`` batches; with ``num_batches=None`` it never stops,
    except with an epoch-based sampler (:class:`SamplerWithoutReplacement`), where it stops at
    the end of the epoch. Use it with ``DataLoader(dataset, batch_size=None)`` (the buffer
    batches). With ``num_workers > 0`` each worker samples from its own copy of the buffer (a
    file-backed storage is shared) with its generator reseeded from the worker seed.

    It implements ``state_dict``/``load_state_dict`` (sampler RNG and epoch cursor plus the
    batch count), which ``torchdata.stateful_dataloader.StatefulDataLoader`` uses to resume.
    Exact resumption needs a buffer without ``prefetch`` (its thread samples ahead).
    """

    def __init__(self, rb, num_batches: int | None = None, batch_size: int | None = None) -> None:
        self.rb = rb
        self.num_batches = _check_num_batches(num_batches)
        self.batch_size = batch_size
        self._yielded = 0
        self._resume = False

    def __iter__(self):
        info = get_worker_info()
        if info is not None:
            self.rb.sampler.manual_seed(info.seed)
        sampler = self.rb.sampler
        if not self._resume:
            self._yielded = 0
        self._resume = False
        while self.num_batches is None or self._yielded < self.num_batches:
            batch = self.rb.sample(self.batch_size)
            self._yielded += 1
            yield batch
            if sampler.has_epochs and sampler.ran_out:
                break

    def __len__(self) -> int:
        if self.num_batches is None:
            raise TypeError("a ReplayDataset without num_batches has no length")
        return self.num_batches

    def state_dict(self) -> dict[str, Any]:
        """Sampler RNG/epoch state and how many batches this pass yielded."""
        return {"sampler": self.rb.sampler.sampling_state(), "yielded": self._yielded}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume from :meth:`state_dict`."""
        self.rb.sampler.load_sampling_state(state["sampler"])
        self._yielded = int(state["yielded"])
        self._resume = True


class ReplayNode(BaseNode):
    """A ``torchdata.nodes`` source that yields ``rb.sample(batch_size)`` batches.

    ``get_state()`` holds the sampler's RNG and epoch cursor and the number of batches yielded
    since the last reset, so ``torchdata.nodes.Loader(node).state_dict()`` /
    ``load_state_dict()`` resume to exactly the same batches (as long as the buffer holds the
    same data; save that with ``rb.dumps``). ``reset()`` without a state starts a new pass and
    continues the random stream. A pass ends after ``num_batches`` batches, at the end of an
    epoch for epoch-based samplers, or never.

    >>> from torchdata.nodes import Loader
    """

    def __init__(self, rb, num_batches: int | None = None, batch_size: int | None = None) -> None:
        super().__init__()
        self.rb = rb
        self.num_batches = _check_num_batches(num_batches)
        self.batch_size = batch_size
        self._yielded = 0
        self._done = False

    def reset(self, initial_state: dict[str, Any] | None = None) -> None:
        """Start a pass, or resume the one ``initial_state`` describes."""
        super().reset(initial_state)
        if initial_state is not None:
            self.rb.sampler.load_sampling_state(initial_state["sampler"])
            self._yielded = int(initial_state["yielded"])
            self._done = bool(initial_state["done"])
        else:
            self._yielded = 0
            self._done = False

    def next(self):
        """The next sampled batch, or ``StopIteration`` at the end of the pass."""
        if self._done or (self.num_batches is not None and self._yielded >= self.num_batches):
            raise StopIteration
        batch = self.rb.sample(self.batch_size)
        self._yielded += 1
        sampler = self.rb.sampler
        if sampler.has_epochs and sampler.ran_out:
            self._done = True
        return batch

    def get_state(self) -> dict[str, Any]:
        """Sampler RNG/epoch state, batches yielded in this pass, end-of-pass flag."""
        return {
            "sampler": self.rb.sampler.sampling_state(),
            "yielded": self._yielded,
            "done": self._done,
        }
