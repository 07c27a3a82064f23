"""Discrete specs: categorical, one-hot, binary and their multi-variable versions."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from streamrl._utils.one_hot import one_hot
from streamrl.data.specs._base import TensorSpec, _size
from streamrl.data.specs.boxes import Box

__all__ = ["Binary", "Categorical", "DiscreteBox", "OneHot"]


class DiscreteBox(Box):
    """The space of a discrete spec: ``n`` values per variable (``nvec`` for several).

    >>> DiscreteBox(3) == DiscreteBox(3)
    True
    """

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


def _argmax(val: torch.Tensor) -> torch.Tensor:
    """``argmax`` over the last dim (bool one-hot values included)."""
    return (val.to(torch.uint8) if val.dtype == torch.bool else val).argmax(-1)


def _check_n(n: Any) -> int:
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise ValueError(f"n must be a positive int, found {n!r}")
    return int(n)


def _fit_mask(mask: Any, want: tuple, device: torch.device) -> torch.Tensor | None:
    """``mask`` checked (a bool tensor broadcasting to ``want``) and expanded to ``want``."""
    if mask is None:
        return None
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
        found = mask.dtype if isinstance(mask, torch.Tensor) else type(mask).__name__
        raise TypeError(f"mask must be a bool tensor, found {found}")
    try:
        mask = mask.to(device).expand(want).clone()
    except RuntimeError:
        raise ValueError(
            f"mask of shape {tuple(mask.shape)} does not broadcast to {want}"
        ) from None
    return mask


def _check_allows_one(mask: torch.Tensor, what: str = "position of the mask") -> None:
    if mask.numel() and not bool(mask.any(-1).all()):
        raise ValueError(f"every {what} must allow at least one choice")


def samplable_mask(mask: torch.Tensor) -> torch.Tensor | None:
    """A legal-action mask (``[..., n]``, True = legal) as a spec mask: rows that allow
    nothing (an agent that does not act this step, or whose game is over) allow everything
    instead, so every row can be sampled from; ``None`` when nothing is then restricted.

    >>> samplable_mask(torch.tensor([[True, False], [False, False]])).tolist()
    [[True, False], [True, True]]
    >>> samplable_mask(torch.tensor([[False, False]])) is None
    True
    """
    mask = mask.bool()
    empty = ~mask.any(-1, keepdim=True)
    if bool(empty.any()):
        mask = mask | empty
    return None if bool(mask.all()) else mask


def _masked_sample(mask: torch.Tensor | None, n: int, full: tuple, device: Any) -> torch.Tensor:
    """Indices of shape ``full``, uniform over the choices ``mask[..., :n]`` allows."""
    if mask is None:
        return torch.randint(0, n, full, device=device)
    probs = mask.expand(*full, n).reshape(-1, n).float()
    if probs.shape[0] == 0:
        return torch.zeros(full, dtype=torch.int64, device=device)
    return torch.multinomial(probs, 1).reshape(full)


def _mask_allows(mask: torch.Tensor | None, idx: torch.Tensor) -> bool:
    """Whether ``mask`` allows every index of ``idx`` (indices must be in range)."""
    if mask is None:
        return True
    mask = mask.expand(*idx.shape, mask.shape[-1])
    return bool(mask.gather(-1, idx.long().unsqueeze(-1)).all())


def _masked_project(mask: torch.Tensor | None, idx: torch.Tensor) -> torch.Tensor:
    """``idx`` with the indices ``mask`` forbids replaced by the first allowed one."""
    if mask is None:
        return idx
    mask = mask.expand(*idx.shape, mask.shape[-1])
    ok = mask.gather(-1, idx.long().unsqueeze(-1)).squeeze(-1)
    return torch.where(ok, idx, mask.to(torch.int8).argmax(-1).to(idx.dtype))


class _Discrete(TensorSpec):
    domain = "discrete"

    def _reshaped(self, shape: torch.Size, index: Any = None) -> TensorSpec:
        out = self.clone()
        out.shape = shape
        return out

    def _space_eq(self, other: TensorSpec) -> bool:
        # the mask (of the specs that take one) is part of the space
        mine, theirs = getattr(self, "mask", None), getattr(other, "mask", None)
        if (mine is None) != (theirs is None):
            return False
        same_mask = mine is None or torch.equal(mine, theirs)  # type: ignore[arg-type]
        return same_mask and self.space == other.space  # type: ignore[attr-defined]

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
        mask = _fit_mask(mask, (*self._positions(), self.n), self.device)
        if mask is not None:
            _check_allows_one(mask)
        self.mask = mask

    def _sample(self, lead: torch.Size) -> torch.Tensor:
        full = (*lead, *self._positions())
        if self.mask is None:  # the per-step path: no extra call
            return torch.randint(0, self.n, full, device=self.device)
        return _masked_sample(self.mask, self.n, full, self.device)

    def _allowed(self, idx: torch.Tensor) -> bool:
        return self.mask is None or _mask_allows(self.mask, idx)

    def _as_indices(self, val: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _encode_indices(self, idx: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def cardinality(self) -> int:
        """The number of choices ``n``."""
        return self.n

    def enumerate(self, use_mask: bool = False) -> torch.Tensor:
        """Every choice, stacked along a new leading dim (each repeated over the positions);
        with ``use_mask`` only the allowed ones (the mask must be the same at every position).

        >>> Categorical(3, shape=(2,)).enumerate().tolist()
        [[0, 0], [1, 1], [2, 2]]
        """
        idx = torch.arange(self.n, device=self.device)
        if use_mask and self.mask is not None:
            flat = self.mask.reshape(-1, self.n)
            if not bool((flat == flat[:1]).all()):
                raise ValueError("enumerate(use_mask=True) needs the same mask at every position")
            idx = idx[flat[0]]
        positions = self._positions()
        idx = idx.reshape(-1, *([1] * len(positions))).expand(-1, *positions)
        return self._encode_indices(idx)

    def index(self, index: torch.Tensor, tensor_to_index: torch.Tensor) -> torch.Tensor:
        """Pick ``tensor_to_index[..., i]`` where ``i`` is the choice encoded by ``index``
        (an index for :class:`Categorical`, a one-hot vector for :class:`OneHot`).

        >>> OneHot(4).index(torch.tensor([0, 0, 1, 0]), torch.tensor([5, 6, 7, 8]))
        tensor(7)
        """
        if not isinstance(index, torch.Tensor) or not isinstance(tensor_to_index, torch.Tensor):
            raise TypeError(
                f"index and tensor_to_index must be tensors, found {type(index).__name__} "
                f"and {type(tensor_to_index).__name__}"
            )
        if tensor_to_index.ndim == 0 or tensor_to_index.shape[-1] != self.n:
            raise ValueError(
                f"tensor_to_index must have a last dim of size n={self.n}, found shape "
                f"{tuple(tensor_to_index.shape)}"
            )
        idx = self._as_indices(index).long()
        try:
            idx = idx.expand(tensor_to_index.shape[:-1]) if idx.ndim == 0 else idx
            return tensor_to_index.gather(-1, idx.unsqueeze(-1)).squeeze(-1)
        except RuntimeError:
            raise ValueError(
                f"indices of shape {tuple(idx.shape)} do not match tensor_to_index of shape "
                f"{tuple(tensor_to_index.shape)} (expected {tuple(tensor_to_index.shape[:-1])})"
            ) from None

    def _reshaped(self, shape: torch.Size, index: Any = None) -> TensorSpec:
        out = self.clone()
        out.shape = shape
        if self.mask is not None:
            positions = out._positions()
            if index is None:
                out.mask = self.mask.expand(*positions, self.n).clone()
            elif (
                isinstance(index, tuple)
                and index
                and index[0] in ("unsqueeze", "squeeze", "reshape")
            ):
                out.mask = self.mask.reshape(*positions, self.n)
            else:
                out.mask = self.mask[index]
        return out


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
            if not val.ndim:
                return 0 <= val.item() < n
            return all(0 <= v < n for v in val.reshape(-1).tolist())
        if not bool(((val >= 0) & (val < self.n)).all()):
            return False
        return self._allowed(val)

    def _project(self, val: torch.Tensor) -> torch.Tensor:
        """Round and clamp into ``[0, n)``; masked-out values become the first allowed one."""
        if val.is_floating_point():
            val = val.round()
        val = _masked_project(self.mask, val.clamp(0, self.n - 1).long())
        return val.to(self.dtype)

    def _as_indices(self, val: torch.Tensor) -> torch.Tensor:
        return val

    def _encode_indices(self, idx: torch.Tensor) -> torch.Tensor:
        return idx.to(self.dtype)

    def to_one_hot(self, val: torch.Tensor, safe: bool | None = None) -> torch.Tensor:
        """Encode indices as bool one-hot vectors (a new trailing dim of size ``n``)."""
        if safe:
            self.check(val)
        return torch.nn.functional.one_hot(val.long(), self.n).bool()

    def to_categorical(self, val: torch.Tensor, safe: bool | None = None) -> torch.Tensor:
        """``val`` itself: values of a Categorical are already indices."""
        if safe:
            self.check(val)
        return val

    def to_one_hot_spec(self) -> OneHot:
        """The :class:`OneHot` spec of the same choices (``shape`` gains a trailing ``n``)."""
        return OneHot(self.n, (*self.shape, self.n), self.device, torch.bool, self.mask)

    def to_categorical_spec(self) -> Categorical:
        """This spec (a copy)."""
        return self.clone()


class _OneHotValues:
    """Shared by OneHot and MultiOneHot, whose values are one-hot vectors."""

    def to_numpy(self, val: torch.Tensor, safe: bool | None = None) -> np.ndarray:
        """The indices of ``val`` as a numpy array (as gym's discrete spaces take them);
        :meth:`encode` turns them back into one-hot values."""
        return self.to_categorical(val, safe).detach().cpu().numpy()  # type: ignore[attr-defined]

    def to_one_hot(self, val: torch.Tensor, safe: bool | None = None) -> torch.Tensor:
        """``val`` itself: values of this spec are already one-hot."""
        if safe:
            self.check(val)  # type: ignore[attr-defined]
        return val


class OneHot(_OneHotValues, _Indexed):
    """One-hot vectors of length ``n``; ``shape`` defaults to ``(n,)``, ``dtype`` to bool (as in
    TorchRL; gym envs give int64 one-hot actions).

    ``mask`` (bool, shape ``shape``) forbids some choices (see :meth:`update_mask`).

    >>> spec = OneHot(3)
    >>> spec.to_categorical(spec.project(torch.tensor([0.1, 2.0, -1.0])))
    tensor(1)
    """

    _feature_dims = 1  # the trailing dim holds one value's features

    def __init__(
        self,
        n: int,
        shape: Any = None,
        device: Any = None,
        dtype: Any = torch.bool,
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
        return one_hot(idx, self.n, self.dtype)

    def _values_ok(self, val: torch.Tensor) -> bool:
        n = self.n
        if val.numel() <= 64 and self.mask is None and val.ndim and val.shape[-1] == n:
            # a few actions (a step's): Python compares are cheaper than tensor ops
            return all(sum(row) == 1 and all(v == 0 or v == 1 for v in row)
                       for row in val.reshape(-1, n).tolist())
        binary = bool(((val == 0) | (val == 1)).all())
        if not (binary and bool((val.sum(-1) == 1).all())):
            return False
        return self.mask is None or self._allowed(_argmax(val))

    def _project(self, val: torch.Tensor) -> torch.Tensor:
        """The one-hot vector of the (allowed) argmax."""
        if not val.shape or val.shape[-1] != self.n:  # (the argmax of other scores is no action)
            raise self._project_shape_error(val.shape)
        if self.mask is not None:
            val = val.float().masked_fill(~self.mask.expand(val.shape), float("-inf"))
        return one_hot(_argmax(val), self.n, self.dtype)

    def _as_indices(self, val: torch.Tensor) -> torch.Tensor:
        return _argmax(val)

    def _from_raw(self, t: torch.Tensor) -> torch.Tensor:
        # a value shaped like the spec is one-hot already; any other holds indices
        if t.shape == self.shape:
            return t
        return torch.nn.functional.one_hot(t.long(), self.n)

    def _encode_indices(self, idx: torch.Tensor) -> torch.Tensor:
        return one_hot(idx, self.n, self.dtype)

    def to_categorical(self, val: torch.Tensor, safe: bool | None = None) -> torch.Tensor:
        """Indices of the ones (drops the trailing dim)."""
        if safe:
            self.check(val)
        return _argmax(val)

    def to_categorical_spec(self) -> Categorical:
        """The :class:`Categorical` spec of the same choices (drops the trailing dim)."""
        return Categorical(self.n, self.shape[:-1], self.device, torch.int64, self.mask)

    def to_one_hot_spec(self) -> OneHot:
        """This spec (a copy)."""
        return self.clone()


class Binary(_Discrete):
    """Vectors of ``n`` zeros and ones (int8 by default); ``shape`` defaults to ``(n,)``."""

    _feature_dims = 1  # the trailing dim holds one value's features

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

    def _project(self, val: torch.Tensor) -> torch.Tensor:
        """Threshold at 0.5."""
        return (val > 0.5).to(self.dtype)

    def cardinality(self) -> int:
        """The number of distinct values, ``2 ** n``."""
        return 2**self.n

    def enumerate(self, use_mask: bool = False) -> torch.Tensor:
        """Every value (all ``2 ** n`` bit vectors), stacked along a new leading dim (each
        repeated over the batch dims).

        >>> Binary(2).enumerate().tolist()
        [[0, 0], [0, 1], [1, 0], [1, 1]]
        """
        bits = torch.arange(2**self.n, device=self.device).unsqueeze(-1)
        shifts = torch.arange(self.n - 1, -1, -1, device=self.device)
        vals = (bits >> shifts) & 1
        lead = self.shape[:-1]
        vals = vals.reshape(-1, *([1] * len(lead)), self.n).expand(-1, *self.shape)
        return vals.to(self.dtype)
