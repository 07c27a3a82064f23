"""ReplayBufferEnsemble: sample from several replay buffers at once."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from tensordict import TensorDictBase

from streamrl.data.replay_buffers.replay_buffer import ReplayBuffer

__all__ = ["ReplayBufferEnsemble"]


def _stack(items):
    return torch.stack(items)


class ReplayBufferEnsemble:
    """Several replay buffers sampled as one: each batch takes equal parts from some of them.

    A batch of ``batch_size`` picks ``num_buffer_sampled`` buffers (default: as many as there
    are) with probabilities ``p`` (with replacement; default uniform; ``"sampleable"``: in
    proportion to their lengths, empty ones excluded), or every buffer once, in order, with
    ``sample_from_all=True``. Each picked buffer samples ``batch_size / num_buffer_sampled``
    items through its own collate and transform; ``collate_fn`` (default ``torch.stack``)
    joins the parts, so TensorDict samples have batch size ``[num_buffer_sampled, part]``;
    ``transform`` then runs on the whole. ``info`` holds ``buffer_ids`` and the parts' infos.

    Writing goes to the members (``ensemble[i].extend(...)``). With ``routing_key`` (a
    per-record member id) or ``routing_dim`` (a batch dim with one entry per member),
    :meth:`extend` routes a batch to the members.

    Args:
        *rbs: the replay buffers.
        transform: applied to each joined batch.
        batch_size: default batch size of :meth:`sample`.
        collate_fn: joins the list of parts.
        p: relative weights of the buffers, or ``"sampleable"``.
        sample_from_all: sample every buffer in each batch (not with ``p``).
        num_buffer_sampled: number of parts per batch.
        routing_key: key of member ids, for :meth:`extend`.
        routing_dim: batch dim of members, for :meth:`extend`.
        generator: draws the buffer choices (default: a generator seeded from torch's RNG).

    >>> from tensordict import TensorDict
    >>> from streamrl.data import LazyTensorStorage, TensorDictReplayBuffer
    >>> a = TensorDictReplayBuffer(storage=LazyTensorStorage(10))
    >>> b = TensorDictReplayBuffer(storage=LazyTensorStorage(10))
    >>> ens = ReplayBufferEnsemble(a, b, sample_from_all=True, batch_size=8)
    >>> _ = ens[0].extend(TensorDict({"x": torch.zeros(4)}, [4]))
    >>> _ = ens[1].extend(TensorDict({"x": torch.ones(4)}, [4]))
    >>> s = ens.sample()
    >>> s.batch_size, s["x"][:, 0].tolist()
    (torch.Size([2, 4]), [0.0, 1.0])
    """

    def __init__(
        self,
        *rbs: ReplayBuffer,
        transform: Callable | None = None,
        batch_size: int | None = None,
        collate_fn: Callable | None = None,
        p: Sequence[float] | torch.Tensor | str | None = None,
        sample_from_all: bool = False,
        num_buffer_sampled: int | None = None,
        routing_key=None,
        routing_dim: int | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        if not rbs:
            raise ValueError("ReplayBufferEnsemble needs at least one replay buffer")
        for i, rb in enumerate(rbs):
            if not isinstance(rb, ReplayBuffer):
                raise TypeError(f"member {i} must be a ReplayBuffer, found {type(rb).__name__}")
        self._rbs = tuple(rbs)
        k = len(rbs)
        if sample_from_all and p is not None:
            raise ValueError("sample_from_all=True samples every buffer: do not pass p")
        if isinstance(p, str):
            if p != "sampleable":
                raise ValueError(f"p must be weights or 'sampleable', found {p!r}")
            self._p: torch.Tensor | str | None = p
        elif p is not None:
            weights = torch.as_tensor(p, dtype=torch.float64).reshape(-1)
            if weights.numel() != k or bool((weights < 0).any()) or not weights.sum() > 0:
                raise ValueError(
                    f"p must hold {k} non-negative weights with a positive sum, found "
                    f"{weights.tolist()}"
                )
            self._p = weights
        else:
            self._p = None
        self.sample_from_all = bool(sample_from_all)
        if num_buffer_sampled is not None and (
            isinstance(num_buffer_sampled, bool)
            or not isinstance(num_buffer_sampled, int)
            or num_buffer_sampled <= 0
        ):
            raise ValueError(
                f"num_buffer_sampled must be a positive int, found {num_buffer_sampled!r}"
            )
        self.num_buffer_sampled = k if sample_from_all or num_buffer_sampled is None else (
            num_buffer_sampled
        )
        if routing_key is not None and routing_dim is not None:
            raise ValueError("give routing_key or routing_dim, not both")
        self.routing_key = routing_key
        self.routing_dim = routing_dim
        self._batch_size = batch_size
        self._collate_fn = collate_fn if collate_fn is not None else _stack
        self._transform = transform
        if generator is None:
            generator = torch.Generator()
            generator.manual_seed(int(torch.randint(0, 2**62, (1,)).item()))
        self._generator = generator

    def __len__(self) -> int:
        """Number of member buffers."""
        return len(self._rbs)

    def __getitem__(self, index: int) -> ReplayBuffer:
        """The ``index``-th member buffer."""
        return self._rbs[index]

    def __repr__(self) -> str:
        return f"ReplayBufferEnsemble({', '.join(repr(rb) for rb in self._rbs)})"

    def _choose(self) -> torch.Tensor:
        k = len(self._rbs)
        if self.sample_from_all:
            return torch.arange(k)
        weights = self._p
        if isinstance(weights, str):  # "sampleable": by length, empty members excluded
            weights = torch.tensor([float(len(rb)) for rb in self._rbs], dtype=torch.float64)
            if not weights.sum() > 0:
                raise RuntimeError("cannot sample: every buffer of the ensemble is empty")
        elif weights is None:
            weights = torch.ones(k, dtype=torch.float64)
        return torch.multinomial(
            weights, self.num_buffer_sampled, replacement=True, generator=self._generator
        )

    def sample(self, batch_size: int | None = None, return_info: bool = False):
        """A batch of equal parts from the chosen buffers (``(batch, info)`` if asked)."""
        batch_size = self._batch_size if batch_size is None else batch_size
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
            raise ValueError(f"batch_size must be a positive int, found {batch_size!r}")
        if batch_size % self.num_buffer_sampled:
            raise ValueError(
                f"batch_size {batch_size} is not a multiple of the {self.num_buffer_sampled} "
                "buffers sampled per batch"
            )
        part = batch_size // self.num_buffer_sampled
        ids = self._choose()
        parts, infos = [], []
        for i in ids.tolist():
            data, info = self._rbs[i].sample(part, return_info=True)
            parts.append(data)
            infos.append(info)
        data = self._collate_fn(parts)
        if self._transform is not None:
            data = self._transform(data)
        if not return_info:
            return data
        return data, {"buffer_ids": ids, "infos": infos}

    def extend(self, data) -> list[torch.Tensor]:
        """Route a batch to the members (needs ``routing_key`` or ``routing_dim``)."""
        if self.routing_key is None and self.routing_dim is None:
            raise RuntimeError(
                "ReplayBufferEnsemble is read-only: extend its members (ensemble[i].extend), "
                "or pass routing_key= or routing_dim="
            )
        if not isinstance(data, TensorDictBase):
            raise TypeError(f"routed writes need a TensorDict, found {type(data).__name__}")
        k = len(self._rbs)
        if self.routing_dim is not None:
            if data.batch_size[self.routing_dim] != k:
                raise ValueError(
                    f"routing_dim {self.routing_dim} must have one entry per member ({k}), "
                    f"found {data.batch_size[self.routing_dim]}"
                )
            return [rb.extend(part) for rb, part in zip(self._rbs, data.unbind(self.routing_dim))]
        data = data.reshape(-1)
        ids = data.get(self.routing_key, None)
        if ids is None:
            raise KeyError(f"routing key {self.routing_key!r} not in the batch")
        ids = ids.reshape(data.batch_size[0], -1)[:, 0].long()
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= k):
            raise ValueError(f"member ids must be in [0, {k}), found {ids.unique().tolist()}")
        return [rb.extend(data[ids == i]) for i, rb in enumerate(self._rbs) if (ids == i).any()]

    def state_dict(self) -> dict[str, Any]:
        """The members' states and the generator."""
        return {
            "format": "streamrl.replay_buffer_ensemble/1",
            "members": [rb.state_dict() for rb in self._rbs],
            "generator": self._generator.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` into an ensemble of identically configured members."""
        if state.get("format") != "streamrl.replay_buffer_ensemble/1":
            raise ValueError(f"not a replay buffer ensemble state: {state.get('format')!r}")
        if len(state["members"]) != len(self._rbs):
            raise ValueError(
                f"the state has {len(state['members'])} members, this ensemble {len(self._rbs)}"
            )
        for rb, member in zip(self._rbs, state["members"]):
            rb.load_state_dict(member)
        self._generator.set_state(state["generator"])
