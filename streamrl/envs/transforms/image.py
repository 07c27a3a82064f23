"""Image transforms on pixel observations: ToTensorImage, Resize, GrayScale, CenterCrop,
Crop.

Images are ``[..., H, W, C]`` uint8 as envs render them; ToTensorImage makes them
``[..., C, H, W]`` floats in ``[0, 1]``, the layout the other three expect. Leading dims
(env batch, time) pass through. No torchvision: resizing uses
:func:`torch.nn.functional.interpolate`.

>>> import torch
>>> from tensordict import TensorDict
>>> from streamrl.envs.transforms import Compose, Resize, ToTensorImage
>>> td = TensorDict({"pixels": torch.zeros(64, 48, 3, dtype=torch.uint8)})
>>> Compose(ToTensorImage(), Resize(32, 32))(td)["pixels"].shape
torch.Size([3, 32, 32])
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

import torch
import torch.nn.functional as F

from streamrl.envs.transforms._spec_utils import map_spec
from streamrl.envs.transforms.transform import ObservationTransform, Transform, keys_repr

__all__ = ["CenterCrop", "Crop", "GrayScale", "Resize", "ToTensorImage"]

_PIXELS = ["pixels"]
# ITU-R 601-2 luma weights, the ones PIL and torchvision use.
_LUMA = (0.2989, 0.587, 0.114)


def _check_image(value: torch.Tensor, transform: Transform, layout: str) -> None:
    if value.ndim < 3:
        raise ValueError(
            f"{type(transform).__name__} expects images shaped [..., {layout}], found shape "
            f"{tuple(value.shape)}"
        )


def _size_arg(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, found {value!r}")
    return value


def _back_to(value: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Cast a float result back to an integer image dtype (rounded, clamped to its range)."""
    if dtype.is_floating_point:
        return value.to(dtype)
    info = torch.iinfo(dtype)
    return value.round().clamp(info.min, info.max).to(dtype)


class ToTensorImage(ObservationTransform):
    """``[..., H, W, C]`` images to ``[..., C, H, W]`` floats, divided by 255 when ``from_int``.

    Args:
        from_int: divide by 255; by default when the input has an integer dtype.
        unsqueeze: add a leading dim to unbatched images (``[C, H, W]`` -> ``[1, C, H, W]``).
        dtype: the output float dtype.
        in_keys: image entries (default ``["pixels"]``).
    """

    _per_step = True

    def __init__(
        self,
        from_int: bool | None = None,
        unsqueeze: bool = False,
        dtype: torch.dtype = torch.float32,
        in_keys: Any = None,
        out_keys: Any = None,
    ) -> None:
        super().__init__(_PIXELS if in_keys is None else in_keys, out_keys)
        if not dtype.is_floating_point:
            raise TypeError(f"ToTensorImage outputs floats, found dtype {dtype}")
        self.from_int = from_int
        self.unsqueeze = unsqueeze
        self.dtype = dtype

    def _apply_transform(self, value: torch.Tensor) -> torch.Tensor:
        _check_image(value, self, "H, W, C")
        scale = self.from_int if self.from_int is not None else not value.is_floating_point()
        # One pass that transposes and converts, then an in-place divide (about twice as
        # fast as cast, divide, make contiguous on large frames).
        moved = value.movedim(-1, -3)
        out = torch.empty(moved.shape, dtype=self.dtype, device=value.device)
        out.copy_(moved)
        if scale:
            out.div_(255)
        if self.unsqueeze and out.ndim == 3:
            out = out.unsqueeze(0)
        return out

    def _transform_spec(self, spec: Any) -> Any:
        return map_spec(spec, self._apply_transform)

    def __repr__(self) -> str:
        return f"ToTensorImage(keys={keys_repr(self.in_keys)})"


class Resize(ObservationTransform):
    """Resize ``[..., C, H, W]`` images to ``[..., C, w, h]`` (``h`` defaults to ``w``).

    As in TorchRL (which passes ``[w, h]`` to torchvision's ``size=(rows, columns)``), ``w``
    is the number of output rows and ``h`` the number of columns.

    ``interpolation`` is a mode of :func:`torch.nn.functional.interpolate` (``"bilinear"``,
    ``"nearest"``, ``"nearest-exact"``, ``"bicubic"``) or ``"area"``: each output pixel is
    the mean of the input pixels it covers, weighted by the part of each that it covers
    (OpenCV's ``INTER_AREA`` when shrinking, computed in float32 in OpenCV's order, so a
    uint8 Atari frame resized to 84x84 equals ``cv2.resize(frame, (84, 84),
    interpolation=cv2.INTER_AREA)`` pixel for pixel, as SB3's and CleanRL's Atari
    preprocessing make it). Integer images come back rounded (half to even) to their dtype.

    >>> import torch
    >>> img = torch.tensor([[[0, 10, 20, 30, 40]]], dtype=torch.uint8)  # [C=1, H=1, W=5]
    >>> Resize(1, 2, interpolation="area")._apply_transform(img)  # 2.5 pixels per output
    tensor([[[ 8, 32]]], dtype=torch.uint8)
    """

    _per_step = True

    def __init__(
        self,
        w: int,
        h: int | None = None,
        interpolation: str = "bilinear",
        in_keys: Any = None,
        out_keys: Any = None,
    ) -> None:
        super().__init__(_PIXELS if in_keys is None else in_keys, out_keys)
        self.w = _size_arg(w, "w")
        self.h = _size_arg(w if h is None else h, "h")
        modes = ("nearest", "nearest-exact", "bilinear", "bicubic", "area")
        if interpolation not in modes:
            raise ValueError(f"interpolation must be one of {modes}, found {interpolation!r}")
        self.interpolation = interpolation

    def _apply_transform(self, value: torch.Tensor) -> torch.Tensor:
        _check_image(value, self, "C, H, W")
        *lead, c, h, w = value.shape
        rows, cols = self.w, self.h  # TorchRL's order (see the class docstring)
        if self.interpolation == "area":
            x = value if value.is_floating_point() else value.float()
            out = _area_resize(_area_resize(x, w, cols, -1), h, rows, -2)
            return _back_to(out, value.dtype)
        flat = value.reshape(-1, c, h, w)
        x = flat if flat.is_floating_point() else flat.float()
        kwargs = {"align_corners": False} if self.interpolation in ("bilinear", "bicubic") else {}
        out = F.interpolate(x, size=(rows, cols), mode=self.interpolation, **kwargs)
        return _back_to(out, value.dtype).reshape(*lead, c, rows, cols)

    def _transform_spec(self, spec: Any) -> Any:
        return map_spec(spec, self._apply_transform)

    def __repr__(self) -> str:
        return (
            f"Resize(w={self.w}, h={self.h}, interpolation={self.interpolation!r}, "
            f"keys={keys_repr(self.in_keys)})"
        )


@lru_cache(maxsize=64)
def _area_taps(n_in: int, n_out: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Source indices and weights ``[K, n_out]`` of area resampling along one axis.

    Output pixel ``i`` covers ``[i * s, (i + 1) * s)`` of the input (``s = n_in / n_out``);
    input pixel ``j`` weighs the length it shares with that span over the span's length.
    Overlaps under 1e-3 (rounding noise) are dropped, as OpenCV drops them; unused taps
    point at pixel 0 with weight 0.
    """
    scale = 1.0 / (n_out / n_in)  # OpenCV's scale (its float rounding included)
    taps = []
    for i in range(n_out):
        lo, hi = i * scale, i * scale + scale
        cell = min(scale, n_in - lo)
        row = []
        for j in range(max(0, math.floor(lo)), min(n_in, math.ceil(hi))):
            overlap = min(hi, j + 1.0) - max(lo, float(j))
            if overlap > 1e-3:
                row.append((j, min(overlap, 1.0) / cell))
        taps.append(row)
    k = max(len(row) for row in taps)
    index = torch.zeros(k, n_out, dtype=torch.long)
    weight = torch.zeros(k, n_out, dtype=torch.float64)
    for i, row in enumerate(taps):
        for t, (j, wt) in enumerate(row):
            index[t, i], weight[t, i] = j, wt
    return index, weight


def _area_resize(x: torch.Tensor, n_in: int, n_out: int, dim: int) -> torch.Tensor:
    """Area-resample float ``x`` along ``dim`` (-1 or -2) from ``n_in`` to ``n_out`` pixels,
    summing the taps one after the other in ``x``'s dtype (OpenCV's order and rounding)."""
    if n_in == n_out:
        return x
    index, weight = _area_taps(n_in, n_out)
    index = index.to(x.device)
    weight = weight.to(device=x.device, dtype=x.dtype)
    if dim == -2:
        weight = weight.unsqueeze(-1)
    out = None
    for t in range(index.shape[0]):
        term = x.index_select(dim, index[t]) * weight[t]
        out = term if out is None else out + term
    return out


class GrayScale(ObservationTransform):
    """``[..., 3, H, W]`` RGB images to ``[..., 1, H, W]`` luma (ITU-R 601-2 weights)."""

    _per_step = True

    def __init__(self, in_keys: Any = None, out_keys: Any = None) -> None:
        super().__init__(_PIXELS if in_keys is None else in_keys, out_keys)

    def _apply_transform(self, value: torch.Tensor) -> torch.Tensor:
        _check_image(value, self, "3, H, W")
        if value.shape[-3] != 3:
            raise ValueError(
                f"GrayScale expects 3 channels at dim -3, found shape {tuple(value.shape)}"
            )
        x = value if value.is_floating_point() else value.float()
        weights = torch.tensor(_LUMA, dtype=x.dtype, device=x.device)
        # channel by channel (3x faster than a reduction over a permuted image's dim -3)
        out = x.narrow(-3, 0, 1) * weights[0]
        out = out + x.narrow(-3, 1, 1) * weights[1]
        out = out + x.narrow(-3, 2, 1) * weights[2]
        return _back_to(out, value.dtype)

    def _transform_spec(self, spec: Any) -> Any:
        return map_spec(spec, self._apply_transform)

    def __repr__(self) -> str:
        return f"GrayScale(keys={keys_repr(self.in_keys)})"


class CenterCrop(ObservationTransform):
    """Crop the central window of ``[..., H, W]`` images: ``w`` rows by ``h`` columns (``h``
    defaults to ``w``), TorchRL's order (torchvision's ``center_crop(img, [w, h])``). A
    window larger than the image takes zeros around it, as torchvision pads.

    >>> import torch
    >>> CenterCrop(1, 4)._apply_transform(torch.ones(1, 3, 2))
    tensor([[[0., 1., 1., 0.]]])
    """

    _per_step = True

    def __init__(
        self, w: int, h: int | None = None, in_keys: Any = None, out_keys: Any = None
    ) -> None:
        super().__init__(_PIXELS if in_keys is None else in_keys, out_keys)
        self.w = _size_arg(w, "w")
        self.h = _size_arg(w if h is None else h, "h")

    def _apply_transform(self, value: torch.Tensor) -> torch.Tensor:
        if value.ndim < 2:
            raise ValueError(
                f"CenterCrop expects images shaped [..., H, W], found shape {tuple(value.shape)}"
            )
        rows, cols = self.w, self.h  # TorchRL's order (see the class docstring)
        h, w = value.shape[-2:]
        if rows > h or cols > w:
            pad_r, pad_c = max(rows - h, 0), max(cols - w, 0)
            value = F.pad(value, (pad_c // 2, (pad_c + 1) // 2, pad_r // 2, (pad_r + 1) // 2))
            h, w = value.shape[-2:]
        top = round((h - rows) / 2)
        left = round((w - cols) / 2)
        return value[..., top : top + rows, left : left + cols]

    def _transform_spec(self, spec: Any) -> Any:
        return map_spec(spec, self._apply_transform)

    def __repr__(self) -> str:
        return f"CenterCrop(w={self.w}, h={self.h}, keys={keys_repr(self.in_keys)})"


class Crop(ObservationTransform):
    """Crop the window whose top-left corner is at (``top``, ``left``) from ``[..., H, W]``
    images: ``w`` rows by ``h`` columns, TorchRL's order (torchvision's
    ``crop(img, top, left, w, h)`` takes the height first). A window reaching past the
    bottom or right edge takes zeros there, as torchvision pads.

    Args:
        w: the number of rows kept.
        h: the number of columns (default ``w``: a square crop).
        top, left: the first row and column kept (default 0, the top-left corner).
        in_keys: the images (default ``["pixels"]``); out_keys default to in_keys.

    >>> import torch
    >>> from tensordict import TensorDict
    >>> img = torch.arange(16.0).reshape(1, 4, 4)
    >>> Crop(3, 2, top=1, left=2)(TensorDict({"pixels": img}))["pixels"]
    tensor([[[ 6.,  7.],
             [10., 11.],
             [14., 15.]]])
    """

    _per_step = True

    def __init__(
        self,
        w: int,
        h: int | None = None,
        top: int = 0,
        left: int = 0,
        in_keys: Any = None,
        out_keys: Any = None,
    ) -> None:
        super().__init__(_PIXELS if in_keys is None else in_keys, out_keys)
        self.w = _size_arg(w, "w")
        self.h = _size_arg(w if h is None else h, "h")
        for name, value in (("top", top), ("left", left)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a non-negative int, found {value!r}")
        self.top = top
        self.left = left

    def _apply_transform(self, value: torch.Tensor) -> torch.Tensor:
        if value.ndim < 2:
            raise ValueError(
                f"Crop expects images shaped [..., H, W], found shape {tuple(value.shape)}"
            )
        h, w = value.shape[-2:]
        rows, cols = self.w, self.h  # TorchRL's order (see the class docstring)
        bottom, right = self.top + rows - h, self.left + cols - w
        if bottom > 0 or right > 0:
            value = F.pad(value, (0, max(right, 0), 0, max(bottom, 0)))
        return value[..., self.top : self.top + rows, self.left : self.left + cols]

    def _transform_spec(self, spec: Any) -> Any:
        return map_spec(spec, self._apply_transform)

    def __repr__(self) -> str:
        return (
            f"Crop(w={self.w}, h={self.h}, top={self.top}, left={self.left}, "
            f"keys={keys_repr(self.in_keys)})"
        )
