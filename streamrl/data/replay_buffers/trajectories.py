"""Trajectories in storage order: boundaries (the one routine samplers, layouts and iterators
use), and iteration over the trajectories of a batch of transitions."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from tensordict import TensorDictBase

__all__ = [
    "DEFAULT_DONE_KEYS",
    "Trajectory",
    "filter_trajectories",
    "find_start_stop_traj",
    "iter_trajectories",
]

#: The end-of-step flags of a TorchRL-style transition (under ``"next"``).
DEFAULT_DONE_KEYS = ("done", "truncated", "terminated")


def _ends_from_ids(ids: torch.Tensor, at_capacity: bool) -> torch.Tensor:
    end = torch.zeros(ids.shape, dtype=torch.bool, device=ids.device)
    end[:-1] = ids[1:] != ids[:-1]
    end[-1] = (ids[-1] != ids[0]) if at_capacity else True
    return end


def _cursor_rows(cursor, length: int) -> list[int]:
    if isinstance(cursor, range):
        rows = list(cursor)
    elif isinstance(cursor, torch.Tensor):
        rows = [int(x) for x in cursor.reshape(-1).tolist()]
    elif isinstance(cursor, int) and not isinstance(cursor, bool):
        rows = [cursor]
    else:
        raise TypeError(f"cursor must be an int, a tensor or a range, found {cursor!r}")
    return [r % length for r in rows]


def _column(end: torch.Tensor, at_capacity: bool):
    """start, stop, length of the trajectories of one [T] column of end flags."""
    t = end.shape[0]
    stops = end.nonzero().reshape(-1)
    if stops.numel() == 0:  # a full ring without an end: one trajectory over all rows
        stops = torch.tensor([t - 1], device=end.device)
    starts = torch.empty_like(stops)
    starts[1:] = stops[:-1] + 1
    starts[0] = (int(stops[-1]) + 1) % t if at_capacity else 0
    lengths = stops - starts + 1
    lengths = torch.where(lengths <= 0, lengths + t, lengths)
    return starts, stops, lengths


def find_start_stop_traj(
    *,
    trajectory: torch.Tensor | None = None,
    end: torch.Tensor | None = None,
    at_capacity: bool,
    cursor: int | torch.Tensor | range | None = None,
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """First step, last step (inclusive) and length of each trajectory of a storage.

    The data is in storage order, time along dim 0 (shape ``[T, *B]``, each batch column on
    its own). Boundaries come from ``trajectory`` ids (a trajectory ends where the id changes)
    or from ``end`` flags (``True`` at a trajectory's last step). When the storage is not
    ``at_capacity`` the last row always ends a trajectory. A full circular storage
    (``at_capacity=True``) lets a trajectory without an end at the last row go on at row 0
    (its ``start > stop``), and the rows under ``cursor`` (the last written) end a
    trajectory: what followed them was overwritten.

    Returns ``(start, stop, lengths)``: ``start`` and ``stop`` are ``[N, 1 + len(B)]`` int64
    tensors (time index in column 0, batch coordinates after it), ordered by batch column and
    then by the time of their stop; ``lengths`` is ``[N]``.

    Args:
        trajectory: trajectory ids ``[T, *B]`` (not with ``end``).
        end: boolean end flags ``[T, *B]`` (not with ``trajectory``).
        at_capacity: whether the storage is full and circular.
        cursor: row(s) of the last write (int, tensor or range); with ``at_capacity`` only.
        device: where to compute (results go back to the input's device).

    >>> end = torch.tensor([0, 0, 1, 0, 0, 0, 0, 1, 0, 0], dtype=torch.bool)
    >>> start, stop, lengths = find_start_stop_traj(end=end, at_capacity=True, cursor=4)
    >>> start[:, 0].tolist(), stop[:, 0].tolist(), lengths.tolist()
    ([8, 3, 5], [2, 4, 7], [5, 2, 3])
    >>> ids = torch.tensor([0, 0, 1, 1, 1])
    >>> find_start_stop_traj(trajectory=ids, at_capacity=False)[2].tolist()
    [2, 3]
    """
    if (trajectory is None) == (end is None):
        raise ValueError("give exactly one of trajectory= or end=")
    data = trajectory if trajectory is not None else end
    if not isinstance(data, torch.Tensor):
        raise TypeError(f"expected a tensor, found {type(data).__name__}")
    if data.ndim == 0:
        raise ValueError("expected a tensor with a time dim (shape [T, *B]), found a 0-d tensor")
    if end is not None and end.dtype != torch.bool:
        raise TypeError(f"end must be a bool tensor, found dtype {end.dtype}")
    out_device = data.device
    if device is not None:
        data = data.to(device)
    t = data.shape[0]
    batch = tuple(data.shape[1:])
    empty = torch.zeros(0, 1 + len(batch), dtype=torch.long, device=out_device)
    if t == 0:
        return empty, empty.clone(), torch.zeros(0, dtype=torch.long, device=out_device)
    flags = _ends_from_ids(data, at_capacity) if trajectory is not None else data.clone()
    if not at_capacity:
        flags[-1] = True
    elif cursor is not None:
        for row in _cursor_rows(cursor, t):
            flags[row] = True
    columns = flags.reshape(t, -1)
    coords = (
        torch.cartesian_prod(*(torch.arange(n) for n in batch)).reshape(-1, len(batch))
        if batch
        else torch.zeros(1, 0, dtype=torch.long)
    ).to(columns.device)
    starts, stops, lengths = [], [], []
    for c in range(columns.shape[1]):
        s, e, n = _column(columns[:, c], at_capacity)
        where = coords[c].expand(s.numel(), -1)
        starts.append(torch.cat([s[:, None], where], 1))
        stops.append(torch.cat([e[:, None], where], 1))
        lengths.append(n)
    start, stop, length = torch.cat(starts), torch.cat(stops), torch.cat(lengths)
    return start.to(out_device), stop.to(out_device), length.to(out_device)


_ID_KEYS = (("collector", "traj_ids"), "traj_ids", "episode")
_NEXT_DONE_KEYS = tuple(("next", k) for k in DEFAULT_DONE_KEYS)


class Trajectory:
    """One trajectory of a batch of transitions: a view ``data`` of its ``length`` steps.

    :meth:`get` looks a key up at the root first, then under ``"next"``.

    >>> import torch
    >>> from tensordict import TensorDict
    >>> t = Trajectory(TensorDict({"obs": torch.zeros(3), ("next", "reward"): torch.ones(3)}, [3]))
    >>> t.length, t.total_reward.item(), t.get("reward").tolist()
    (3, 3.0, [1.0, 1.0, 1.0])
    """

    def __init__(self, data: TensorDictBase) -> None:
        if not isinstance(data, TensorDictBase) or data.batch_dims != 1:
            raise TypeError("a Trajectory wraps a TensorDict with one batch dim")
        self.data = data

    @property
    def length(self) -> int:
        """Number of steps."""
        return int(self.data.batch_size[0])

    @property
    def total_reward(self) -> torch.Tensor:
        """Sum of the ``reward`` entry (root or ``"next"``); ``KeyError`` without one."""
        reward = self.get("reward")
        if reward is None:
            raise KeyError("the trajectory has no 'reward' entry (root or 'next')")
        return reward.sum()

    def get(self, key, default=None):
        """``data[key]``, else ``data["next", key]``, else ``default``."""
        value = self.data.get(key, None)
        if value is None:
            value = self.data.get(("next", *_key_tuple(key)), None)
        return default if value is None else value

    def keys(self, *args, **kwargs):
        """The keys of :attr:`data` (same arguments as ``TensorDict.keys``)."""
        return self.data.keys(*args, **kwargs)

    def __repr__(self) -> str:
        return f"Trajectory(length={self.length})"


def _key_tuple(key) -> tuple:
    return key if isinstance(key, tuple) else (key,)


def _trajectory_ends(data: TensorDictBase, trajectory_key) -> torch.Tensor:
    n = data.batch_size[0]
    keys = data.keys(include_nested=True, leaves_only=True)
    id_keys = [trajectory_key] if trajectory_key is not None else list(_ID_KEYS)
    for key in id_keys:
        if key in keys:
            ids = data.get(key).reshape(n, -1)
            end = torch.ones(n, dtype=torch.bool, device=ids.device)
            end[:-1] = (ids[1:] != ids[:-1]).any(-1)
            return end
    if trajectory_key is not None:
        raise KeyError(f"trajectory key {trajectory_key!r} not in the data")
    for group in (_NEXT_DONE_KEYS, DEFAULT_DONE_KEYS):
        present = [k for k in group if k in keys]
        if present:
            end = torch.zeros(n, dtype=torch.bool)
            for key in present:
                end |= data.get(key).reshape(n, -1).bool().any(-1).cpu()
            return end
    raise KeyError(
        f"cannot split the data into trajectories: no trajectory id entry ({_ID_KEYS}) and "
        f"no end flags ({_NEXT_DONE_KEYS} or {DEFAULT_DONE_KEYS}); pass trajectory_key="
    )


def iter_trajectories(data: TensorDictBase, trajectory_key=None) -> Iterator[Trajectory]:
    """Yield the trajectories of a flat batch of transitions, in order, as views.

    Steps are grouped by ``trajectory_key`` when given, else by the first id entry found
    among ``("collector", "traj_ids")``, ``"traj_ids"`` and ``"episode"`` (a new id starts a
    trajectory), else by the end flags (``("next", "done" / "truncated" / "terminated")``,
    else the same at the root). A trajectory's steps must be contiguous and in order; without
    ids, a trajectory whose last step has no end flag merges with the next one.

    Args:
        data: a TensorDict with one batch dim.
        trajectory_key: entry of per-step trajectory ids.

    >>> import torch
    >>> from tensordict import TensorDict
    >>> done = torch.tensor([False, False, True, False, True])[:, None]
    >>> data = TensorDict({"obs": torch.arange(5), ("next", "done"): done}, [5])
    >>> [t.data["obs"].tolist() for t in iter_trajectories(data)]
    [[0, 1, 2], [3, 4]]
    """
    if not isinstance(data, TensorDictBase):
        raise TypeError(f"iter_trajectories takes a TensorDict, found {type(data).__name__}")
    if data.batch_dims != 1:
        raise ValueError(
            f"iter_trajectories takes a batch of transitions with one batch dim, found batch "
            f"size {list(data.batch_size)}"
        )
    if data.batch_size[0] == 0:
        return
    end = _trajectory_ends(data, trajectory_key)
    start, stop, _ = find_start_stop_traj(end=end, at_capacity=False)
    for first, last in zip(start[:, 0].tolist(), stop[:, 0].tolist()):
        yield Trajectory(data[first : last + 1])


def filter_trajectories(
    data: TensorDictBase,
    predicate: Callable[[Trajectory], bool] | None = None,
    *,
    trajectory_key=None,
) -> list[Trajectory]:
    """The trajectories of ``data`` (see :func:`iter_trajectories`) for which ``predicate`` holds.

    Args:
        data: a TensorDict with one batch dim.
        predicate: a callable from :class:`Trajectory` to bool (default: keep all).
        trajectory_key: entry of per-step trajectory ids.

    >>> import torch
    >>> from tensordict import TensorDict
    >>> ids = torch.tensor([0, 0, 0, 1, 2, 2])
    >>> data = TensorDict({"traj_ids": ids, ("next", "reward"): torch.ones(6)}, [6])
    >>> [t.length for t in filter_trajectories(data, lambda t: t.total_reward >= 2)]
    [3, 2]
    """
    if predicate is not None and not callable(predicate):
        raise TypeError(f"predicate must be callable, found {type(predicate).__name__}")
    trajectories = iter_trajectories(data, trajectory_key)
    if predicate is None:
        return list(trajectories)
    return [t for t in trajectories if bool(predicate(t))]
