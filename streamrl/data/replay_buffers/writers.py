"""Writers decide which storage slots a batch goes to."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from tensordict import is_tensor_collection

from streamrl.data.replay_buffers._ensemble_state import members_state, prepare_members_state
from streamrl.data.replay_buffers._state import Commit, check_tensor, check_type, entry, int_entry
from streamrl.data.replay_buffers.storages.base import _One, check_compilable

__all__ = [
    "ImmutableDatasetWriter",
    "RoundRobinWriter",
    "TensorDictMaxValueWriter",
    "TensorDictRoundRobinWriter",
    "WritePlan",
    "Writer",
    "WriterEnsemble",
]


@dataclass(frozen=True)
class WritePlan:
    """Where a batch goes.

    Attributes:
        index: storage slots (int64), one per written item.
        source: positions in the batch of the written items (``None``: all, in order).
        start: set when ``index == (start + arange(len(index))) % max_size``.
        new_len: storage length after the write.
    """

    index: torch.Tensor
    source: torch.Tensor | None
    start: int | None
    new_len: int


class Writer:
    """Base class of writers: :meth:`plan` a write, keep a small state.

    A replay buffer asks its writer for a plan and writes itself. Used alone, as TorchRL's
    writers are, a writer writes into the storage given to :meth:`register_storage` with
    :meth:`add` (one item) and :meth:`extend` (a batch), returning the slots written.
    ``compilable`` (TorchRL's flag) is stored: the state is plain Python values either way.

    >>> from streamrl.data import LazyTensorStorage
    >>> writer = RoundRobinWriter()
    >>> storage = LazyTensorStorage(4)
    >>> writer.register_storage(storage)
    >>> writer.extend(torch.arange(3)).tolist(), writer.add(torch.tensor(7)), len(storage)
    ([0, 1, 2], 3, 4)
    >>> writer.extend(torch.arange(2)).tolist()  # round robin: the oldest slot first
    [0, 1]
    """

    compilable = False

    def plan(self, n: int, length: int, max_size: int, data) -> WritePlan:
        """Choose the slots for ``n`` items given the storage ``length`` and ``max_size``."""
        raise NotImplementedError

    def register_storage(self, storage) -> None:
        """Write into ``storage`` from now on (:meth:`add`, :meth:`extend`), continuing after
        what it holds."""
        for method in ("prepare", "_put", "one"):
            if not callable(getattr(storage, method, None)):
                raise TypeError(f"register_storage expects a streamrl storage, found "
                                f"{type(storage).__name__}")
        self._storage = storage
        self.attach(storage)

    def extend(self, data) -> torch.Tensor:
        """Write a batch into the registered storage; returns the slots written."""
        storage = getattr(self, "_storage", None)
        if storage is None:
            raise RuntimeError(f"{type(self).__name__} has no storage: call "
                               "register_storage(storage) first (a replay buffer writes itself)")
        self._check_data(data)
        batch = storage.prepare(data)
        if batch.n == 0:
            return torch.empty(0, dtype=torch.long)
        plan = self.plan(batch.n, len(storage), storage.max_size, batch.data)
        storage._put(plan.index, batch, plan.source, plan.start, plan.new_len)
        return plan.index

    def add(self, data) -> int:
        """Write one item into the registered storage; returns its slot (-1: not written)."""
        storage = getattr(self, "_storage", None)
        index = self.extend(storage.one(data) if storage is not None else data)
        return int(index[0]) if index.numel() else -1

    def attach(self, storage) -> None:
        """Continue after what ``storage`` already holds (e.g. a reopened memmap)."""

    def _check_data(self, data) -> None:
        """Refuse, before anything is written, data this writer cannot rank or place (the
        caller's data, before the storage turns pytrees into TensorDicts)."""

    def empty(self) -> None:
        """Forget the cursor."""

    def state_dict(self) -> dict:
        """Plain-value state."""
        return {"type": type(self).__name__}

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`; a state that does not fit raises ``ValueError`` and
        changes nothing."""
        self._prepare_load(state)()

    def _prepare_load(self, state: dict) -> Commit:
        """Check :meth:`state_dict`'s output without changing the writer; return the commit
        (see ``streamrl.data.replay_buffers._state``). Subclasses extend it."""
        check_type(state, type(self).__name__, "writer")
        return lambda: None


class RoundRobinWriter(Writer):
    """Write circularly: fill slots in order, then overwrite the oldest.

    When one batch holds more than ``max_size`` items only the last ``max_size`` are written
    (the earlier ones would be overwritten by the same call anyway).
    """

    def __init__(self, compilable: bool = False) -> None:
        self.compilable = check_compilable(compilable)
        self._cursor = 0

    def plan(self, n, length, max_size, data=None) -> WritePlan:
        """Slots ``cursor, cursor + 1, ...`` modulo ``max_size``."""
        source = None
        if n > max_size:
            source = torch.arange(n - max_size, n)
            self._cursor = (self._cursor + n - max_size) % max_size
            n = max_size
        start = self._cursor
        index = torch.arange(start, start + n)
        if start + n > max_size:
            index %= max_size
        self._cursor = (start + n) % max_size
        return WritePlan(index, source, start, min(max_size, max(length, start + n)))

    def attach(self, storage) -> None:
        """Resume at the storage's write head."""
        self._cursor = storage.head if len(storage) else 0
        self._slots = storage.max_size  # bounds a loaded cursor

    def empty(self) -> None:
        """Restart at slot 0."""
        self._cursor = 0

    def state_dict(self):
        """``{"cursor": int}``."""
        return {**super().state_dict(), "cursor": self._cursor}

    def _prepare_load(self, state) -> Commit:
        base = super()._prepare_load(state)
        slots = getattr(self, "_slots", None)
        where = f"{type(self).__name__} state"
        cursor = int_entry(state, "cursor", where, 0, slots - 1 if slots is not None else None)

        def commit() -> None:
            base()
            self._cursor = cursor

        return commit


class TensorDictRoundRobinWriter(RoundRobinWriter):
    """TorchRL's round-robin writer for TensorDict buffers: a :class:`RoundRobinWriter`.

    Every streamrl writer already handles TensorDict batches (a :class:`TensorDictReplayBuffer`
    writes ``index`` into its samples), so this is the same writer under TorchRL's name.

    >>> from streamrl.data import LazyTensorStorage, TensorDictReplayBuffer
    >>> from tensordict import TensorDict
    >>> rb = TensorDictReplayBuffer(storage=LazyTensorStorage(4),
    ...                             writer=TensorDictRoundRobinWriter())
    >>> rb.extend(TensorDict({"a": torch.arange(6)}, [6])).tolist()
    [2, 3, 0, 1]
    """


class ImmutableDatasetWriter(Writer):
    """A writer that refuses every write: for buffers over a fixed dataset.

    The storage is filled beforehand (e.g. a :class:`LazyMemmapStorage` reopened from its
    directory, or a :class:`TensorStorage` over existing tensors); ``add``/``extend`` raise
    ``RuntimeError`` before anything is written.

    >>> from streamrl.data import ReplayBuffer, TensorStorage
    >>> rb = ReplayBuffer(storage=TensorStorage(torch.arange(5)), writer=ImmutableDatasetWriter())
    >>> len(rb)
    5
    >>> rb.extend(torch.arange(2))
    Traceback (most recent call last):
    ...
    RuntimeError: this replay buffer is immutable (ImmutableDatasetWriter): extend/add are not allowed
    """

    def __init__(self, compilable: bool = False) -> None:
        self.compilable = check_compilable(compilable)

    def plan(self, n, length, max_size, data=None) -> WritePlan:
        """Always raises ``RuntimeError``."""
        raise RuntimeError(
            "this replay buffer is immutable (ImmutableDatasetWriter): extend/add are not allowed"
        )


class TensorDictMaxValueWriter(Writer):
    """Keep the ``max_size`` items with the largest rank seen so far.

    The rank of an item is ``data[rank_key]`` reduced over its non-batch dims (``reduction``:
    ``"sum"``, ``"max"``, ``"min"``, ``"mean"`` or ``"median"``). A batch that fits in the
    free slots is appended; otherwise the batch competes with the stored items and the best
    ``max_size`` of both are kept (ties keep the stored item). Items that do not make it are
    not written.

    Only tensor collections (TensorDicts, tensorclasses) can be ranked: a tensor, a list or a
    pytree raises ``RuntimeError`` before anything is written, and so does a storage with
    ``ndim > 1`` (overlapping trajectories have no single rank).

    Args:
        rank_key: key of the rank (default, also for ``None``: ``("next", "reward")``).
        reduction: how to reduce a multi-element rank to one number.

    >>> from tensordict import TensorDict
    >>> from streamrl.data import LazyTensorStorage, TensorDictReplayBuffer
    >>> rb = TensorDictReplayBuffer(storage=LazyTensorStorage(2),
    ...                             writer=TensorDictMaxValueWriter(rank_key="r"))
    >>> _ = rb.extend(TensorDict({"r": torch.tensor([3.0, 1.0, 2.0])}, [3]))
    >>> sorted(rb.storage.column("r").tolist())
    [2.0, 3.0]
    """

    _REDUCTIONS = ("sum", "max", "min", "mean", "median")

    def __init__(self, rank_key=None, reduction: str = "sum", compilable: bool = False) -> None:
        self.compilable = check_compilable(compilable)
        if rank_key is None:
            rank_key = ("next", "reward")
        if reduction not in self._REDUCTIONS:
            raise ValueError(f"reduction must be one of {self._REDUCTIONS}, found {reduction!r}")
        self.rank_key = rank_key
        self.reduction = reduction
        self._ranks: torch.Tensor | None = None
        # the slot the next item is appended to while the storage has room (0 once full)
        self._cursor = 0

    def _check_data(self, data) -> None:
        item = data.item if isinstance(data, _One) else data
        # a list storage's batch is a list of items: each must be a tensor collection
        items = item if isinstance(item, (list, tuple)) else (item,)
        for x in items:
            if not is_tensor_collection(x):
                raise RuntimeError(
                    "TensorDictMaxValueWriter expects data to be a tensor collection (a "
                    f"TensorDict or a tensorclass), found {type(x).__name__}"
                )

    def attach(self, storage) -> None:
        """Refuse multi-dim storages; rank nothing already stored (it stays until outranked)."""
        if getattr(storage, "ndim", 1) > 1:
            raise ValueError(
                "TensorDictMaxValueWriter is not compatible with storages with more than one "
                f"dimension, found ndim={storage.ndim}"
            )
        self._cursor = len(storage) % storage.max_size

    def _rank(self, data, n: int) -> torch.Tensor:
        if isinstance(data, (list, tuple)):  # a list storage's items
            self._check_data(data)
            return torch.cat([self._reduce(self._rank_value(x).reshape(1, -1)) for x in data])
        if not is_tensor_collection(data):
            raise RuntimeError(
                "TensorDictMaxValueWriter expects data to be a tensor collection, found "
                f"{type(data).__name__}"
            )
        return self._reduce(self._rank_value(data).reshape(n, -1))

    def _rank_value(self, data) -> torch.Tensor:
        value = data.get(self.rank_key, None)
        if value is None:
            raise ValueError(
                f"rank key {self.rank_key!r} not found in the batch; keys: "
                f"{list(data.keys(True, True))}"
            )
        return value

    def _reduce(self, value: torch.Tensor) -> torch.Tensor:
        """One rank per row of ``value`` (``[n, k]``)."""
        value = value.to(torch.float64).cpu()
        if self.reduction == "median":
            return torch.median(value, dim=1).values
        op: dict[str, Callable[..., torch.Tensor]] = {
            "sum": torch.sum, "mean": torch.mean, "max": torch.amax, "min": torch.amin
        }
        return op[self.reduction](value, dim=1)

    def plan(self, n, length, max_size, data) -> WritePlan:
        """Append while there is room, then replace the lowest-ranked items."""
        rank = self._rank(data, n)
        if self._ranks is None or self._ranks.numel() != max_size:
            self._ranks = torch.full((max_size,), -torch.inf, dtype=torch.float64)
        free = max_size - length
        if n <= free:
            self._ranks[length : length + n] = rank
            self._cursor = (length + n) % max_size
            return WritePlan(torch.arange(length, length + n), None, length, length + n)
        combined = torch.cat([self._ranks[:length], rank])
        # Stable sort: on ties the stored (earlier) item wins.
        order = torch.sort(combined, descending=True, stable=True).indices[:max_size]
        kept_old = order[order < length]
        source = order[order >= length] - length
        evicted = torch.ones(length, dtype=torch.bool)
        evicted[kept_old] = False
        slots = torch.cat([torch.arange(length, max_size), evicted.nonzero().reshape(-1)])
        index = slots[: source.numel()]
        self._ranks[index] = rank[source]
        self._cursor = 0
        return WritePlan(index, source, None, max_size)

    def empty(self) -> None:
        """Forget the ranks."""
        self._ranks = None
        self._cursor = 0

    def state_dict(self):
        """Ranks of the stored items."""
        return {**super().state_dict(), "ranks": self._ranks, "cursor": self._cursor}

    def _prepare_load(self, state) -> Commit:
        base = super()._prepare_load(state)
        where = f"{type(self).__name__} state"
        ranks = entry(state, "ranks", where)
        if ranks is not None:
            ranks = check_tensor(ranks, f"{where}: 'ranks'", ndim=1).clone()
        cursor = int_entry(state, "cursor", where) if "cursor" in state else 0

        def commit() -> None:
            base()
            self._ranks, self._cursor = ranks, cursor

        return commit


class WriterEnsemble:
    """The writers of an ensemble. It does not write: its members do, each into its storage.

    A :class:`ReplayBufferEnsemble` built from ``writers=`` pairs each member writer with the
    member storage of the same position; routed writes (``routing_key``/``routing_dim``) go
    through them.

    Args:
        *writers: one :class:`Writer` per member.

    >>> w = WriterEnsemble(RoundRobinWriter(), RoundRobinWriter())
    >>> len(w), type(w[1]).__name__
    (2, 'RoundRobinWriter')
    """

    def __init__(self, *writers: Writer) -> None:
        if not writers:
            raise ValueError("WriterEnsemble needs at least one writer")
        for i, writer in enumerate(writers):
            if not isinstance(writer, Writer):
                raise TypeError(f"member {i} must be a Writer, found {type(writer).__name__}")
        self._writers = tuple(writers)

    def __len__(self) -> int:
        """Number of member writers."""
        return len(self._writers)

    def __getitem__(self, index: int) -> Writer:
        """The ``index``-th member writer."""
        return self._writers[index]

    def __repr__(self) -> str:
        return f"WriterEnsemble({', '.join(type(w).__name__ for w in self._writers)})"

    def empty(self) -> None:
        """Reset every member writer."""
        for writer in self._writers:
            writer.empty()

    def state_dict(self) -> dict:
        """The members' states."""
        return members_state("WriterEnsemble", self._writers)

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict` into writers of the same types (all or nothing)."""
        self._prepare_load(state)()

    def _prepare_load(self, state: dict) -> Commit:
        return prepare_members_state(state, "WriterEnsemble", self._writers)
