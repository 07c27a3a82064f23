"""ReplayBufferEnsemble: sample from several replay buffers at once."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase

from streamrl.data.replay_buffers._state import commit_all, list_entry
from streamrl.data.replay_buffers.replay_buffer import ReplayBuffer, _check_format
from streamrl.data.replay_buffers.samplers.base import _prepare_generator_load
from streamrl.data.replay_buffers.samplers.ensemble import SamplerEnsemble
from streamrl.data.replay_buffers.storages.ensemble import StorageEnsemble
from streamrl.data.replay_buffers.writers import WriterEnsemble

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

    The members' storages, samplers and writers are also reachable as one
    :class:`StorageEnsemble` (:attr:`storage`), :class:`SamplerEnsemble` (:attr:`sampler`, which
    holds ``p`` and the rest of the picking rule) and :class:`WriterEnsemble` (:attr:`writer`);
    instead of buffers, the ensemble can be built from these three (``storages=``,
    ``samplers=``, ``writers=``, with ``collate_fns=`` for the members' collates and the
    :class:`StorageEnsemble` transforms as the members' transforms).

    Writing goes to the members (``ensemble[i].extend(...)``). With ``routing_key`` (a
    per-record member id) or ``routing_dim`` (a batch dim with one entry per member),
    :meth:`extend` routes a batch to the members.

    Args:
        *rbs: the replay buffers.
        storages: a :class:`StorageEnsemble` (instead of ``rbs``).
        samplers: a :class:`SamplerEnsemble` (instead of ``rbs``; it holds ``p`` and co.).
        writers: a :class:`WriterEnsemble` (instead of ``rbs``).
        transform: applied to each joined batch.
        batch_size: default batch size of :meth:`sample`.
        collate_fn: joins the list of parts.
        collate_fns: the members' collates (with ``storages=``; default per storage type).
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
        storages: StorageEnsemble | None = None,
        samplers: SamplerEnsemble | None = None,
        writers: WriterEnsemble | None = None,
        transform: Callable | None = None,
        batch_size: int | None = None,
        collate_fn: Callable | None = None,
        collate_fns: Sequence[Callable | None] | None = None,
        p: Sequence[float] | torch.Tensor | str | None = None,
        sample_from_all: bool = False,
        num_buffer_sampled: int | None = None,
        routing_key=None,
        routing_dim: int | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        if rbs:
            self._rbs = self._check_members(rbs, storages, samplers, writers, collate_fns)
            samplers = SamplerEnsemble(
                *(rb.sampler for rb in rbs),
                p=p,
                sample_from_all=sample_from_all,
                num_buffer_sampled=num_buffer_sampled,
                generator=generator,
            )
            storages = StorageEnsemble(
                *(rb.storage for rb in rbs), transforms=[rb.transform for rb in rbs]
            )
            writers = WriterEnsemble(*(rb.writer for rb in rbs))
        else:
            if storages is None and samplers is None and writers is None:
                raise ValueError(
                    "ReplayBufferEnsemble needs at least one replay buffer, or storages=, "
                    "samplers= and writers="
                )
            if (
                p is not None
                or sample_from_all
                or num_buffer_sampled is not None
                or generator is not None
            ):
                raise ValueError(
                    "with samplers=, pass p, sample_from_all, num_buffer_sampled and generator "
                    "to the SamplerEnsemble"
                )
            self._rbs = self._build_members(storages, samplers, writers, collate_fns)
            if samplers is None or storages is None or writers is None:  # checked above
                raise TypeError("storages, samplers and writers are required together")
        self._storages = storages
        self._samplers = samplers
        self._writers = writers
        if routing_key is not None and routing_dim is not None:
            raise ValueError("give routing_key or routing_dim, not both")
        self.routing_key = routing_key
        self.routing_dim = routing_dim
        self._batch_size = batch_size
        self._collate_fn = collate_fn if collate_fn is not None else _stack
        self._transform = transform

    @staticmethod
    def _check_members(rbs, storages, samplers, writers, collate_fns) -> tuple[ReplayBuffer, ...]:
        if storages is not None or samplers is not None or writers is not None:
            raise ValueError("pass replay buffers or storages/samplers/writers, not both")
        if collate_fns is not None:
            raise ValueError("collate_fns is for storages/samplers/writers; buffers have theirs")
        for i, rb in enumerate(rbs):
            if not isinstance(rb, ReplayBuffer):
                raise TypeError(f"member {i} must be a ReplayBuffer, found {type(rb).__name__}")
        return tuple(rbs)

    @staticmethod
    def _build_members(storages, samplers, writers, collate_fns) -> tuple[ReplayBuffer, ...]:
        for name, value, cls in (
            ("storages", storages, StorageEnsemble),
            ("samplers", samplers, SamplerEnsemble),
            ("writers", writers, WriterEnsemble),
        ):
            if not isinstance(value, cls):
                raise TypeError(
                    f"without replay buffers, {name} must be a {cls.__name__}, found "
                    f"{type(value).__name__}"
                )
        k = len(storages)
        if len(samplers) != k or len(writers) != k:
            raise ValueError(
                f"storages, samplers and writers must have as many members, found {k}, "
                f"{len(samplers)} and {len(writers)}"
            )
        if collate_fns is None:
            collate_fns = [None] * k
        elif len(collate_fns) != k:
            raise ValueError(f"collate_fns must hold {k} entries, found {len(collate_fns)}")
        return tuple(
            ReplayBuffer(
                storage=storages[i],
                sampler=samplers[i],
                writer=writers[i],
                collate_fn=collate_fns[i],
                transform=storages.transforms[i],
            )
            for i in range(k)
        )

    @property
    def storage(self) -> StorageEnsemble:
        """The members' storages."""
        return self._storages

    @property
    def sampler(self) -> SamplerEnsemble:
        """The members' samplers and the rule that picks them."""
        return self._samplers

    @property
    def writer(self) -> WriterEnsemble:
        """The members' writers."""
        return self._writers

    @property
    def sample_from_all(self) -> bool:
        """Whether every batch samples every member."""
        return self._samplers.sample_from_all

    @property
    def num_buffer_sampled(self) -> int:
        """Number of parts per batch."""
        return self._samplers.num_buffer_sampled

    def __len__(self) -> int:
        """Number of member buffers."""
        return len(self._rbs)

    def __getitem__(self, index: int) -> ReplayBuffer:
        """The ``index``-th member buffer."""
        return self._rbs[index]

    def __iter__(self):
        """Endless :meth:`sample` batches of the default ``batch_size``, as a
        :class:`ReplayBuffer` iterates (``ens[i]`` is the ``i``-th member)."""
        if self._batch_size is None:
            raise ValueError("iterating needs a default batch_size: ReplayBufferEnsemble(batch_size=)")
        while True:
            yield self.sample()

    def __repr__(self) -> str:
        return f"ReplayBufferEnsemble({', '.join(repr(rb) for rb in self._rbs)})"

    def sample(self, batch_size: int | None = None, return_info: bool = False):
        """A batch of equal parts from the chosen buffers (``(batch, info)`` if asked)."""
        batch_size = self._batch_size if batch_size is None else batch_size
        part = self._samplers.part_size(batch_size)
        ids = self._samplers.choose([len(rb) for rb in self._rbs])
        parts, infos = [], []
        for i in ids.tolist():
            data, info = self._rbs[i].sample(part, return_info=True)
            parts.append(data)
            infos.append(info)
        data = self._collate_fn(parts)
        if isinstance(data, TensorDictBase):
            self._write_index(data, ids, [info["index"] for info in infos])
        if self._transform is not None:
            data = self._transform(data)
        if not return_info:
            return data
        return data, {"buffer_ids": ids, "infos": infos}

    @staticmethod
    def _write_index(data: TensorDictBase, ids: torch.Tensor, indices: list) -> None:
        """``data["index"]``: ``buffer_ids`` and the members' ``index``, shaped as the batch
        (``[parts, part]`` when stacked, ``[parts * part]`` when concatenated)."""
        k = ids.numel()
        part = indices[0].shape[0] if indices and isinstance(indices[0], torch.Tensor) else None
        if part is None or any(
            not isinstance(i, torch.Tensor) or i.shape != indices[0].shape for i in indices
        ):
            return
        shape = tuple(data.batch_size)
        index = torch.stack(indices)
        buffer_ids = ids.reshape(k, 1).expand(k, part)
        if index.ndim != 2 or (shape[:2] != (k, part) and shape[:1] != (k * part,)):
            return
        if shape[:2] != (k, part):
            index, buffer_ids = index.reshape(-1), buffer_ids.reshape(-1)
        data.pop("index", None)
        data.set("index", TensorDict(
            {"buffer_ids": buffer_ids.to(data.device) if data.device else buffer_ids,
             "index": index.to(data.device) if data.device else index},
            batch_size=buffer_ids.shape,
        ))

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
            "generator": self._samplers._generator.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` into an ensemble of identically configured members
        (all or nothing: a state that does not fit raises ``ValueError`` and changes nothing)."""
        what = "a replay buffer ensemble state"
        _check_format(state, "streamrl.replay_buffer_ensemble/1", what)
        members = list_entry(state, "members", what)
        if len(members) != len(self._rbs):
            raise ValueError(
                f"the state has {len(members)} members, this ensemble {len(self._rbs)}"
            )
        for rb in self._rbs:
            rb._stop_prefetch()
        commits = [rb._prepare_load(member) for rb, member in zip(self._rbs, members)]
        commits.append(_prepare_generator_load(self._samplers._generator, state, what))
        commit_all(commits)()
