"""Dueling Q-value networks (Wang et al., 2016): Q = V + A - mean(A)."""

from __future__ import annotations

import torch
from torch import nn

from streamrl.modules.models.convnet import ConvNet
from streamrl.modules.models.mlp import MLP

__all__ = ["DuelingCnnDQNet", "DuelingHead", "DuelingMlpDQNet"]

_OUTPUT_DEFAULTS = {
    "depth": 1,
    "activation_class": nn.ELU,
    "num_cells": 512,
    "bias_last_layer": True,
}


class DuelingHead(nn.Module):
    """Combine a value stream and an advantage stream into action values.

    ``Q(s, a) = V(s) + A(s, a) - mean_a A(s, a)``. Both streams read the same features and
    are :class:`MLP` built from ``mlp_kwargs`` (default: one hidden layer of 512, ``ELU``).

    Args:
        out_features: number of actions (advantage outputs), an int or a shape.
        out_features_value: value outputs, 1 (default) or the same as ``out_features``.
        mlp_kwargs: :class:`MLP` arguments of both streams.
        device: where to build the layers.

    >>> head = DuelingHead(4, mlp_kwargs={"num_cells": [16]})
    >>> head(torch.randn(8, 10)).shape
    torch.Size([8, 4])
    """

    def __init__(
        self,
        out_features: int | torch.Size,
        out_features_value: int = 1,
        mlp_kwargs: dict | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        shape = torch.Size([out_features] if isinstance(out_features, int) else out_features)
        if not shape or any(d < 1 for d in shape):
            raise ValueError(f"out_features must be a positive int or shape, got {out_features!r}")
        if out_features_value not in (1, shape[-1]):
            raise ValueError(
                f"out_features_value must be 1 or out_features[-1]={shape[-1]} (the value is "
                f"broadcast over the advantages), got {out_features_value}"
            )
        kwargs = {**_OUTPUT_DEFAULTS, **(mlp_kwargs or {})}
        for key in ("out_features", "device"):
            if key in kwargs:
                raise ValueError(f"mlp_kwargs must not set {key!r}: DuelingHead sets it")
        self.advantage = MLP(out_features=shape, device=device, **kwargs)
        self.value = MLP(out_features=out_features_value, device=device, **kwargs)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        advantage = self.advantage(features)
        value = self.value(features)
        for _ in range(len(self.advantage.out_features) - 1):
            value = value.unsqueeze(-2)  # broadcast over the leading action dims
        return value + advantage - advantage.mean(-1, keepdim=True)


class DuelingMlpDQNet(nn.Module):
    """An MLP torso followed by a :class:`DuelingHead`, with TorchRL's arguments.

    Args:
        out_features: number of actions, an int or a shape.
        out_features_value: value outputs (default 1).
        mlp_kwargs_feature: :class:`MLP` arguments of the torso (default ``[256, 256]`` cells,
            ``ELU``, 256 outputs, activated last layer).
        mlp_kwargs_output: :class:`MLP` arguments of the advantage and value streams.
        device: where to build the layers.

    >>> net = DuelingMlpDQNet(2, mlp_kwargs_feature={"num_cells": [32], "out_features": 32},
    ...                       mlp_kwargs_output={"num_cells": [16]})
    >>> net(torch.randn(5, 4)).shape
    torch.Size([5, 2])
    """

    def __init__(
        self,
        out_features: int | torch.Size,
        out_features_value: int = 1,
        mlp_kwargs_feature: dict | None = None,
        mlp_kwargs_output: dict | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        kwargs = {
            "num_cells": [256, 256],
            "out_features": 256,
            "activation_class": nn.ELU,
            "activate_last_layer": True,
        }
        kwargs.update(mlp_kwargs_feature or {})
        self.features = MLP(device=device, **kwargs)
        self.head = DuelingHead(out_features, out_features_value, mlp_kwargs_output, device)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(*inputs))


class DuelingCnnDQNet(nn.Module):
    """A :class:`ConvNet` torso followed by a :class:`DuelingHead` (pixel inputs).

    Args:
        out_features: number of actions.
        out_features_value: value outputs (default 1).
        cnn_kwargs: :class:`ConvNet` arguments (default ``[32, 64, 64]`` channels, kernels
            ``[8, 4, 3]``, strides ``[4, 2, 1]``).
        mlp_kwargs: :class:`MLP` arguments of the advantage and value streams (default one
            hidden layer of 512, ``ELU``).
        device: where to build the layers.

    >>> net = DuelingCnnDQNet(3, cnn_kwargs={"num_cells": [8], "kernel_sizes": 4, "strides": 2},
    ...                       mlp_kwargs={"num_cells": [16]})
    >>> net(torch.randn(2, 3, 16, 16)).shape
    torch.Size([2, 3])
    """

    def __init__(
        self,
        out_features: int,
        out_features_value: int = 1,
        cnn_kwargs: dict | None = None,
        mlp_kwargs: dict | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        kwargs = {"num_cells": [32, 64, 64], "kernel_sizes": [8, 4, 3], "strides": [4, 2, 1]}
        kwargs.update(cnn_kwargs or {})
        self.features = ConvNet(device=device, **kwargs)
        self.head = DuelingHead(out_features, out_features_value, mlp_kwargs, device)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(pixels))
