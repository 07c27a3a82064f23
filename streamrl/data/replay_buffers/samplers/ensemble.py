"""SamplerEnsemble: the member samplers of a replay-buffer ensemble and how batches pick them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from tensordict import TensorDict

from streamrl.data.replay_buffers._ensemble_state import members_state, prepare_members_state
from streamrl.data.replay_buffers._state import Commit, commit_all
from streamrl.data.replay_buffers.samplers.base import (
    Sampler,
    _check_batch_size,
    _prepare_generator_load,
)

__all__ = ["SamplerEnsemble"]


class SamplerEnsemble:
    """The samplers of an ensemble, with the rule that picks the members of each batch.

    A batch of ``batch_size`` takes ``num_buffer_sampled`` equal parts (default: one per
    member). The parts' members are drawn with probabilities ``p`` (with replacement; default
    uniform; ``"sampleable"``: in proportion to the members' lengths, empty ones excluded), or
    every member once, in order, with ``sample_from_all=True``.

    :meth:`sample` takes a :class:`StorageEnsemble` and returns the index as a TensorDict
    ``{"buffer_ids": [parts], "index": [parts, part]}``; :class:`ReplayBufferEnsemble` uses the
    same draw (:meth:`choose`) and lets each member buffer sample its part.

    Args:
        *samplers: one :class:`Sampler` per member.
        p: relative weights of the members, or ``"sampleable"``.
        sample_from_all: sample every member in each batch (not with ``p``).
        num_buffer_sampled: number of parts per batch.
        generator: draws the members (default: a generator seeded from torch's RNG).

    >>> import torch
    >>> from streamrl.data import LazyTensorStorage, RandomSampler, ReplayBuffer, StorageEnsemble
    >>> a, b = ReplayBuffer(storage=LazyTensorStorage(4)), ReplayBuffer(storage=LazyTensorStorage(4))
    >>> _ = a.extend(torch.zeros(4)), b.extend(torch.ones(4))
    >>> storages = StorageEnsemble(a.storage, b.storage)
    >>> samplers = SamplerEnsemble(RandomSampler(), RandomSampler(), sample_from_all=True)
    >>> index, info = samplers.sample(storages, 6)
    >>> index["buffer_ids"].tolist(), index["index"].shape
    ([0, 1], torch.Size([2, 3]))
    """

    def __init__(
        self,
        *samplers: Sampler,
        p: Sequence[float] | torch.Tensor | str | None = None,
        sample_from_all: bool = False,
        num_buffer_sampled: int | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        if not samplers:
            raise ValueError("SamplerEnsemble needs at least one sampler")
        for i, sampler in enumerate(samplers):
            if not isinstance(sampler, Sampler):
                raise TypeError(f"member {i} must be a Sampler, found {type(sampler).__name__}")
        self._samplers = tuple(samplers)
        k = len(samplers)
        if sample_from_all and p is not None:
            raise ValueError("sample_from_all=True samples every buffer: do not pass p")
        self.p = self._check_p(p, k)
        self.sample_from_all = bool(sample_from_all)
        if num_buffer_sampled is not None and (
            isinstance(num_buffer_sampled, bool)
            or not isinstance(num_buffer_sampled, int)
            or num_buffer_sampled <= 0
        ):
            raise ValueError(
                f"num_buffer_sampled must be a positive int, found {num_buffer_sampled!r}"
            )
        self.num_buffer_sampled = (
            k if sample_from_all or num_buffer_sampled is None else num_buffer_sampled
        )
        if generator is None:
            generator = torch.Generator()
            generator.manual_seed(int(torch.randint(0, 2**62, (1,)).item()))
        elif not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator, found {type(generator).__name__}")
        self._generator = generator

    @staticmethod
    def _check_p(p, k: int) -> torch.Tensor | str | None:
        if p is None:
            return None
        if isinstance(p, str):
            if p != "sampleable":
                raise ValueError(f"p must be weights or 'sampleable', found {p!r}")
            return p
        weights = torch.as_tensor(p, dtype=torch.float64).reshape(-1)
        if weights.numel() != k or bool((weights < 0).any()) or not weights.sum() > 0:
            raise ValueError(
                f"p must hold {k} non-negative weights with a positive sum, found "
                f"{weights.tolist()}"
            )
        return weights

    def __len__(self) -> int:
        """Number of member samplers."""
        return len(self._samplers)

    def __getitem__(self, index: int) -> Sampler:
        """The ``index``-th member sampler."""
        return self._samplers[index]

    def __repr__(self) -> str:
        names = ", ".join(type(s).__name__ for s in self._samplers)
        return f"SamplerEnsemble({names}, num_buffer_sampled={self.num_buffer_sampled})"

    def part_size(self, batch_size: int | None) -> int:
        """Items per part; ``ValueError`` unless ``batch_size`` splits evenly."""
        batch_size = _check_batch_size(batch_size)
        if batch_size % self.num_buffer_sampled:
            raise ValueError(
                f"batch_size {batch_size} is not a multiple of the {self.num_buffer_sampled} "
                "buffers sampled per batch"
            )
        return batch_size // self.num_buffer_sampled

    def choose(self, lengths: Sequence[int]) -> torch.Tensor:
        """The member of each part, given the members' current ``lengths``."""
        k = len(self._samplers)
        if len(lengths) != k:
            raise ValueError(f"expected {k} member lengths, found {len(lengths)}")
        if self.sample_from_all:
            return torch.arange(k)
        weights = self.p
        if isinstance(weights, str):  # "sampleable": by length, empty members excluded
            weights = torch.tensor([float(n) for n in lengths], dtype=torch.float64)
            if not weights.sum() > 0:
                raise RuntimeError("cannot sample: every buffer of the ensemble is empty")
        elif weights is None:
            weights = torch.ones(k, dtype=torch.float64)
        return torch.multinomial(
            weights, self.num_buffer_sampled, replacement=True, generator=self._generator
        )

    def sample(self, storage, batch_size: int) -> tuple[TensorDict, dict[str, Any]]:
        """``(index, info)``: ``index`` holds ``buffer_ids`` and each part's ``index``.

        ``storage`` is the :class:`StorageEnsemble` of the members; ``info["infos"]`` holds
        each part's sampler info.
        """
        if len(storage) != len(self._samplers):
            raise ValueError(
                f"the storage ensemble has {len(storage)} members, this sampler ensemble "
                f"{len(self._samplers)}"
            )
        part = self.part_size(batch_size)
        ids = self.choose([len(storage[i]) for i in range(len(storage))])
        indices, infos = [], []
        for i in ids.tolist():
            index, info = self._samplers[i].sample(storage[i], part)
            indices.append(index)
            infos.append(info)
        index_td = TensorDict(
            {"buffer_ids": ids, "index": torch.stack(indices)}, batch_size=[ids.numel()]
        )
        return index_td, {"infos": infos}

    def empty(self) -> None:
        """Empty every member sampler."""
        for sampler in self._samplers:
            sampler.empty()

    def state_dict(self) -> dict[str, Any]:
        """The members' states and the generator."""
        return {**members_state("SamplerEnsemble", self._samplers), "generator": self._generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` into an ensemble of the same member types (all or
        nothing)."""
        self._prepare_load(state)()

    def _prepare_load(self, state: dict[str, Any]) -> Commit:
        members = prepare_members_state(state, "SamplerEnsemble", self._samplers)
        generator = _prepare_generator_load(self._generator, state, "SamplerEnsemble state")
        return commit_all([members, generator])
