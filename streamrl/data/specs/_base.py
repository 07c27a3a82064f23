"""The base class of leaf specs: shape, dtype, device, sampling, membership and projection."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any, TypeVar

import numpy as np
import torch

_NP_TO_TORCH = {
    np.dtype("float16"): torch.float16,
    np.dtype("float32"): torch.float32,
    np.dtype("float64"): torch.float64,
    np.dtype("int8"): torch.int8,
    np.dtype("int16"): torch.int16,
    np.dtype("int32"): torch.int32,
    np.dtype("int64"): torch.int64,
    np.dtype("uint8"): torch.uint8,
    np.dtype("bool"): torch.bool,
}

_SpecT = TypeVar("_SpecT", bound="TensorSpec")


def _torch_dtype(dtype: Any) -> torch.dtype:
    """Map a torch dtype, numpy dtype or dtype name to a torch dtype."""
    if isinstance(dtype, torch.dtype):
        return dtype
    try:
        return _NP_TO_TORCH[np.dtype(dtype)]
    except (TypeError, KeyError):
        raise TypeError(f"unsupported dtype {dtype!r}") from None


def _size(shape: Any) -> torch.Size:
    if shape is None:
        return torch.Size([])
    if isinstance(shape, int):
        return torch.Size([shape])
    return torch.Size(shape)


def _device(device: Any) -> torch.device:
    return torch.device("cpu") if device is None else torch.device(device)


def _expand_shape(args: tuple) -> torch.Size:
    if len(args) == 1 and isinstance(args[0], Sequence | torch.Size):
        return torch.Size(args[0])
    return torch.Size(args)


def _tensor_repr(t: torch.Tensor) -> str:
    return (
        f"Tensor(shape={t.shape}, device={t.device}, dtype={t.dtype}, "
        f"contiguous={t.is_contiguous()})"
    )


def _map_tensors(obj: Any, fn: Any) -> None:
    """Apply ``fn`` to every tensor attribute of ``obj`` and of its space object."""
    for name, val in vars(obj).items():
        if isinstance(val, torch.Tensor):
            setattr(obj, name, fn(val))
        elif name in ("space", "_space") and hasattr(val, "__dict__"):
            _map_tensors(val, fn)


def _as_index_tensor(x: Any) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(list(x) if isinstance(x, range | tuple) else x))
    if t.is_floating_point():
        raise IndexError(f"index arrays must hold ints or bools, found {t.dtype}")
    return t


def _negative_steps(items: tuple, shape: torch.Size) -> tuple:
    """Slices with a negative step (which torch does not take) as index tensors."""
    out = []
    dim = 0
    for pos, x in enumerate(items):
        if x is Ellipsis:
            rest = sum(1 for y in items[pos + 1 :] if y is not None)
            dim = len(shape) - rest
        elif isinstance(x, slice) and x.step is not None and x.step < 0 and dim < len(shape):
            x = torch.arange(*x.indices(shape[dim]))
        if x is not None and x is not Ellipsis:
            dim += 1
        out.append(x)
    return tuple(out)


def norm_index(index: Any, shape: torch.Size) -> Any:
    """``index`` for the batch ``shape`` checked as ``tensor[index]`` would check it (too
    many indices, out-of-range ints or index arrays raise ``IndexError``) and normalised:
    lists, ranges, arrays and tuples inside a tuple become index tensors.

    >>> norm_index((0, [1, 2]), torch.Size([2, 3]))
    (0, tensor([1, 2]))
    """
    items = index if isinstance(index, tuple) else (index,)
    items = tuple(
        _as_index_tensor(x) if isinstance(x, list | range | tuple | np.ndarray) else x
        for x in items
    )
    if any(isinstance(x, slice) and x.step is not None and x.step < 0 for x in items):
        items = _negative_steps(items, shape)
    if sum(x is Ellipsis for x in items) > 1:
        raise IndexError(f"an index can only have a single ellipsis (...), found {index!r}")

    def width(x: Any) -> int:
        if x is None or x is Ellipsis:
            return 0
        if isinstance(x, torch.Tensor) and x.dtype == torch.bool:
            return max(x.ndim, 1)
        return 1

    used = sum(width(x) for x in items)
    if used > len(shape):
        raise IndexError(
            f"too many indices for a spec of batch shape {tuple(shape)}: {used} were indexed"
        )
    dim = 0
    for pos, x in enumerate(items):
        if x is Ellipsis:
            dim = len(shape) - sum(width(y) for y in items[pos + 1 :])
            continue
        if isinstance(x, bool) or x is None or isinstance(x, slice):
            dim += 0 if x is None or isinstance(x, bool) else 1
            continue
        size = shape[dim]
        if isinstance(x, int | np.integer):
            if not -size <= x < size:
                raise IndexError(f"index {x} is out of bounds for dim {dim} of size {size}")
        elif isinstance(x, torch.Tensor) and x.dtype != torch.bool and x.numel():
            if bool(((x < -size) | (x >= size)).any()):
                raise IndexError(
                    f"index {x.tolist()} is out of bounds for dim {dim} of size {size}"
                )
        dim += width(x)
    return items if isinstance(index, tuple) or len(items) != 1 else items[0]


def _torch_function(func: Any, args: Any, kwargs: Any) -> Any:
    """``torch.stack`` and ``torch.index_select`` of specs (shared by every spec class)."""
    kwargs = kwargs or {}
    if func is torch.stack:
        from streamrl.data.specs.stacked import stack_specs

        return stack_specs(*args, **kwargs)
    if func is torch.index_select:
        spec, *rest = args
        return spec.index_select(*rest, **kwargs)
    return NotImplemented


class TensorSpec:
    """Describes one tensor: its ``shape`` (batch dims included), ``dtype``, ``device`` and
    the set of values it may hold (``domain`` is ``"continuous"`` or ``"discrete"``).

    Subclasses implement ``rand``, ``zero``, ``_values_ok``, ``_project``, ``_reshaped`` and
    ``_space_eq`` (and ``_from_raw`` when encoded values are not in the spec's layout). Leading dims given to ``rand``/``zero`` are prepended to ``shape``;
    ``is_in`` accepts values with extra leading dims.
    """

    domain: str = "continuous"
    # encoders by input type, filled by encode() once memoize_encode() is on (None: off)
    _encode_memo: dict | None = None
    # trailing dims that are features of one value (a one-hot vector): not unbindable
    _feature_dims: int = 0

    def __init__(self, shape: Any, device: Any, dtype: Any) -> None:
        self.shape = _size(shape)
        self.device = _device(device)
        self.dtype = torch.get_default_dtype() if dtype is None else _torch_dtype(dtype)

    # ------------------------------------------------------------------ sampling
    def rand(self, shape: Any = None) -> torch.Tensor:
        """A random value in the spec, with extra leading dims ``shape``."""
        raise NotImplementedError

    def zero(self, shape: Any = None) -> torch.Tensor:
        """A zero-filled value (the lowest valid value where zero is not valid)."""
        return torch.zeros((*_size(shape), *self.shape), dtype=self.dtype, device=self.device)

    def one(self, shape: Any = None) -> torch.Tensor:
        """A one-filled value."""
        return torch.ones((*_size(shape), *self.shape), dtype=self.dtype, device=self.device)

    # ---------------------------------------------------------------- membership
    def _shape_ok(self, val: torch.Tensor) -> bool:
        n = len(self.shape)
        if val.ndim < n or n == 0:
            return val.ndim >= n
        tail = val.shape[-n:]
        # a -1 dim (a spec of a dynamic shape) takes any size
        return tail == self.shape or all(
            w in (h, -1) for h, w in zip(tail, self.shape, strict=True)
        )

    def _values_ok(self, val: torch.Tensor) -> bool:
        return True

    def is_in(self, val: Any) -> bool:
        """Whether ``val`` has this spec's trailing shape, dtype and valid values."""
        if not isinstance(val, torch.Tensor):
            return False
        if val.dtype != self.dtype or not self._shape_ok(val):
            return False
        return bool(self._values_ok(val))

    def check(self, val: Any, name: str = "value") -> None:
        """Raise ``TypeError``/``ValueError`` saying why ``val`` is not in the spec."""
        if not isinstance(val, torch.Tensor):
            raise TypeError(f"{name}: expected a torch.Tensor, found {type(val).__name__}")
        if val.dtype != self.dtype:
            raise TypeError(f"{name}: expected dtype {self.dtype}, found {val.dtype}")
        if not self._shape_ok(val):
            raise ValueError(f"{name}: expected shape {self.shape}, found {val.shape}")
        if not self._values_ok(val):
            raise ValueError(f"{name}: value outside the spec's space {self._space_str()}")

    assert_is_in = check

    def project(self, val: torch.Tensor) -> torch.Tensor:
        """Map ``val`` to the nearest value in the spec (clamp, round, argmax...). A value
        whose shape does not end with the spec's shape (leading batch dims are allowed) and
        cannot be projected raises ``ValueError`` naming both shapes."""
        try:
            return self._project(val)
        except RuntimeError as err:
            shape = getattr(val, "shape", None)
            n = len(self.shape)
            if shape is None or (len(shape) >= n and tuple(shape[len(shape) - n:]) == tuple(
                    self.shape)):
                raise
            raise self._project_shape_error(shape) from err

    def _project_shape_error(self, shape: Any) -> ValueError:
        """The error of :meth:`project` for a value of another ``shape``."""
        return ValueError(f"project: expected a value of shape {tuple(self.shape)} (after any "
                          f"batch dims), found {tuple(shape)}")

    def _project(self, val: torch.Tensor) -> torch.Tensor:
        return val.to(self.dtype)

    def encode(self, val: Any, *, ignore_device: bool = False) -> torch.Tensor:
        """Turn a number, numpy array or tensor into a tensor of this spec's dtype and shape
        (on the spec's device unless ``ignore_device``); a value with as many elements as the
        spec is reshaped, any other shape raises ``RuntimeError``.

        >>> from streamrl.data.specs import Unbounded
        >>> Unbounded((2,)).encode([1, 2])
        tensor([1., 2.])
        """
        memo = self._encode_memo
        if memo is None:
            return self._encode(val, ignore_device)
        key = (type(val), ignore_device)
        fn = memo.get(key)
        if fn is None:
            fn = memo[key] = self._encoder_for(val, ignore_device)
        return fn(val)

    def _to_tensor(self, val: Any) -> torch.Tensor:
        if isinstance(val, torch.Tensor):
            return val
        return torch.as_tensor(np.asarray(val))

    def _from_raw(self, t: torch.Tensor) -> torch.Tensor:
        """Hook: turn an encoded tensor into the spec's layout (indices to one-hot...)."""
        return t

    def _fit_shape(self, t: torch.Tensor) -> torch.Tensor:
        if t.shape == self.shape:
            return t
        if t.numel() != self.shape.numel():
            raise RuntimeError(
                f"Shape mismatch: cannot encode a value of shape {tuple(t.shape)} into "
                f"{type(self).__name__} of shape {tuple(self.shape)}: shape "
                f"{list(self.shape)} is invalid for input of size {t.numel()}"
            )
        return t.reshape(self.shape)

    def _encode(self, val: Any, ignore_device: bool) -> torch.Tensor:
        t = self._from_raw(self._to_tensor(val))
        t = t.to(dtype=self.dtype) if ignore_device else t.to(self.device, self.dtype)
        return self._fit_shape(t)

    def _encoder_for(self, sample: Any, ignore_device: bool) -> Any:
        """An encoder specialised to inputs like ``sample`` (same type and shape): the
        steps ``sample`` does not need are left out."""
        raw = self._to_tensor(sample)
        t = self._from_raw(raw)
        steps: list[Any] = []
        if not isinstance(sample, torch.Tensor):
            steps.append(self._to_tensor)
        if t is not raw:
            steps.append(self._from_raw)
        if t.dtype != self.dtype or (not ignore_device and t.device != self.device):
            dev = None if ignore_device else self.device
            steps.append(lambda x: x.to(device=dev, dtype=self.dtype))
        if t.shape != self.shape:
            steps.append(self._fit_shape)

        def encode(val: Any) -> torch.Tensor:
            for step in steps:
                val = step(val)
            return val

        return encode

    def memoize_encode(self, mode: bool = True) -> None:
        """Cache, per input type, the conversion steps :meth:`encode` needs (skipping the
        checks of later calls); only for inputs of a steady type, dtype and shape.
        ``mode=False`` turns the cache off; :meth:`erase_memoize_cache` empties it.

        >>> from streamrl.data.specs import Unbounded
        >>> spec = Unbounded((2,))
        >>> spec.memoize_encode()
        >>> spec.encode(np.zeros(2)).dtype
        torch.float32
        """
        self._encode_memo = {} if mode else None

    def erase_memoize_cache(self) -> None:
        """Forget the encoders cached by :meth:`memoize_encode` (the cache stays on)."""
        if self._encode_memo is not None:
            self._encode_memo = {}

    def clear_device_(self: _SpecT) -> _SpecT:
        """Nothing to clear: a leaf spec always has a device (a :class:`Composite` may
        not). Returns self."""
        return self

    # -------------------------------------------------------------- shape algebra
    @property
    def ndim(self) -> int:
        """Number of dims of ``shape``."""
        return len(self.shape)

    def numel(self) -> int:
        """Number of elements of one value."""
        return self.shape.numel()

    def _reshaped(self, shape: torch.Size, index: Any = None) -> TensorSpec:
        """A copy with ``shape`` (expanded from the current one, or ``index`` applied)."""
        raise NotImplementedError

    def expand(self, *shape: Any) -> TensorSpec:
        """A spec whose shape is ``shape``; ``shape`` must end with (or broadcast to) ours."""
        new = _expand_shape(shape)
        if len(new) < self.ndim:
            raise ValueError(f"cannot expand spec of shape {self.shape} to {new}: fewer dims")
        tail = new[len(new) - self.ndim :]
        for have, want in zip(self.shape, tail, strict=True):
            if have != want and have != 1:
                raise ValueError(f"cannot expand spec of shape {self.shape} to {new}")
        return self._reshaped(new)

    def __getitem__(self, index: Any) -> TensorSpec:
        """Index the leading (batch) dims, as one would index a value of the spec."""
        index = norm_index(index, self.shape[: self.ndim - self._feature_dims])
        new = torch.empty(self.shape, device="meta")[index].shape
        return self._reshaped(new, index)

    def unsqueeze(self, dim: int) -> TensorSpec:
        """A copy with a new dim of size 1 at ``dim`` (a leading batch dim when ``dim=0``)."""
        new = torch.empty(self.shape, device="meta").unsqueeze(dim).shape
        return self._reshaped(new, ("unsqueeze", dim))

    def squeeze(self, dim: int | None = None) -> TensorSpec:
        """A copy without a size-1 dim (all of them when ``dim`` is None)."""
        m = torch.empty(self.shape, device="meta")
        new = (m.squeeze() if dim is None else m.squeeze(dim)).shape
        return self._reshaped(new, ("squeeze", dim))

    def reshape(self, *shape: Any) -> TensorSpec:
        """A copy with shape ``shape`` (as ``tensor.reshape``; one dim may be ``-1``); the
        trailing feature dim of one-hot-like specs must stay as it is.

        >>> from streamrl.data.specs import Bounded
        >>> Bounded(0.0, 1.0, (2, 3)).reshape(-1).low.shape
        torch.Size([6])
        """
        try:
            new = torch.empty(self.shape, device="meta").reshape(_expand_shape(shape)).shape
        except RuntimeError:
            raise ValueError(f"cannot reshape spec of shape {self.shape} to {shape}") from None
        fd = self._feature_dims
        if fd and new[len(new) - fd :] != self.shape[self.ndim - fd :]:
            raise ValueError(
                f"reshape must keep the feature dim {tuple(self.shape[-fd:])} of "
                f"{type(self).__name__}, found {tuple(new)}"
            )
        return self._reshaped(new, ("reshape", new))

    view = reshape

    def flatten(self, start_dim: int, end_dim: int) -> TensorSpec:
        """A copy with dims ``start_dim..end_dim`` merged into one."""
        new = torch.empty(self.shape, device="meta").flatten(start_dim, end_dim).shape
        return self.reshape(new)

    def unflatten(self, dim: int, sizes: Any) -> TensorSpec:
        """A copy with dim ``dim`` split into ``sizes``."""
        try:
            new = torch.empty(self.shape, device="meta").unflatten(dim, sizes).shape
        except RuntimeError as err:
            raise ValueError(f"cannot unflatten dim {dim} of {self.shape}: {err}") from None
        return self.reshape(new)

    def unbind(self, dim: int = 0) -> tuple[TensorSpec, ...]:
        """The specs of the slices along batch dim ``dim`` (as ``tensor.unbind(dim)``).

        >>> from streamrl.data.specs import Unbounded
        >>> [s.shape for s in Unbounded(shape=(2, 3)).unbind(0)]
        [torch.Size([3]), torch.Size([3])]
        """
        batch = self.ndim - self._feature_dims
        d = dim + self.ndim if dim < 0 else dim
        if not 0 <= d < batch:
            raise ValueError(
                f"unbind dim must be one of the {batch} batch dims of shape {self.shape} "
                f"(the last {self._feature_dims} are feature dims), found {dim}"
            )
        lead = (slice(None),) * d
        return tuple(self[idx] for idx in ((*lead, i) for i in range(self.shape[d])))

    def to_numpy(self, val: torch.Tensor, safe: bool | None = None) -> np.ndarray:
        """``val`` as a numpy array (the inverse of :meth:`encode`); ``safe=True`` first
        checks that ``val`` is in the spec.

        >>> from streamrl.data.specs import Categorical
        >>> Categorical(3).to_numpy(torch.tensor(2), safe=True)
        array(2)
        """
        if safe:
            self.check(val)
        return val.detach().cpu().numpy()

    @classmethod
    def __torch_function__(cls, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        return _torch_function(func, args, kwargs)

    # --------------------------------------------------------- TorchRL spellings
    def sample(self, shape: Any = None) -> Any:
        """Same as :meth:`rand`."""
        return self.rand(shape)

    def zeros(self, shape: Any = None) -> Any:
        """Same as :meth:`zero`."""
        return self.zero(shape)

    def ones(self, shape: Any = None) -> Any:
        """Same as :meth:`one`."""
        return self.one(shape)

    def contains(self, item: Any) -> bool:
        """Same as :meth:`is_in`."""
        return self.is_in(item)

    def ndimension(self) -> int:
        """Same as :attr:`ndim`."""
        return self.ndim

    def type_check(self, value: torch.Tensor, key: Any = None) -> None:
        """Raise ``TypeError`` when ``value``'s dtype is not the spec's (``key`` names it)."""
        if value.dtype is not self.dtype:
            where = "" if key is None else f" at key {key!r}"
            raise TypeError(f"expected dtype {self.dtype}{where}, found {value.dtype}")

    def index_select(self, dim: int, index: torch.Tensor) -> TensorSpec:
        """The spec of ``torch.index_select(value, dim, index)`` (also reached through
        ``torch.index_select(spec, dim, index)``): ``dim`` must be a batch dim.

        >>> from streamrl.data.specs import Bounded
        >>> torch.index_select(Bounded(0.0, 1.0, (4, 2)), 0, torch.tensor([0, 2])).shape
        torch.Size([2, 2])
        """
        d = dim + self.ndim if dim < 0 else dim
        if not 0 <= d < self.ndim:
            raise IndexError(f"index_select dim {dim} is out of range for shape {self.shape}")
        if d >= self.ndim - self._feature_dims:
            raise ValueError(
                f"Cannot index_select along the last dimension of {type(self).__name__} "
                f"(its {self._feature_dims} trailing dim(s) hold one value's features), "
                f"found dim={dim} for shape {self.shape}"
            )
        index = torch.as_tensor(index)
        if index.ndim > 1 or (index.numel() and index.dtype not in (torch.int64, torch.int32)):
            raise IndexError(
                f"index must be a 1-dim int tensor, found {index.dtype} of shape "
                f"{tuple(index.shape)}"
            )
        index = index.reshape(-1).long().cpu()
        size = self.shape[d]
        if index.numel() and bool(((index < -size) | (index >= size)).any()):
            raise IndexError(f"index {index.tolist()} is out of range for dim {dim} of size {size}")
        return self[(slice(None),) * d + (index,)]

    def cuda(self: _SpecT, device: Any = None) -> _SpecT:
        """A copy on CUDA device ``device`` (the current one when None)."""
        return self.to("cuda" if device is None else device)

    # ------------------------------------------------------------------ misc
    def to(self: _SpecT, dest: Any) -> _SpecT:
        """A copy on device ``dest`` (or cast to dtype ``dest``)."""
        out = self.clone()
        if isinstance(dest, torch.dtype):
            out.dtype = dest
        else:
            out.device = _device(dest)
            _map_tensors(out, lambda t: t.to(out.device))
        return out

    def cpu(self: _SpecT) -> _SpecT:
        """A copy on the CPU."""
        return self.to("cpu")

    def clone(self: _SpecT) -> _SpecT:
        """A deep copy (memoized encoders are not copied: they belong to this spec)."""
        out = copy.deepcopy(self)
        out.erase_memoize_cache()
        return out

    def _space_eq(self, other: TensorSpec) -> bool:
        return True

    def __eq__(self, other: object) -> bool:
        return (
            type(self) is type(other)
            and self.shape == other.shape
            and self.dtype == other.dtype
            and self.device == other.device
            and self._space_eq(other)
        )

    __hash__ = None  # type: ignore[assignment]

    def _space_str(self) -> str:
        return "None"

    def __repr__(self) -> str:
        space = self._space_str().replace("\n", "\n    ")
        return (
            f"{type(self).__name__}(\n    shape={self.shape},\n    space={space},\n"
            f"    device={self.device},\n    dtype={self.dtype},\n    domain={self.domain})"
        )
