"""Vectorized sum and min trees over float64 leaves (numpy, no compiled extension).

The trees are ``K``-ary (``K = 32`` by default) rather than binary: a batch update or a batch
prefix-sum search walks ``ceil(log_K N)`` levels (4 for a million leaves), each level one
vectorized gather/reduce over ``batch x K`` values. That keeps the per-call numpy overhead low
while the work stays ``O(batch * K * log_K N)``.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

__all__ = ["MinTree", "SumTree"]


class _KaryTree:
    """Levels of partial reductions; ``levels[0]`` holds the leaves, the last level the root."""

    _neutral: float = 0.0
    _ufunc: np.ufunc = np.add

    def __init__(self, capacity: int, branching: int = 32) -> None:
        if not isinstance(capacity, int) or isinstance(capacity, bool) or capacity <= 0:
            raise ValueError(f"capacity must be a positive int, found {capacity!r}")
        if branching < 2:
            raise ValueError(f"branching must be >= 2, found {branching!r}")
        self._capacity = capacity
        self._k = branching
        levels = []
        nodes = capacity
        while True:
            padded = -(-nodes // branching) * branching
            levels.append(np.full(padded, self._neutral, dtype=np.float64))
            nodes = padded // branching
            if nodes == 1:
                break
        levels.append(np.full(1, self._neutral, dtype=np.float64))
        self._levels = levels

    # -- leaves -----------------------------------------------------------------------------
    def __len__(self) -> int:
        return self._capacity

    def __getitem__(self, index):
        leaves = self._levels[0][: self._capacity]
        value = leaves[index]
        return float(value) if np.ndim(value) == 0 else value.copy()

    def __iter__(self) -> Iterator[float]:
        leaves = self._levels[0]
        for i in range(self._capacity):
            yield float(leaves[i])

    @property
    def leaves(self) -> np.ndarray:
        """A read-only view of the ``capacity`` leaf values."""
        view = self._levels[0][: self._capacity]
        view.flags.writeable = False
        return view

    def _check_index(self, index: np.ndarray) -> None:
        if index.size and (index.min() < 0 or index.max() >= self._capacity):
            bad = index[(index < 0) | (index >= self._capacity)][0]
            raise IndexError(f"leaf index {int(bad)} out of range [0, {self._capacity})")

    # -- updates ----------------------------------------------------------------------------
    def update(self, index, values) -> None:
        """Set ``leaves[index] = values`` (last write wins on duplicates) and refresh parents."""
        index = np.asarray(index, dtype=np.int64).reshape(-1)
        values = np.broadcast_to(np.asarray(values, dtype=np.float64), index.shape)
        self._check_index(index)
        levels, k, reduce = self._levels, self._k, self._ufunc.reduce
        levels[0][index] = values
        for lvl in range(1, len(levels)):
            index = index // k
            # Duplicate parents recompute the same value: no need for np.unique.
            levels[lvl][index] = reduce(levels[lvl - 1].reshape(-1, k)[index], axis=1)

    def update_range(self, start: int, stop: int, values) -> None:
        """Set the contiguous leaves ``[start, stop)`` and refresh their ancestors in O(n)."""
        if not 0 <= start <= stop <= self._capacity:
            raise IndexError(f"leaf range [{start}, {stop}) out of range [0, {self._capacity})")
        if start == stop:
            return
        levels, k, reduce = self._levels, self._k, self._ufunc.reduce
        levels[0][start:stop] = values
        for lvl in range(1, len(levels)):
            start, stop = start // k, (stop - 1) // k + 1
            child = levels[lvl - 1][start * k : stop * k].reshape(-1, k)
            levels[lvl][start:stop] = reduce(child, axis=1)

    def clear(self) -> None:
        """Reset every leaf to the neutral value."""
        for level in self._levels:
            level.fill(self._neutral)

    def root(self) -> float:
        """The reduction over all leaves."""
        return float(self._levels[-1][0])


class SumTree(_KaryTree):
    """A sum tree: ``total()`` in O(1), batch updates and prefix-sum search in O(b log N).

    >>> t = SumTree(5)
    >>> t.update([0, 3], [1.0, 3.0])
    >>> t.total(), t.find_prefix([0.5, 1.5]).tolist()
    (4.0, [0, 3])
    """

    _neutral = 0.0
    _ufunc = np.add

    def total(self) -> float:
        """The sum of all leaves."""
        return self.root()

    def find_prefix(self, mass) -> np.ndarray:
        """For each ``m`` in ``mass`` the smallest leaf ``i`` with ``sum(leaves[:i+1]) > m``.

        Leaves of value 0 are never returned (unless every leaf is 0); a mass at or past the
        total (floating-point round-off) returns the last positive leaf.
        """
        mass = np.array(mass, dtype=np.float64).reshape(-1)
        node = np.zeros(mass.shape, dtype=np.int64)
        rows = np.arange(mass.size)
        k = self._k
        for lvl in range(len(self._levels) - 2, -1, -1):
            children = self._levels[lvl].reshape(-1, k)[node]
            csum = np.cumsum(children, axis=1)
            j = (csum <= mass[:, None]).sum(axis=1)
            over = j >= k
            if over.any():
                positive = children[over] > 0
                last = k - 1 - np.argmax(positive[:, ::-1], axis=1)
                j[over] = last
            mass -= csum[rows, j] - children[rows, j]
            node = node * k + j
        return node


class MinTree(_KaryTree):
    """A min tree: ``min()`` in O(1) and batch updates in O(b log N); empty leaves are +inf.

    >>> t = MinTree(4)
    >>> t.update([1, 2], [0.5, 2.0])
    >>> t.min()
    0.5
    """

    _neutral = float("inf")
    _ufunc = np.minimum

    def min(self) -> float:
        """The smallest leaf (``inf`` when no leaf was set)."""
        return self.root()
