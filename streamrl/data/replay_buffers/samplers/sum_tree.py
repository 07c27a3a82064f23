"""Vectorized sum and min trees over float64 leaves (numpy, no compiled extension).

The trees are ``K``-ary (``K = 16`` by default) and stop at the first level with at most
``top_size`` nodes instead of going up to a single root. Each level below the top is stored
*column-major*: the ``K`` children of parent ``p`` form column ``p`` of a ``(K, n / K)`` array.
Gathering the children of a batch of parents is then one ``take`` giving a ``(K, batch)``
array, and reducing or scanning it runs ``K`` vector operations of length ``batch`` instead of
``batch`` short ones, which is what makes numpy fast here.

A batch update walks the levels below the top; a batch prefix-sum search does one cumulative
sum over the small top level and then descends the levels below it (two for a million leaves).
The work is ``O(batch * K * log_K N)`` plus ``O(top_size)``, in a fixed number of numpy calls
whatever the batch size (one torch ``cumsum`` per level, which is faster than numpy's).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

__all__ = ["MinTree", "SumTree"]


class _KaryTree:
    """``levels[0]`` holds the leaves, ``levels[-1]`` the top; see the module docstring."""

    _neutral: float = 0.0
    _ufunc: np.ufunc = np.add

    def __init__(self, capacity: int, branching: int = 16, top_size: int = 4096) -> None:
        if not isinstance(capacity, int) or isinstance(capacity, bool) or capacity <= 0:
            raise ValueError(f"capacity must be a positive int, found {capacity!r}")
        if branching < 2:
            raise ValueError(f"branching must be >= 2, found {branching!r}")
        if top_size < 1:
            raise ValueError(f"top_size must be >= 1, found {top_size!r}")
        self._capacity = capacity
        self._k = branching
        levels, cols = [], []
        nodes = capacity
        while nodes > top_size:
            padded = -(-nodes // branching) * branching
            levels.append(np.full(padded, self._neutral, dtype=np.float64))
            cols.append(padded // branching)
            nodes = padded // branching
        levels.append(np.full(nodes, self._neutral, dtype=np.float64))
        self._levels = levels
        self._cols = cols  # columns of each non-top level's (K, cols) layout

    # -- layout -----------------------------------------------------------------------------
    def _pos(self, lvl: int, index: np.ndarray) -> np.ndarray:
        """Storage position of natural node ``index`` of level ``lvl``."""
        if lvl == len(self._levels) - 1:
            return index
        return (index % self._k) * self._cols[lvl] + index // self._k

    def _grid(self, lvl: int) -> np.ndarray:
        """Level ``lvl`` as a ``(K, cols)`` array: column ``p`` holds the children of ``p``."""
        return self._levels[lvl].reshape(self._k, self._cols[lvl])

    # -- leaves -----------------------------------------------------------------------------
    def __len__(self) -> int:
        return self._capacity

    @property
    def leaves(self) -> np.ndarray:
        """A copy of the ``capacity`` leaf values, in index order."""
        if len(self._levels) == 1:
            return self._levels[0][: self._capacity].copy()
        return self._grid(0).T.reshape(-1)[: self._capacity].copy()

    def get(self, index) -> np.ndarray:
        """Leaf values at ``index`` (int array)."""
        index = np.asarray(index, dtype=np.int64)
        return self._levels[0][self._pos(0, index)]

    def __getitem__(self, index):
        if isinstance(index, slice):
            return self.leaves[index]
        scalar = np.ndim(index) == 0
        index = np.asarray(index, dtype=np.int64)
        if scalar and not -self._capacity <= int(index) < self._capacity:
            raise IndexError(f"leaf index {int(index)} out of range [0, {self._capacity})")
        value = self.get(index % self._capacity)
        return float(value) if scalar else value

    def __iter__(self) -> Iterator[float]:
        return iter(self.leaves.tolist())

    def _check_index(self, index: np.ndarray) -> None:
        if index.size and (index.min() < 0 or index.max() >= self._capacity):
            bad = index[(index < 0) | (index >= self._capacity)][0]
            raise IndexError(f"leaf index {int(bad)} out of range [0, {self._capacity})")

    # -- updates ----------------------------------------------------------------------------
    def update(self, index, values) -> None:
        """Set ``leaves[index] = values`` (last write wins on duplicates) and refresh parents."""
        index = np.asarray(index, dtype=np.int64).reshape(-1)
        values = np.broadcast_to(np.asarray(values, dtype=np.float64).reshape(-1), index.shape)
        self._check_index(index)
        self._update(index, values)

    def _update(self, index: np.ndarray, values: np.ndarray) -> None:
        _update_trees((self,), index, values)

    def update_range(self, start: int, stop: int, values) -> None:
        """Set the contiguous leaves ``[start, stop)`` and refresh their ancestors in O(n)."""
        if not 0 <= start <= stop <= self._capacity:
            raise IndexError(f"leaf range [{start}, {stop}) out of range [0, {self._capacity})")
        if start == stop:
            return
        levels, k, reduce = self._levels, self._k, self._ufunc.reduce
        levels[0][self._pos(0, np.arange(start, stop))] = values
        for lvl in range(1, len(levels)):
            start, stop = start // k, (stop - 1) // k + 1
            children = self._grid(lvl - 1)[:, start:stop]
            levels[lvl][self._pos(lvl, np.arange(start, stop))] = reduce(children, axis=0)

    def clear(self) -> None:
        """Reset every leaf to the neutral value."""
        for level in self._levels:
            level.fill(self._neutral)

    def _verify(self) -> bool:
        """Whether every inner node equals the reduction of its children (for tests)."""
        for lvl in range(1, len(self._levels)):
            want = self._ufunc.reduce(self._grid(lvl - 1), axis=0)
            got = self._levels[lvl][self._pos(lvl, np.arange(want.size))]
            if not np.allclose(got, want, rtol=1e-12, atol=0):
                return False
        return True


class SumTree(_KaryTree):
    """A sum tree: batch updates and batch prefix-sum search in O(b log N) numpy calls.

    >>> t = SumTree(5)
    >>> t.update([0, 3], [1.0, 3.0])
    >>> t.total(), t.find_prefix([0.5, 1.5]).tolist()
    (4.0, [0, 3])
    """

    _neutral = 0.0
    _ufunc = np.add

    def total(self) -> float:
        """The sum of all leaves."""
        return float(self._levels[-1].sum())

    def find_prefix(self, mass) -> np.ndarray:
        """For each ``m`` in ``mass`` the smallest leaf ``i`` with ``sum(leaves[:i+1]) > m``.

        Leaves of value 0 are never returned (unless every leaf is 0); a mass at or past the
        total (floating-point round-off) returns the last positive leaf.
        """
        mass = np.array(mass, dtype=np.float64).reshape(-1)
        top = self._levels[-1]
        csum = np.cumsum(top)
        node = np.searchsorted(csum, mass, side="right")
        over = node >= top.size
        if over.any():
            node[over] = np.flatnonzero(top > 0)[-1] if (top > 0).any() else 0
        mass -= csum[node] - top[node]
        k = self._k
        cols = np.arange(mass.size)
        for lvl in range(len(self._levels) - 2, -1, -1):
            children = np.take(self._grid(lvl), node, axis=1)  # (k, b)
            # torch's cumsum over the short axis is several times faster than numpy's.
            csum = torch.from_numpy(children).cumsum(0).numpy()
            j = (csum <= mass).sum(axis=0)
            over = j >= k
            if over.any():
                positive = children[:, over] > 0
                j[over] = k - 1 - np.argmax(positive[::-1], axis=0)
            mass -= csum[j, cols] - children[j, cols]
            node = node * k + j
        return node


class MinTree(_KaryTree):
    """A min tree: ``min()`` and batch updates in O(b log N) numpy calls; empty leaves are +inf.

    >>> t = MinTree(4)
    >>> t.update([1, 2], [0.5, 2.0])
    >>> t.min()
    0.5
    """

    _neutral = float("inf")
    _ufunc = np.minimum

    def min(self) -> float:
        """The smallest leaf (``inf`` when no leaf was set)."""
        return float(self._levels[-1].min())


def _update_trees(trees, index: np.ndarray, values: np.ndarray) -> None:
    """Set the same leaves of trees with one layout (e.g. a sum and a min tree) in one walk."""
    first = trees[0]
    k = first._k
    pos = first._pos(0, index)
    for tree in trees:
        tree._levels[0][pos] = values
    for lvl in range(1, len(first._levels)):
        index = index // k
        pos = first._pos(lvl, index)
        for tree in trees:
            # Duplicate parents recompute the same value: no need for unique().
            children = np.take(tree._grid(lvl - 1), index, axis=1)
            tree._levels[lvl][pos] = tree._ufunc.reduce(children, axis=0)
