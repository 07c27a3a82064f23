"""2D and 3D convolutional networks."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import nn

from streamrl.modules.models._builders import norm_layer, per_layer_kwargs
from streamrl.modules.models.utils import SquashDims

__all__ = ["Conv2dNet", "Conv3dNet", "ConvNet"]


def _per_layer(name: str, value: int | Sequence[int], n: int) -> list:
    if isinstance(value, int):
        return [value] * n
    values = list(value)
    if len(values) != n:
        raise ValueError(f"{name} has {len(values)} entries but the network has {n} layers")
    return values



class ConvNet(nn.Sequential):
    """A stack of ``Conv2d`` layers with activations, then an aggregator, as an ``nn.Sequential``.

    Args:
        in_features: input channels; ``None`` (default) makes the first layer a ``LazyConv2d``.
        depth: number of layers when ``num_cells`` is an int (default 3).
        num_cells: output channels per layer, an int or a list (default ``[32, 32, 32]``).
        kernel_sizes, strides, paddings: an int for all layers or one value per layer.
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
        if num_cells is None:
            num_cells = [32] * (3 if depth is None else depth)
        elif isinstance(num_cells, int):
            num_cells = [num_cells] * (3 if depth is None else depth)
        cells = list(num_cells)
        if depth is not None and depth != len(cells):
            raise ValueError(f"depth={depth} does not match num_cells={cells}")
        if not cells:
            raise ValueError("ConvNet needs at least one layer")
        n = len(cells)
        kernels = _per_layer("kernel_sizes", kernel_sizes, n)
        stride_list = _per_layer("strides", strides, n)
        pads = _per_layer("paddings", paddings, n)
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
            layers.append(activation_class(**act_kwargs[i]))
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
                f"{name} expected input of shape [*batch, {dims}], got {tuple(value.shape)}"
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
