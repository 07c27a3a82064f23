"""Discrete specs: categorical, one-hot, binary and their multi-variable versions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from streamrl.data.specs._base import TensorSpec, _device, _size

__all__ = [
    "Binary",
    "Categorical",
    "DiscreteBox",
    "MultiCategorical",
    "MultiOneHot",
    "OneHot",
]


class DiscreteBox:
    """The space of a discrete spec: ``n`` values per variable (``nvec`` for several)."""

    def __init__(self, n: Any) -> None:
        self.n = n

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DiscreteBox):
            return False
        a, b = self.n, other.n
        if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
            return torch.equal(torch.as_tensor(a), torch.as_tensor(b))
        return a == b

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        n = self.n.tolist() if isinstance(self.n, torch.Tensor) else self.n
        return f"DiscreteBox(n={n})"


def _check_n(n: Any) -> int:
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise ValueError(f"n must be a positive int, found {n!r}")
    return int(n)


class _Discrete(TensorSpec):
    domain = "discrete"

    def _reshaped(self, shape: torch.Size, index: Any = None) -> TensorSpec:
        out = self.clone()
        out.shape = shape
        return out

    def _space_eq(self, other: TensorSpec) -> bool:
        return self.space == other.space  # type: ignore[attr-defined]

    def _space_str(self) -> str:
        return repr(self.space)  # type: ignore[attr-defined]


class _Indexed(_Discrete):
    """Shared by Categorical and OneHot: one choice among ``n`` per position, optionally
    restricted by a bool ``mask`` of shape ``(*positions, n)`` (False forbids a choice)."""

    n: int
    mask: torch.Tensor | None

    def _positions(self) -> torch.Size:
        raise NotImplementedError

    def update_mask(self, mask: torch.Tensor | None) -> None:
        """Restrict the allowed choices (``None`` lifts the restriction); every position
        must keep at least one allowed choice."""
        if mask is None:
            self.mask = None
            return
        if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
            found = mask.dtype if isinstance(mask, torch.Tensor) else type(mask).__name__
            raise TypeError(f"mask must be a bool tensor, found {found}")
        want = (*self._positions(), self.n)
        try:
            mask = mask.to(self.device).expand(want).clone()
        except RuntimeError:
            raise ValueError(
                f"mask of shape {tuple(mask.shape)} does not broadcast to {want}"
            ) from None
        if not bool(mask.any(-1).all()):
            raise ValueError("every position of the mask must allow at least one choice")
        self.mask = mask

    def _sample(self, lead: torch.Size) -> torch.Tensor:
        full = (*lead, *self._positions())
        if self.mask is None:
            return torch.randint(0, self.n, full, device=self.device)
        probs = self.mask.expand(*full, self.n).reshape(-1, self.n).float()
        return torch.multinomial(probs, 1).reshape(full)

    def _allowed(self, idx: torch.Tensor) -> bool:
        if self.mask is None:
            return True
        mask = self.mask.expand(*idx.shape, self.n)
        return bool(mask.gather(-1, idx.long().unsqueeze(-1)).all())

    def _reshaped(self, shape: torch.Size, index: Any = None) -> TensorSpec:
        out = self.clone()
        out.shape = shape
        if self.mask is not None:
            positions = out._positions()
            if index is None:
                out.mask = self.mask.expand(*positions, self.n).clone()
            elif isinstance(index, tuple) and index and index[0] in ("unsqueeze", "squeeze"):
                out.mask = self.mask.reshape(*positions, self.n)
            else:
                out.mask = self.mask[index]
        return out

    def _space_eq(self, other: TensorSpec) -> bool:
        mine, theirs = self.mask, getattr(other, "mask", None)
        if (mine is None) != (theirs is None):
            return False
        same_mask = mine is None or torch.equal(mine, theirs)  # type: ignore[arg-type]
        return same_mask and self.space == other.space  # type: ignore[attr-defined]


class Categorical(_Indexed):
    """Integer values in ``[0, n)``; ``shape`` defaults to ``()`` (one scalar per step).

    ``mask`` (bool, shape ``(*shape, n)``) forbids some values: ``rand`` never draws them
    and ``is_in`` rejects them; see :meth:`update_mask`.

    >>> spec = Categorical(3)
    >>> spec.is_in(torch.tensor(2)), spec.is_in(torch.tensor(3))
    (True, False)
    >>> spec.update_mask(torch.tensor([True, False, True]))
    >>> spec.is_in(torch.tensor(1))
    False
    """

    def __init__(
        self,
        n: int,
        shape: Any = None,
        device: Any = None,
        dtype: Any = torch.int64,
        mask: torch.Tensor | None = None,
    ) -> None:
        super().__init__(shape, device, dtype)
        self.n = _check_n(n)
        self.space = DiscreteBox(self.n)
        self.mask = None
        self.update_mask(mask)

    def _positions(self) -> torch.Size:
        return self.shape

    def rand(self, shape: Any = None) -> torch.Tensor:
        """Uniform over the allowed values of ``[0, n)``."""
        return self._sample(_size(shape)).to(self.dtype)

    def _values_ok(self, val: torch.Tensor) -> bool:
        if val.numel() <= 64 and self.mask is None:  # a few actions: Python compares are cheaper
            n = self.n
            return all(0 <= v < n for v in val.reshape(-1).tolist())
        if not bool(((val >= 0) & (val < self.n)).all()):
            return False
        return self._allowed(val)

    def project(self, val: torch.Tensor) -> torch.Tensor:
        """Round and clamp into ``[0, n)``; masked-out values become the first allowed one."""
        if val.is_floating_point():
            val = val.round()
        val = val.clamp(0, self.n - 1).long()
        if self.mask is not None:
            mask = self.mask.expand(*val.shape, self.n)
            ok = mask.gather(-1, val.unsqueeze(-1)).squeeze(-1)
            val = torch.where(ok, val, mask.to(torch.int8).argmax(-1))
        return val.to(self.dtype)

    def to_one_hot(self, val: torch.Tensor) -> torch.Tensor:
        """Encode indices as one-hot vectors (a new trailing dim of size ``n``)."""
        return torch.nn.functional.one_hot(val.long(), self.n).to(self.dtype)


class OneHot(_Indexed):
    """One-hot vectors of length ``n``; ``shape`` defaults to ``(n,)``.

    ``mask`` (bool, shape ``shape``) forbids some choices (see :meth:`update_mask`).

    >>> spec = OneHot(3)
    >>> spec.to_categorical(spec.project(torch.tensor([0.1, 2.0, -1.0])))
    tensor(1)
    """

    def __init__(
        self,
        n: int,
        shape: Any = None,
        device: Any = None,
        dtype: Any = torch.int64,
        mask: torch.Tensor | None = None,
    ) -> None:
        n = _check_n(n)
        shape = _size((n,) if shape is None else shape)
        if len(shape) == 0 or shape[-1] != n:
            raise ValueError(f"OneHot shape must end with n={n}, found {tuple(shape)}")
        super().__init__(shape, device, dtype)
        self.n = n
        self.space = DiscreteBox(n)
        self.mask = None
        self.update_mask(mask)

    def _positions(self) -> torch.Size:
        return self.shape[:-1]

    def rand(self, shape: Any = None) -> torch.Tensor:
        """A uniformly chosen (allowed) one-hot vector."""
        idx = self._sample(_size(shape))
        return torch.nn.functional.one_hot(idx, self.n).to(self.dtype)

    def _values_ok(self, val: torch.Tensor) -> bool:
        binary = bool(((val == 0) | (val == 1)).all())
        if not (binary and bool((val.sum(-1) == 1).all())):
            return False
        return self._allowed(val.argmax(-1))

    def project(self, val: torch.Tensor) -> torch.Tensor:
        """The one-hot vector of the (allowed) argmax."""
        if self.mask is not None:
            val = val.float().masked_fill(~self.mask.expand(val.shape), float("-inf"))
        return torch.nn.functional.one_hot(val.argmax(-1), self.n).to(self.dtype)

    def to_categorical(self, val: torch.Tensor) -> torch.Tensor:
        """Indices of the ones (drops the trailing dim)."""
        return val.argmax(-1)

    def to_one_hot(self, val: torch.Tensor) -> torch.Tensor:
        """Encode indices as one-hot vectors."""
        return torch.nn.functional.one_hot(val.long(), self.n).to(self.dtype)


class Binary(_Discrete):
    """Vectors of ``n`` zeros and ones (int8 by default); ``shape`` defaults to ``(n,)``."""

    def __init__(
        self, n: int | None = None, shape: Any = None, device: Any = None, dtype: Any = torch.int8
    ) -> None:
        if n is None and shape is None:
            raise ValueError("Binary needs n or shape")
        shape = _size((n,) if shape is None else shape)
        n = shape[-1] if n is None else _check_n(n)
        if len(shape) == 0 or shape[-1] != n:
            raise ValueError(f"Binary shape must end with n={n}, found {tuple(shape)}")
        super().__init__(shape, device, dtype)
        self.n = n
        self.space = DiscreteBox(2)

    def rand(self, shape: Any = None) -> torch.Tensor:
        """Independent fair coin flips."""
        full = (*_size(shape), *self.shape)
        return torch.randint(0, 2, full, device=self.device).to(self.dtype)

    def _values_ok(self, val: torch.Tensor) -> bool:
        return bool(((val == 0) | (val == 1)).all())

    def project(self, val: torch.Tensor) -> torch.Tensor:
        """Threshold at 0.5."""
        return (val > 0.5).to(self.dtype)


def _nvec(nvec: Any, device: torch.device) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(nvec) if not isinstance(nvec, torch.Tensor) else nvec)
    if t.is_floating_point() or t.numel() == 0 or bool((t < 1).any()):
        raise ValueError(f"nvec must hold positive ints, found {nvec!r}")
    return t.to(device=device, dtype=torch.int64)


class MultiCategorical(_Discrete):
    """Several categorical variables: ``val[..., i]`` in ``[0, nvec[i])``.

    >>> MultiCategorical([2, 3]).rand().shape
    torch.Size([2])
    """

    def __init__(
        self, nvec: Any, shape: Any = None, device: Any = None, dtype: Any = torch.int64
    ) -> None:
        dev = _device(device)
        nv = _nvec(nvec, dev)
        shape = _size(nv.shape if shape is None else shape)
        try:
            nv = nv.expand(shape).clone()
        except RuntimeError:
            raise ValueError(
                f"nvec of shape {tuple(nv.shape)} does not fit {tuple(shape)}"
            ) from None
        super().__init__(shape, dev, dtype)
        self.nvec = nv
        self.space = DiscreteBox(nv)

    def rand(self, shape: Any = None) -> torch.Tensor:
        """Uniform per variable."""
        full = (*_size(shape), *self.shape)
        u = torch.rand(full, device=self.device, dtype=torch.float64)
        return torch.floor(u * self.nvec).clamp_max(self.nvec - 1).to(self.dtype)

    def _values_ok(self, val: torch.Tensor) -> bool:
        return bool(((val >= 0) & (val < self.nvec)).all())

    def project(self, val: torch.Tensor) -> torch.Tensor:
        """Round and clamp each variable."""
        if val.is_floating_point():
            val = val.round()
        return torch.minimum(val.clamp_min(0), self.nvec - 1).to(self.dtype)

    def _reshaped(self, shape: torch.Size, index: Any = None) -> MultiCategorical:
        if index is None:
            nv = self.nvec.expand(shape)
        elif isinstance(index, tuple) and index and index[0] in ("unsqueeze", "squeeze"):
            nv = self.nvec.reshape(shape)
        else:
            nv = self.nvec[index]
        return MultiCategorical(nv, shape, self.device, self.dtype)


class MultiOneHot(_Discrete):
    """Several one-hot variables concatenated along the last dim (length ``sum(nvec)``)."""

    def __init__(
        self, nvec: Sequence[int], shape: Any = None, device: Any = None, dtype: Any = torch.int64
    ) -> None:
        nv = [_check_n(int(n)) for n in nvec]
        if not nv:
            raise ValueError("nvec must not be empty")
        shape = _size((sum(nv),) if shape is None else shape)
        if len(shape) == 0 or shape[-1] != sum(nv):
            raise ValueError(f"MultiOneHot shape must end with {sum(nv)}, found {tuple(shape)}")
        super().__init__(shape, device, dtype)
        self.nvec = nv
        self.space = DiscreteBox(nv)

    def rand(self, shape: Any = None) -> torch.Tensor:
        """A uniformly chosen one-hot vector per variable."""
        full = (*_size(shape), *self.shape[:-1])
        parts = [
            torch.nn.functional.one_hot(torch.randint(0, n, full, device=self.device), n)
            for n in self.nvec
        ]
        return torch.cat(parts, -1).to(self.dtype)

    def _values_ok(self, val: torch.Tensor) -> bool:
        if not bool(((val == 0) | (val == 1)).all()):
            return False
        return all(bool((p.sum(-1) == 1).all()) for p in val.split(self.nvec, -1))

    def project(self, val: torch.Tensor) -> torch.Tensor:
        """Per-variable one-hot of the argmax."""
        parts = [
            torch.nn.functional.one_hot(p.argmax(-1), n)
            for p, n in zip(val.split(self.nvec, -1), self.nvec, strict=True)
        ]
        return torch.cat(parts, -1).to(self.dtype)

    def to_categorical(self, val: torch.Tensor) -> torch.Tensor:
        """Indices per variable (trailing dim of size ``len(nvec)``)."""
        return torch.stack([p.argmax(-1) for p in val.split(self.nvec, -1)], -1)
