"""Several discrete variables in one spec: :class:`MultiCategorical` (one index per variable)
and :class:`MultiOneHot` (one one-hot vector per variable, concatenated)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from streamrl._utils.one_hot import one_hot
from streamrl.data.specs._base import _device, _size
from streamrl.data.specs.discrete import (
    DiscreteBox,
    _argmax,
    _check_allows_one,
    _check_n,
    _Discrete,
    _fit_mask,
    _mask_allows,
    _masked_project,
    _masked_sample,
    _OneHotValues,
)

__all__ = ["MultiCategorical", "MultiOneHot"]

_RESHAPES = ("unsqueeze", "squeeze", "reshape")


def _nvec(nvec: Any, device: torch.device) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(nvec) if not isinstance(nvec, torch.Tensor) else nvec)
    if t.is_floating_point() or t.numel() == 0 or bool((t < 1).any()):
        raise ValueError(f"nvec must hold positive ints, found {nvec!r}")
    return t.to(device=device, dtype=torch.int64)


def _split_mask(mask: torch.Tensor | None, sizes: list[int]) -> list:
    """The per-variable slices of a mask laid out as concatenated one-hot choices."""
    if mask is None:
        return [None] * len(sizes)
    return list(mask.split(sizes, -1))


def _reshape_mask(mask: torch.Tensor | None, index: Any, lead: torch.Size) -> Any:
    """``mask`` (batch dims then the choices dim) following a reshape of the batch dims
    (``index`` as given to ``_reshaped``: None to expand, an op tuple, or an index)."""
    if mask is None:
        return None
    if index is None:
        return mask.expand(*lead, mask.shape[-1])
    if isinstance(index, tuple) and index and index[0] in _RESHAPES:
        return mask.reshape(*lead, mask.shape[-1])
    return mask[index]


class _Multi(_Discrete):
    """Shared by the two multi-variable specs: ``nvec`` sizes and an optional ``mask`` over
    the variables' choices laid out one after another (last dim ``sum(nvec)``)."""

    _feature_dims = 1  # the trailing dim holds one value's features
    mask: torch.Tensor | None

    def _sizes(self) -> list[int]:
        raise NotImplementedError

    def _mask_lead(self) -> torch.Size:
        return self.shape[:-1]

    def update_mask(self, mask: torch.Tensor | None) -> None:
        """Restrict the allowed choices: a bool mask of shape ``(*shape[:-1], sum(nvec))``
        (the choices of each variable, one after another; False forbids one), or None to
        lift the restriction. Every variable must keep at least one allowed choice."""
        if mask is None:
            self.mask = None
            return
        sizes = self._sizes()
        mask = _fit_mask(mask, (*self._mask_lead(), sum(sizes)), self.device)
        for part in _split_mask(mask, sizes):
            if part is not None:
                _check_allows_one(part, "variable of the mask")
        self.mask = mask

    def _variables(self, full_lead: tuple) -> list[torch.Tensor]:
        """One index tensor per variable, sampled under the mask."""
        sizes = self._sizes()
        return [
            _masked_sample(m, n, full_lead, self.device)
            for m, n in zip(_split_mask(self.mask, sizes), sizes, strict=True)
        ]

    def _combos(self) -> torch.Tensor:
        """Every combination of the variables' indices, shape ``(prod(nvec), k)``."""
        ranges = [torch.arange(n, device=self.device) for n in self._sizes()]
        grids = torch.meshgrid(*ranges, indexing="ij")
        return torch.stack([g.reshape(-1) for g in grids], -1)

    def cardinality(self) -> int:
        """The number of distinct values at one position (the product of ``nvec``)."""
        out = 1
        for n in self._sizes():
            out *= n
        return out


class MultiCategorical(_Multi):
    """Several categorical variables: ``val[..., i]`` in ``[0, nvec[i])``.

    ``mask`` (bool, shape ``(*shape[:-1], sum(nvec))``: the choices of every variable one
    after another, as in the matching :class:`MultiOneHot`) forbids some values.

    >>> MultiCategorical([2, 3]).rand().shape
    torch.Size([2])
    >>> spec = MultiCategorical([2, 3], mask=torch.tensor([True, False, False, True, False]))
    >>> spec.rand().tolist()
    [0, 1]
    """

    def __init__(
        self,
        nvec: Any,
        shape: Any = None,
        device: Any = None,
        dtype: Any = torch.int64,
        mask: torch.Tensor | None = None,
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
        self.mask = None
        self.update_mask(mask)

    def _sizes(self) -> list[int]:
        return self._nvec_list()

    def _mask_lead(self) -> torch.Size:
        return self.shape[:-1]

    def rand(self, shape: Any = None) -> torch.Tensor:
        """Uniform per variable (over the allowed values when masked)."""
        lead = _size(shape)
        if self.mask is not None:
            full_lead = (*lead, *self.shape[:-1])
            return torch.stack(self._variables(full_lead), -1).to(self.dtype)
        full = (*lead, *self.shape)
        u = torch.rand(full, device=self.device, dtype=torch.float64)
        return torch.floor(u * self.nvec).clamp_max(self.nvec - 1).to(self.dtype)

    def _values_ok(self, val: torch.Tensor) -> bool:
        if not bool(((val >= 0) & (val < self.nvec)).all()):
            return False
        if self.mask is None:
            return True
        parts = _split_mask(self.mask, self._sizes())
        return all(_mask_allows(m, v) for m, v in zip(parts, val.unbind(-1), strict=True))

    def _project(self, val: torch.Tensor) -> torch.Tensor:
        """Round and clamp each variable; masked-out values become the first allowed one."""
        if val.is_floating_point():
            val = val.round()
        val = torch.minimum(val.clamp_min(0), self.nvec - 1).long()
        if self.mask is not None:
            parts = _split_mask(self.mask, self._sizes())
            val = torch.stack(
                [_masked_project(m, v) for m, v in zip(parts, val.unbind(-1), strict=True)], -1
            )
        return val.to(self.dtype)

    def _nvec_list(self) -> list[int]:
        if self.nvec.ndim == 0:
            return [int(self.nvec)]
        nv = self.nvec.reshape(-1, self.nvec.shape[-1])
        if not bool((nv == nv[:1]).all()):
            raise ValueError(
                f"one-hot encoding and enumerate need the same nvec at every batch position, "
                f"found {self.nvec.tolist()}"
            )
        return nv[0].tolist()

    def to_one_hot(self, val: torch.Tensor, safe: bool | None = None) -> torch.Tensor:
        """Concatenated one-hot vectors, one per variable (as :class:`MultiOneHot` values).

        >>> MultiCategorical([2, 3]).to_one_hot(torch.tensor([1, 2]))
        tensor([False,  True, False, False,  True])
        """
        if safe:
            self.check(val)
        nv = self._nvec_list()
        parts = [
            torch.nn.functional.one_hot(v.long(), n)
            for v, n in zip(val.unbind(-1), nv, strict=True)
        ]
        return torch.cat(parts, -1).bool()

    def to_categorical(self, val: torch.Tensor, safe: bool | None = None) -> torch.Tensor:
        """``val`` itself: values of a MultiCategorical are already indices."""
        if safe:
            self.check(val)
        return val

    def enumerate(self, use_mask: bool = False) -> torch.Tensor:
        """Every value (the product of the variables' ranges) along a new leading dim, each
        repeated over the batch dims (``nvec`` must be the same at every position).

        >>> MultiCategorical([2, 2]).enumerate().tolist()
        [[0, 0], [0, 1], [1, 0], [1, 1]]
        """
        combos = self._combos()
        lead = self.shape[:-1]
        combos = combos.reshape(-1, *([1] * len(lead)), combos.shape[-1])
        return combos.expand(-1, *self.shape).to(self.dtype)

    def to_one_hot_spec(self) -> MultiOneHot:
        """The :class:`MultiOneHot` spec of the same variables (and mask)."""
        nv = self._nvec_list()
        shape = (*self.shape[:-1], sum(nv))
        return MultiOneHot(nv, shape, self.device, torch.bool, self.mask)

    def to_categorical_spec(self) -> MultiCategorical:
        """This spec (a copy)."""
        return self.clone()

    def _reshaped(self, shape: torch.Size, index: Any = None) -> MultiCategorical:
        if index is None:
            nv = self.nvec.expand(shape)
        elif isinstance(index, tuple) and index and index[0] in _RESHAPES:
            nv = self.nvec.reshape(shape)
        else:
            nv = self.nvec[index]
        mask = _reshape_mask(self.mask, index, shape[:-1])
        return MultiCategorical(nv, shape, self.device, self.dtype, mask)


class MultiOneHot(_OneHotValues, _Multi):
    """Several one-hot variables concatenated along the last dim (length ``sum(nvec)``); the
    dtype defaults to bool, as in TorchRL. ``mask`` (bool, shaped like the spec) forbids
    some choices.

    >>> spec = MultiOneHot([2, 2], mask=torch.tensor([False, True, True, False]))
    >>> spec.rand().tolist()
    [False, True, True, False]
    """

    def __init__(
        self,
        nvec: Sequence[int],
        shape: Any = None,
        device: Any = None,
        dtype: Any = torch.bool,
        mask: torch.Tensor | None = None,
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
        self.mask = None
        self.update_mask(mask)

    def _sizes(self) -> list[int]:
        return self.nvec

    def rand(self, shape: Any = None) -> torch.Tensor:
        """A uniformly chosen (allowed) one-hot vector per variable."""
        full = (*_size(shape), *self.shape[:-1])
        parts = [one_hot(idx, n, self.dtype)
                 for idx, n in zip(self._variables(full), self.nvec, strict=True)]
        return torch.cat(parts, -1)

    def _values_ok(self, val: torch.Tensor) -> bool:
        if not bool(((val == 0) | (val == 1)).all()):
            return False
        parts = val.split(self.nvec, -1)
        if not all(bool((p.sum(-1) == 1).all()) for p in parts):
            return False
        masks = _split_mask(self.mask, self.nvec)
        return all(_mask_allows(m, _argmax(p)) for m, p in zip(masks, parts, strict=True))

    def _project(self, val: torch.Tensor) -> torch.Tensor:
        """Per-variable one-hot of the (allowed) argmax."""
        if self.mask is not None:
            val = val.float().masked_fill(~self.mask.expand(val.shape), float("-inf"))
        parts = [one_hot(_argmax(p), n, self.dtype)
                 for p, n in zip(val.split(self.nvec, -1), self.nvec, strict=True)]
        return torch.cat(parts, -1)

    def _from_raw(self, t: torch.Tensor) -> torch.Tensor:
        # a value shaped like the spec is one-hot already; any other holds indices
        if t.shape == self.shape:
            return t
        parts = [
            torch.nn.functional.one_hot(v.long(), n)
            for v, n in zip(t.unbind(-1), self.nvec, strict=True)
        ]
        return torch.cat(parts, -1)

    def to_categorical(self, val: torch.Tensor, safe: bool | None = None) -> torch.Tensor:
        """Indices per variable (trailing dim of size ``len(nvec)``)."""
        if safe:
            self.check(val)
        return torch.stack([_argmax(p) for p in val.split(self.nvec, -1)], -1)

    def enumerate(self, use_mask: bool = False) -> torch.Tensor:
        """Every value (one one-hot per variable, all combinations) along a new leading dim,
        each repeated over the batch dims.

        >>> MultiOneHot([2, 1]).enumerate().long().tolist()
        [[1, 0, 1], [0, 1, 1]]
        """
        parts = [
            torch.nn.functional.one_hot(c, n)
            for c, n in zip(self._combos().unbind(-1), self.nvec, strict=True)
        ]
        vals = torch.cat(parts, -1)
        lead = self.shape[:-1]
        vals = vals.reshape(-1, *([1] * len(lead)), vals.shape[-1])
        return vals.expand(-1, *self.shape).to(self.dtype)

    def to_categorical_spec(self) -> MultiCategorical:
        """The :class:`MultiCategorical` spec of the same variables (and mask)."""
        shape = (*self.shape[:-1], len(self.nvec))
        return MultiCategorical(self.nvec, shape, self.device, mask=self.mask)

    def to_one_hot_spec(self) -> MultiOneHot:
        """This spec (a copy)."""
        return self.clone()

    def _reshaped(self, shape: torch.Size, index: Any = None) -> MultiOneHot:
        out = self.clone()
        out.shape = shape
        out.mask = _reshape_mask(self.mask, index, shape[:-1])
        if out.mask is not None:
            out.mask = out.mask.clone()
        return out
