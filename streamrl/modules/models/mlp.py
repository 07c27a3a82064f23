"""Multi-layer perceptron."""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from streamrl._utils.direct_modules import sequential_stand_in
from streamrl.modules.models._builders import as_layer, norm_layer, per_layer_kwargs
from streamrl.modules.models.noisy import NoisyLazyLinear, NoisyLinear

__all__ = ["MLP"]


def _as_shape(out_features: int | Sequence[int]) -> torch.Size:
    if isinstance(out_features, int):
        return torch.Size([out_features])
    if isinstance(out_features, Sequence) and all(isinstance(d, int) for d in out_features):
        return torch.Size(out_features)
    raise TypeError(f"out_features must be an int or a sequence of ints, got {out_features!r}")


def _layer_sizes(num_cells: int | Sequence[int] | None, depth: int | None) -> list[int]:
    if num_cells is None:
        num_cells = 32
        depth = 3 if depth is None else depth
    if isinstance(num_cells, int):
        depth = 3 if depth is None else depth
        if depth < 0:
            raise ValueError(f"depth must be >= 0, got {depth}")
        return [num_cells] * depth
    cells = list(num_cells)
    if depth is not None and depth != len(cells):
        raise ValueError(f"depth={depth} does not match num_cells={cells} ({len(cells)} layers)")
    if any(not isinstance(c, int) or c <= 0 for c in cells):
        raise ValueError(f"num_cells must hold positive ints, got {cells}")
    return cells



class _SharedBias(nn.Module):
    """One learnable scalar added to every output feature."""

    def __init__(self, device: torch.device | str | None = None) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(1, device=device))

    def forward(self, value: torch.Tensor) -> torch.Tensor:
        return value + self.bias


class MLP(nn.Sequential):
    """A stack of linear layers with activations, built as an ``nn.Sequential``.

    Args:
        in_features: input size; ``None`` (default) makes the first layer a ``LazyLinear`` that
            learns its size on the first call.
        out_features: size of the output, an int or a shape (the output then gets that shape).
        depth: number of hidden layers when ``num_cells`` is an int (default 3).
        num_cells: hidden sizes, an int (repeated ``depth`` times) or a list. Default 32 x 3.
        activation_class / activation_kwargs: activation after every hidden layer (``nn.Tanh``);
            ``activation_kwargs`` may be one dict or a list with one dict per activation.
        norm_class / norm_kwargs: optional normalisation layer after each hidden linear layer;
            built from ``norm_kwargs`` alone when they give its size (``num_features``,
            ``normalized_shape``, ``num_channels``, as TorchRL expects) or the class is lazy,
            else with the layer width as first argument (e.g. ``nn.LayerNorm``).
            ``norm_kwargs`` may be one dict or a list with one dict per hidden layer.
        dropout: dropout probability after each hidden activation (``None``: no dropout).
        bias_last_layer: whether the output layer has a bias.
        single_bias_last_layer: the output layer has one bias scalar shared by all its
            output features (not with :class:`~streamrl.modules.NoisyLinear`).
        layer_class: the linear layer type (e.g. :class:`~streamrl.modules.NoisyLinear`); any
            class other than ``nn.Linear`` and ``NoisyLinear`` (lazy first layer:
            ``NoisyLazyLinear``) needs ``in_features``.
        layer_kwargs: extra keyword arguments of every linear layer, one dict or a list with
            one dict per layer (``depth + 1`` entries).

    Several inputs are concatenated along their last dimension, so a value network can read
    ``(observation, action)``:

    >>> net = MLP(num_cells=[32, 64], out_features=4, activation_class=nn.ELU)
    >>> net(torch.randn(10, 3)).shape
    torch.Size([10, 4])
    >>> MLP(out_features=1, num_cells=[8])(torch.randn(5, 3), torch.randn(5, 2)).shape
    torch.Size([5, 1])
    """

    def __init__(
        self,
        in_features: int | None = None,
        out_features: int | Sequence[int] | None = None,
        depth: int | None = None,
        num_cells: int | Sequence[int] | None = None,
        activation_class: type[nn.Module] = nn.Tanh,
        activation_kwargs: dict | Sequence[dict] | None = None,
        norm_class: type[nn.Module] | None = None,
        norm_kwargs: dict | Sequence[dict] | None = None,
        dropout: float | None = None,
        bias_last_layer: bool = True,
        single_bias_last_layer: bool = False,
        layer_class: type[nn.Module] = nn.Linear,
        layer_kwargs: dict | Sequence[dict] | None = None,
        activate_last_layer: bool = False,
        device: torch.device | str | None = None,
    ) -> None:
        if layer_class not in (nn.Linear, NoisyLinear) and in_features is None:
            raise ValueError(f"layer_class={layer_class.__name__} needs in_features (no lazy size)")
        if out_features is None:
            raise ValueError("MLP needs out_features (an int or a shape)")
        out_shape = _as_shape(out_features)
        if dropout is not None and not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        if single_bias_last_layer and not bias_last_layer:
            raise ValueError("single_bias_last_layer=True needs bias_last_layer=True")
        if single_bias_last_layer and getattr(layer_class, "reset_noise", None) is not None:
            raise ValueError(
                f"single_bias_last_layer=True does not work with layer_class="
                f"{layer_class.__name__} (a noisy layer owns its bias)"
            )
        cells = _layer_sizes(num_cells, depth)
        n_act = len(cells) + int(activate_last_layer)
        act_kwargs = per_layer_kwargs("activation_kwargs", activation_kwargs, n_act)
        n_kwargs = per_layer_kwargs("norm_kwargs", norm_kwargs, len(cells))
        l_kwargs = per_layer_kwargs("layer_kwargs", layer_kwargs, len(cells) + 1)
        layers: list[nn.Module] = []
        prev = in_features
        sizes = [*cells, math.prod(out_shape)]
        for i, width in enumerate(sizes):
            last = i == len(sizes) - 1
            bias = bias_last_layer and not single_bias_last_layer if last else True
            if prev is None:  # a lazy first layer learns its input size on the first call
                lazy = NoisyLazyLinear if layer_class is NoisyLinear else nn.LazyLinear
                layers.append(lazy(width, **{"bias": bias, "device": device, **l_kwargs[i]}))
            else:
                # a "bias" in layer_kwargs wins over the one bias_last_layer implies
                kwargs = {"bias": bias, "device": device, **l_kwargs[i]}
                layers.append(layer_class(prev, width, **kwargs))
            if last and single_bias_last_layer:
                layers.append(_SharedBias(device=device))
            if not last and norm_class is not None:
                layers.append(norm_layer(norm_class, width, n_kwargs[i]))
            if not last or activate_last_layer:
                layers.append(as_layer(activation_class(**act_kwargs[i])))
            if not last and dropout:
                layers.append(nn.Dropout(dropout))
            prev = width
        super().__init__(*layers)
        self.in_features = in_features
        self.out_features = out_shape

    def __getitem__(self, idx):
        # nn.Sequential slices by calling the class with modules; ours takes other arguments
        if isinstance(idx, slice):
            return nn.Sequential(OrderedDict(list(self._modules.items())[idx]))
        return super().__getitem__(idx)

    def _direct_call(self) -> Any:
        """This MLP's stand-in for tensor plans (:func:`~streamrl._utils.direct_modules.
        direct_call`): its layers' calls in a row on its input (several inputs concatenated
        as :meth:`forward` does), where :meth:`forward` adds nothing more to
        ``nn.Sequential``'s (one output dim); inputs its checks would refuse go to
        :meth:`forward`, which raises."""
        if len(self.out_features) > 1 or not len(self) or type(self).forward is not MLP.forward:
            return self
        return sequential_stand_in(self, MLP.forward, self._one_input)

    def _one_input(self, *inputs: Any) -> torch.Tensor | None:
        """The input :meth:`forward` passes to its layers, or None where its checks fail (or
        an input is a tensor subclass, which :meth:`forward` takes)."""
        if not inputs or not all(type(x) is torch.Tensor for x in inputs):
            return None
        value, _ = self._joined(inputs)
        return value

    def _joined(self, inputs: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor | None, Exception | None]:
        """The inputs concatenated on their last dim and checked against ``in_features``:
        ``(value, None)``, or ``(None, the error forward raises)``."""
        if not inputs:
            return None, TypeError("MLP expected at least one input tensor")
        value = inputs[0]
        if len(inputs) > 1:
            lead = value.shape[:-1]
            if any(x.shape[:-1] != lead for x in inputs[1:]):
                shapes = [tuple(x.shape) for x in inputs]
                return None, ValueError(
                    f"MLP inputs are concatenated on their last dim and need the same leading "
                    f"dims; got shapes {shapes}"
                )
            value = torch.cat(inputs, -1)
        if self.in_features is not None and value.shape[-1:] != (self.in_features,):
            return None, ValueError(
                f"MLP expected inputs with {self.in_features} features in total (last dim), "
                f"got shape {tuple(value.shape)}"
            )
        return value, None

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        value, error = self._joined(inputs)
        if error is not None:
            raise error
        out = super().forward(value)
        if len(self.out_features) > 1:
            out = out.unflatten(-1, self.out_features)
        return out
