"""Prioritized experience replay (Schaul et al., 2016) on vectorized sum and min trees."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from streamrl.data.replay_buffers._state import Commit, entry, number_entry, tensor_entry
from streamrl.data.replay_buffers.samplers.base import Sampler, _check_batch_size, _check_nonempty
from streamrl.data.replay_buffers.samplers.sum_tree import MinTree, SumTree, _update_trees

__all__ = ["PrioritizedSampler"]


def _check_nonneg(name: str, value) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number, found {value!r}") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, found {value!r}")
    return value


def _as_numpy(x, dtype) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach()
        if x.device.type != "cpu":
            x = x.cpu()
        return x.numpy().astype(dtype, copy=False)
    return np.asarray(x, dtype=dtype)


def _check_integer_index(index) -> None:
    dtype = index.dtype if isinstance(index, torch.Tensor) else np.asarray(index).dtype
    if isinstance(dtype, torch.dtype):
        bad = dtype.is_floating_point or dtype.is_complex or dtype == torch.bool
    else:
        bad = dtype.kind not in "iu"
    if bad:
        raise TypeError(f"index must hold integers, found dtype {dtype}")


class PrioritizedSampler(Sampler):
    """Sample index ``i`` with probability ``P(i) = p_i / sum_j p_j``, ``p_i = (priority_i + eps)^alpha``.

    New items get the largest leaf value seen so far (1.0 at first), so they are sampled at
    least once with high probability. Each sample carries its importance weight ``_weight``:
    ``w_i = (N P(i))^-beta / max_j (N P(j))^-beta`` where the max runs over the whole buffer
    (as in the paper and TorchRL), i.e. ``w_i = (p_i / p_min)^-beta`` with ``p_min`` read from
    the min tree. Weights are thus at most 1, and equal 1 for the least likely item.

    Priorities live in a :class:`SumTree` (sampling, ``O(b log N)``) and a :class:`MinTree`
    (``p_min``), both float64 numpy arrays, no compiled code.

    Args:
        max_capacity: number of slots (the storage's ``max_size``).
        alpha: priority exponent (0: uniform).
        beta: importance-sampling exponent (0: no correction); may be changed later.
        eps: added to every priority so that none is exactly 0.
        reduction: how :meth:`update_priority` reduces several priorities per index (e.g. a
            ``[n, T]`` priority of stored trajectories): ``"max"`` (default), ``"min"``,
            ``"sum"``, ``"mean"`` or ``"median"``.
        seed: seed of the private generator.

    >>> s = PrioritizedSampler(4, alpha=1.0, beta=1.0, reduction="mean")
    >>> s.update_priority(torch.tensor([0, 1]), torch.tensor([[1.0, 3.0], [2.0, 2.0]]), 2)
    >>> s.state_dict()["leaves"][:2].tolist()  # (mean + eps) ** alpha
    [2.00000001, 2.00000001]
    """

    _REDUCTIONS: dict[str, Callable[..., Any]] = {"max": np.max, "min": np.min, "sum": np.sum, "mean": np.mean,
                   "median": np.median}

    def __init__(
        self,
        max_capacity: int,
        alpha: float,
        beta: float,
        eps: float = 1e-8,
        reduction: str = "max",
        *,
        seed: int | None = None,
    ) -> None:
        super().__init__(seed=seed)
        if reduction not in self._REDUCTIONS:
            raise ValueError(
                f"reduction must be one of {tuple(self._REDUCTIONS)}, found {reduction!r}"
            )
        self.reduction = reduction
        if isinstance(max_capacity, bool) or not isinstance(max_capacity, int) or max_capacity <= 0:
            raise ValueError(f"max_capacity must be a positive int, found {max_capacity!r}")
        self._capacity = max_capacity
        self.alpha = _check_nonneg("alpha", alpha)
        self.beta = _check_nonneg("beta", beta)
        self.eps = _check_nonneg("eps", eps)
        self._sum_tree = SumTree(max_capacity)
        self._min_tree = MinTree(max_capacity)
        self._max_leaf = 1.0

    @property
    def max_capacity(self) -> int:
        """Number of slots the trees cover."""
        return self._capacity

    def _leaf(self, priority: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore"):  # an overflow is refused by _checked_leaves
            return np.power(priority + self.eps, self.alpha)

    def sample(self, storage, batch_size: int):
        """Indices drawn with ``P(i)``; ``info["_weight"]`` (= ``"priority_weight"``): weights."""
        n = _check_nonempty(storage)
        batch_size = _check_batch_size(batch_size)
        if n > self._capacity:
            raise ValueError(
                f"storage holds {n} items but the sampler covers {self._capacity} slots"
            )
        total = self._sum_tree.total()
        if not total > 0:
            raise RuntimeError("all priorities are zero: cannot sample (use eps > 0)")
        u = torch.rand(batch_size, generator=self._generator, dtype=torch.float64).numpy()
        index = self._sum_tree.find_prefix(u * total)
        p = self._sum_tree.get(index)
        weight = np.power(p / self._min_tree.min(), -self.beta).astype(np.float32)
        weight_t = torch.from_numpy(weight)
        # "_weight" (the seed's key) and "priority_weight" (TorchRL 0.14's): the same tensor.
        return torch.from_numpy(index), {"_weight": weight_t, "priority_weight": weight_t}

    def on_write(self, index, start, storage) -> None:
        """Written slots get the largest leaf value seen so far."""
        if start is not None:
            stop = start + index.numel()
            cap = self._capacity
            ranges = [(start, stop)] if stop <= cap else [(start, cap), (0, stop - cap)]
            for lo, hi in ranges:  # a circular write may wrap once
                self._sum_tree.update_range(lo, hi, self._max_leaf)
                self._min_tree.update_range(lo, hi, self._max_leaf)
        else:
            idx = index.numpy()
            _update_trees((self._sum_tree, self._min_tree), idx, np.full(idx.shape, self._max_leaf))

    def update_priority(self, index, priority, length: int | None = None) -> None:
        """Set the priority of ``index`` (scalar or 1-D); ``priority`` broadcasts to it, or
        holds several values per index (``[n, ...]``), reduced with ``reduction``.

        Raises ``TypeError`` for a non-integer index, ``IndexError`` for an index outside
        ``[0, max_capacity)`` and ``ValueError`` for a NaN, negative or infinite priority (see
        :meth:`check_priority`), before any priority changes. Indices of slots not yet
        written (``>= length``) are ignored: such a slot gets the max priority when it is
        written.
        """
        _check_integer_index(index)
        idx = _as_numpy(index, np.int64).reshape(-1)
        prio = _as_numpy(priority, np.float64)
        if prio.ndim > 1 and prio.shape[0] == idx.size and prio.size != idx.size:
            prio = self._REDUCTIONS[self.reduction](prio.reshape(idx.size, -1), axis=1)
        prio = prio.reshape(-1)
        if prio.size == 1 and idx.size != 1:
            prio = np.broadcast_to(prio, idx.shape)
        if prio.shape != idx.shape:
            raise ValueError(
                f"priority must be a scalar or have one value per index: {idx.size} indices, "
                f"found priority of shape {tuple(np.shape(priority))}"
            )
        hi = int(idx.max()) if idx.size else -1
        if idx.size and (idx.min() < 0 or hi >= self._capacity):
            bad = int(idx[(idx < 0) | (idx >= self._capacity)][0])
            raise IndexError(f"index {bad} out of range [0, {self._capacity})")
        leaf = self._checked_leaves(prio)
        if length is not None and hi >= length:
            keep = idx < length
            idx, leaf = idx[keep], leaf[keep]
        if idx.size == 0:
            return
        _update_trees((self._sum_tree, self._min_tree), idx, leaf)
        self._max_leaf = max(self._max_leaf, float(leaf.max()))

    def check_priority(self, priority) -> None:
        """Raise ``ValueError`` if ``priority`` holds NaN, a negative or an infinite value, or
        one whose ``(priority + eps) ** alpha`` overflows (what :meth:`update_priority`
        refuses), e.g. to refuse a batch before it is written."""
        self._checked_leaves(_as_numpy(priority, np.float64).reshape(-1))

    def _checked_leaves(self, prio: np.ndarray) -> np.ndarray:
        if np.isnan(prio).any():
            raise ValueError("priority contains NaN")
        if (prio < 0).any():
            raise ValueError(f"priority must be >= 0, found {float(prio.min())}")
        if np.isinf(prio).any():
            raise ValueError("priority must be finite, found inf")
        leaf = self._leaf(prio)
        if not np.isfinite(leaf).all():
            raise ValueError(f"priority ** alpha overflows to inf (alpha={self.alpha})")
        return leaf

    def empty(self) -> None:
        """Clear every priority (the max priority goes back to 1)."""
        self._sum_tree.clear()
        self._min_tree.clear()
        self._max_leaf = 1.0

    def state_dict(self):
        """RNG state, hyper-parameters, leaf values and the running max."""
        return {
            **super().state_dict(),
            "max_capacity": self._capacity,
            "alpha": self.alpha,
            "beta": self.beta,
            "eps": self.eps,
            "leaves": torch.from_numpy(self._sum_tree.leaves),
            "min_leaves": torch.from_numpy(self._min_tree.leaves),
            "max_leaf": self._max_leaf,
        }

    def _prepare_load(self, state) -> Commit:
        """Check :meth:`state_dict`'s output (the capacity must match; leaves finite and
        >= 0); return the commit."""
        base = super()._prepare_load(state)
        where = f"{type(self).__name__} state"
        cap = self._capacity
        found = entry(state, "max_capacity", where)
        if found != cap:
            raise ValueError(f"{where}: the state covers {found!r} slots, this sampler {cap}")
        alpha, beta, eps = (number_entry(state, k, where) for k in ("alpha", "beta", "eps"))
        leaves = []
        for key in ("leaves", "min_leaves"):
            value = tensor_entry(state, key, where, shape=(cap,))
            if not value.is_floating_point():
                raise ValueError(f"{where}: {key!r} must be a float tensor, found {value.dtype}")
            value = value.to(torch.float64).numpy().copy()
            if key == "leaves" and not (np.isfinite(value).all() and (value >= 0).all()):
                raise ValueError(f"{where}: 'leaves' must be finite and >= 0")
            leaves.append(value)
        max_leaf = number_entry(state, "max_leaf", where)

        def commit() -> None:
            base()
            self.alpha, self.beta, self.eps = alpha, beta, eps
            self._sum_tree.update_range(0, cap, leaves[0])
            self._min_tree.update_range(0, cap, leaves[1])
            self._max_leaf = max_leaf

        return commit
