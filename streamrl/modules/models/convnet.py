"""2D and 3D convolutional networks."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import nn

from streamrl.modules.models._builders import as_layer, norm_layer, per_layer_kwargs
from streamrl.modules.models.utils import SquashDims

__all__ = ["Conv2dNet", "Conv3dNet", "ConvNet"]


def _layer_plan(name: str, depth: int | None, num_cells, per_layer: dict) -> tuple[list, dict]:
    """The channel counts and the per-layer values (kernel sizes, strides, paddings), all with
    one entry per layer. ``depth`` comes from the argument or, when ``None``, from whichever
    of ``num_cells`` / ``per_layer`` is a list (all lists must agree)."""
    if depth is not None and depth <= 0:
        raise ValueError(f"Null depth is not permitted with {name}: got depth={depth}")
    if num_cells is None:  # documented default: [32] * depth, or [32, 32, 32]
        num_cells = [32] * (3 if depth is None else depth)
    # the first list sets the depth, in TorchRL's order: kernel_sizes, strides, ..., num_cells
    lists = {k: list(v) for k, v in {**per_layer, "num_cells": num_cells}.items()
             if isinstance(v, (list, tuple))}
    if depth is None:
        if not lists:
            raise ValueError(
                f"{name}: depth=None requires one of the input args (kernel_sizes, strides, "
                f"paddings, num_cells) to be a list or tuple, got num_cells={num_cells!r} and "
                f"{per_layer}"
            )
        depth = len(next(iter(lists.values())))
    lists.setdefault("num_cells", [num_cells] * depth)
    for key, values in lists.items():
        if len(values) != depth:
            raise ValueError(
                f"{name}: depth={depth} and {key}={len(values)} length conflict, consider "
                f"matching or specifying a constant {key} argument together with a desired depth"
            )
    if depth == 0:
        raise ValueError(f"Null depth is not permitted with {name}: num_cells is empty")
    plan = {k: lists.get(k, [v] * depth) for k, v in per_layer.items()}
    return lists["num_cells"], plan


class ConvNet(nn.Sequential):
    """A stack of ``Conv2d`` layers with activations, then an aggregator, as an ``nn.Sequential``.

    Args:
        in_features: input channels; ``None`` (default) makes the first layer a ``LazyConv2d``.
        depth: number of layers. ``None`` takes it from whichever of ``num_cells``,
            ``kernel_sizes``, ``strides``, ``paddings`` is a list (an error if none is);
            every list must have ``depth`` entries.
        num_cells: output channels per layer, an int (every layer) or a list; default
            ``[32] * depth``, or ``[32, 32, 32]`` without ``depth``.
        kernel_sizes, strides, paddings: an int for all layers or one value per layer (a
            value may itself be a tuple, e.g. a rectangular kernel).
        activation_class / activation_kwargs: activation after every conv (``nn.ELU``);
            ``activation_kwargs`` may be one dict or a list with one dict per layer.
        norm_class / norm_kwargs: optional norm after each conv, built with the channel count
            (``norm_kwargs``: one dict or one per layer).
        bias_last_layer: whether the last convolution has a bias.
        aggregator_class / aggregator_kwargs: final module (``SquashDims``: flatten C, H, W);
            ``None`` keeps the feature map.
        squeeze_output: drop trailing spatial dims of size 1 (e.g. a final 1x1 map).

    Inputs may have any number of leading batch dims before ``[C, H, W]``:

    >>> cnn = ConvNet(num_cells=[32, 64], kernel_sizes=[8, 4], strides=[2, 1])
    >>> cnn(torch.randn(10, 3, 32, 32)).shape
    torch.Size([10, 6400])
    >>> cnn(torch.randn(2, 5, 3, 32, 32)).shape
    torch.Size([2, 5, 6400])
    """

    _conv_classes: tuple[type[nn.Module], type[nn.Module]] = (nn.LazyConv2d, nn.Conv2d)
    _spatial_dims = 2

    def __init__(
        self,
        in_features: int | None = None,
        depth: int | None = None,
        num_cells: int | Sequence[int] | None = None,
        kernel_sizes: int | Sequence[int] = 3,
        strides: int | Sequence[int] = 1,
        paddings: int | Sequence[int] = 0,
        activation_class: type[nn.Module] = nn.ELU,
        activation_kwargs: dict | Sequence[dict] | None = None,
        norm_class: type[nn.Module] | None = None,
        norm_kwargs: dict | Sequence[dict] | None = None,
        bias_last_layer: bool = True,
        aggregator_class: type[nn.Module] | None = SquashDims,
        aggregator_kwargs: dict | None = None,
        squeeze_output: bool = False,
        device: torch.device | str | None = None,
    ) -> None:
        cells, plan = _layer_plan(
            type(self).__name__, depth, num_cells,
            {"kernel_sizes": kernel_sizes, "strides": strides, "paddings": paddings},
        )
        n = len(cells)
        kernels, stride_list, pads = plan["kernel_sizes"], plan["strides"], plan["paddings"]
        act_kwargs = per_layer_kwargs("activation_kwargs", activation_kwargs, n)
        n_kwargs = per_layer_kwargs("norm_kwargs", norm_kwargs, n)
        lazy, conv = self._conv_classes
        layers: list[nn.Module] = []
        prev = in_features
        for i, (width, k, s, p) in enumerate(zip(cells, kernels, stride_list, pads)):
            bias = bias_last_layer or i < n - 1
            if prev is None:
                layers.append(lazy(width, k, stride=s, padding=p, bias=bias, device=device))
            else:
                layers.append(conv(prev, width, k, stride=s, padding=p, bias=bias, device=device))
            if norm_class is not None:
                layers.append(norm_layer(norm_class, width, n_kwargs[i]))
            layers.append(as_layer(activation_class(**act_kwargs[i])))
            prev = width
        if aggregator_class is SquashDims and aggregator_kwargs is None:
            aggregator_kwargs = {"ndims_in": self._spatial_dims + 1}
        if aggregator_class is not None:
            layers.append(aggregator_class(**(aggregator_kwargs or {})))
        super().__init__(*layers)
        self.in_features = in_features
        self.squeeze_output = squeeze_output

    def __getitem__(self, idx):
        # nn.Sequential slices by calling the class with modules; ours takes other arguments
        if isinstance(idx, slice):
            return nn.Sequential(OrderedDict(list(self._modules.items())[idx]))
        return super().__getitem__(idx)

    def forward(self, value: torch.Tensor) -> torch.Tensor:
        name, nd = type(self).__name__, self._spatial_dims + 1
        if value.ndim < nd:
            dims = "C, D, H, W" if nd == 4 else "C, H, W"
            raise ValueError(
                f"The input of {name} must have at least {nd} dimensions [*batch, {dims}], "
                f"got shape {tuple(value.shape)}"
            )
        if self.in_features is not None and value.shape[-nd] != self.in_features:
            raise ValueError(
                f"{name} expected {self.in_features} input channels (dim -{nd}), "
                f"got shape {tuple(value.shape)}"
            )
        batch = value.shape[:-nd]
        out = super().forward(value.reshape(-1, *value.shape[-nd:]))
        out = out.reshape(*batch, *out.shape[1:])
        if self.squeeze_output:
            while out.ndim > len(batch) + 1 and out.shape[-1] == 1:
                out = out.squeeze(-1)
        return out


class Conv3dNet(ConvNet):
    """:class:`ConvNet` with ``Conv3d`` layers, for inputs ``[*batch, C, D, H, W]``.

    Same arguments as :class:`ConvNet`; the default aggregator flattens ``C, D, H, W``.

    >>> net = Conv3dNet(num_cells=[8, 8])
    >>> net(torch.randn(2, 3, 8, 16, 16)).shape
    torch.Size([2, 4608])
    """

    _conv_classes = (nn.LazyConv3d, nn.Conv3d)
    _spatial_dims = 3
Conv2dNet = ConvNet  # TorchRL 0.14 name for the same class
