"""Vectorized sum and min trees over float64 leaves (pure torch, no compiled extension).

The trees are ``K``-ary (``K = 32`` by default) and stop at the first level with at most
``top_size`` nodes instead of going up to a single root. A batch update walks the levels below
that top level; a batch prefix-sum search does one cumulative sum over the small top level and
then descends through the levels below it (two levels for a million leaves), each level one
vectorized gather/scan over ``batch x K`` values. The work is ``O(batch * K * log_K N)`` plus
``O(top_size)``, in a handful of torch calls whatever the batch size.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

__all__ = ["MinTree", "SumTree"]


def _as_index(index) -> torch.Tensor:
    if isinstance(index, torch.Tensor):
        return index.reshape(-1).to(torch.long)
    return torch.as_tensor(index, dtype=torch.long).reshape(-1)


def _as_values(values, n: int) -> torch.Tensor:
    values = torch.as_tensor(values, dtype=torch.float64)
    return values.reshape(-1).expand(n) if values.numel() == 1 else values.reshape(-1)


class _KaryTree:
    """Levels of partial reductions; ``levels[0]`` holds the leaves, ``levels[-1]`` the top."""

    _neutral: float = 0.0

    def __init__(self, capacity: int, branching: int = 32, top_size: int = 4096) -> None:
        if not isinstance(capacity, int) or isinstance(capacity, bool) or capacity <= 0:
            raise ValueError(f"capacity must be a positive int, found {capacity!r}")
        if branching < 2:
            raise ValueError(f"branching must be >= 2, found {branching!r}")
        self._capacity = capacity
        self._k = branching
        levels = []
        nodes = capacity
        while nodes > top_size:
            padded = -(-nodes // branching) * branching
            levels.append(torch.full((padded,), self._neutral, dtype=torch.float64))
            nodes = padded // branching
        levels.append(torch.full((nodes,), self._neutral, dtype=torch.float64))
        self._levels = levels

    @staticmethod
    def _reduce(x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    # -- leaves -----------------------------------------------------------------------------
    def __len__(self) -> int:
        return self._capacity

    def __getitem__(self, index):
        value = self._levels[0][: self._capacity][index]
        return float(value) if value.ndim == 0 else value.clone()

    def __iter__(self) -> Iterator[float]:
        return iter(self._levels[0][: self._capacity].tolist())

    @property
    def leaves(self) -> torch.Tensor:
        """The ``capacity`` leaf values (a view: do not write to it)."""
        return self._levels[0][: self._capacity]

    def _check_index(self, index: torch.Tensor) -> None:
        if index.numel():
            lo, hi = int(index.min()), int(index.max())
            if lo < 0 or hi >= self._capacity:
                raise IndexError(
                    f"leaf index {lo if lo < 0 else hi} out of range [0, {self._capacity})"
                )

    # -- updates ----------------------------------------------------------------------------
    def update(self, index, values) -> None:
        """Set ``leaves[index] = values`` (last write wins on duplicates) and refresh parents."""
        index = _as_index(index)
        values = _as_values(values, index.numel())
        self._check_index(index)
        self._update(index, values)

    def _update(self, index: torch.Tensor, values: torch.Tensor) -> None:
        levels, k = self._levels, self._k
        # index_put_ without accumulate: the last duplicate wins, as in numpy.
        levels[0].index_put_((index,), values)
        for lvl in range(1, len(levels)):
            index = index // k
            # Duplicate parents recompute the same value: no need for unique().
            children = torch.index_select(levels[lvl - 1].view(-1, k), 0, index)
            levels[lvl].index_put_((index,), self._reduce(children))

    def update_range(self, start: int, stop: int, values) -> None:
        """Set the contiguous leaves ``[start, stop)`` and refresh their ancestors in O(n)."""
        if not 0 <= start <= stop <= self._capacity:
            raise IndexError(f"leaf range [{start}, {stop}) out of range [0, {self._capacity})")
        if start == stop:
            return
        levels, k = self._levels, self._k
        if isinstance(values, (int, float)):
            levels[0][start:stop].fill_(values)
        else:
            levels[0][start:stop].copy_(torch.as_tensor(values, dtype=torch.float64))
        for lvl in range(1, len(levels)):
            start, stop = start // k, (stop - 1) // k + 1
            child = levels[lvl - 1][start * k : stop * k].view(-1, k)
            levels[lvl][start:stop] = self._reduce(child)

    def clear(self) -> None:
        """Reset every leaf to the neutral value."""
        for level in self._levels:
            level.fill_(self._neutral)


class SumTree(_KaryTree):
    """A sum tree: batch updates and batch prefix-sum search in O(b log N) torch calls.

    >>> t = SumTree(5)
    >>> t.update([0, 3], [1.0, 3.0])
    >>> t.total(), t.find_prefix([0.5, 1.5]).tolist()
    (4.0, [0, 3])
    """

    _neutral = 0.0

    @staticmethod
    def _reduce(x: torch.Tensor) -> torch.Tensor:
        return x.sum(dim=1)

    def total(self) -> float:
        """The sum of all leaves."""
        return float(self._levels[-1].sum())

    def find_prefix(self, mass) -> torch.Tensor:
        """For each ``m`` in ``mass`` the smallest leaf ``i`` with ``sum(leaves[:i+1]) > m``.

        Leaves of value 0 are never returned (unless every leaf is 0); a mass at or past the
        total (floating-point round-off) returns the last positive leaf.
        """
        mass = torch.as_tensor(mass, dtype=torch.float64).reshape(-1)
        k = self._k
        top = self._levels[-1]
        csum = top.cumsum(0)
        node = torch.searchsorted(csum, mass, right=True)
        node = self._fix_overflow(node, top.unsqueeze(0).expand(node.numel(), -1))
        mass = mass - (csum[node] - top[node])
        for lvl in range(len(self._levels) - 2, -1, -1):
            children = torch.index_select(self._levels[lvl].view(-1, k), 0, node)
            csum = children.cumsum(1)
            j = torch.searchsorted(csum, mass.unsqueeze(1), right=True).squeeze(1)
            j = self._fix_overflow(j, children)
            j1 = j.unsqueeze(1)
            mass = mass - (csum.gather(1, j1) - children.gather(1, j1)).squeeze(1)
            node = node * k + j
        return node

    @staticmethod
    def _fix_overflow(j: torch.Tensor, children: torch.Tensor) -> torch.Tensor:
        """Map a position past the last child to the last child with a positive value."""
        over = j >= children.shape[1]
        if bool(over.any()):
            positive = children[over] > 0
            width = positive.shape[1]
            last = width - 1 - positive.flip(1).to(torch.int8).argmax(1)
            j = j.clone()
            j[over] = last
        return j


class MinTree(_KaryTree):
    """A min tree: ``min()`` and batch updates in O(b log N) torch calls; empty leaves are +inf.

    >>> t = MinTree(4)
    >>> t.update([1, 2], [0.5, 2.0])
    >>> t.min()
    0.5
    """

    _neutral = float("inf")

    @staticmethod
    def _reduce(x: torch.Tensor) -> torch.Tensor:
        return x.amin(dim=1)

    def min(self) -> float:
        """The smallest leaf (``inf`` when no leaf was set)."""
        return float(self._levels[-1].min())
