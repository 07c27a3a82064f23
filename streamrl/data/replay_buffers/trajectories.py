"""Trajectory boundaries in storage order: the one routine samplers, layouts and iterators use."""

from __future__ import annotations

import torch

__all__ = ["DEFAULT_DONE_KEYS", "find_start_stop_traj"]

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
